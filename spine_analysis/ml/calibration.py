"""Probability calibration any classifier can use: Platt scaling fitted on held-out scores, and the
reliability table that shows whether "0.7" means seven in ten.

Platt scaling is ``p' = sigmoid(slope * logit(p) + intercept)``: temperature scaling (``slope = 1/T``)
with a shift, which a score that is low for every case needs (temperature alone keeps 0.5 where it is).
Two parameters only, so a few dozen held-out positives are enough to fit it; isotonic regression
would need far more.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit

#: Scores are clipped away from 0 and 1 before their logit is taken.
EPSILON = 1e-4


def _logits(scores) -> np.ndarray:
    return logit(np.clip(np.asarray(scores, dtype=float), EPSILON, 1 - EPSILON))


def calibrate(scores, slope: float, intercept: float) -> np.ndarray:
    """Platt-scaled probabilities of raw ``scores`` in [0, 1]."""
    return expit(slope * _logits(scores) + intercept)


def fit_platt(scores: Sequence[float], outcomes: Sequence[bool]) -> tuple[float, float]:
    """(slope, intercept) minimising the log loss of ``calibrate(scores)`` against ``outcomes``."""
    x = _logits(scores)
    y = np.asarray(outcomes, dtype=float)
    if y.min() == y.max():
        raise ValueError("calibration needs both outcomes among the held-out scores")

    def loss(params):
        z = params[0] * x + params[1]
        # log(1 + e^z) - y z, its gradient from the sigmoid
        return float(np.sum(np.logaddexp(0.0, z) - y * z)), np.array([np.sum((expit(z) - y) * x),
                                                                          np.sum(expit(z) - y)])

    fitted = minimize(loss, np.array([1.0, 0.0]), jac=True, method="BFGS")
    return float(fitted.x[0]), float(fitted.x[1])


@dataclass
class ReliabilityBin:
    """One row of a reliability table: the cases whose probability falls in [low, high)."""

    low: float
    high: float
    count: int
    mean_probability: float | None
    observed_rate: float | None


def reliability_table(probabilities, outcomes, edges=(0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)) -> list[ReliabilityBin]:
    """Cases binned by probability (the last bin includes 1.0): how many, their mean probability and how
    often the outcome was true. A calibrated model's two columns agree."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(outcomes, dtype=bool)
    rows = []
    for k, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        inside = (p >= low) & ((p < high) if k < len(edges) - 2 else (p <= high))
        n = int(inside.sum())
        rows.append(ReliabilityBin(low, high, n, float(p[inside].mean()) if n else None,
                                   float(y[inside].mean()) if n else None))
    return rows


def expected_calibration_error(probabilities, outcomes, edges=(0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)) -> float:
    """The case-weighted mean gap between predicted and observed rates over the reliability table's bins."""
    rows = reliability_table(probabilities, outcomes, edges)
    total = sum(r.count for r in rows)
    return sum(r.count * abs(r.mean_probability - r.observed_rate) for r in rows if r.count) / total


def brier_score(probabilities, outcomes) -> float:
    """Mean squared difference between probability and outcome (0 is perfect)."""
    return float(np.mean((np.asarray(probabilities, float) - np.asarray(outcomes, float)) ** 2))
