"""Accuracy measures of predicted Cobb angles and landmarks against expert labels.

SMAPE follows the AASCE challenge: per image, the summed absolute error of the three angles
over the summed angles, averaged over images, in percent. Landmark error is the normalised
mean squared error of Wang et al. (Eq. 13): coordinates divided by the image width (x) or
height (y), squared distance per landmark, averaged over the 68 landmarks and the images.

Per-angle figures are named "angle 1 (largest)", "angle 2", "angle 3" (``cobb.AASCE_NAMES``)
and follow the column order of ``angles.csv``; the challenge's own labels for those columns
(PT, MT, TL/L) are not used because the columns are not those clinical curves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cobb import AASCE_NAMES


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den with 0/0 = 0 (an image whose true and predicted angles are all 0 is exact)."""
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)


def _same_shape(pred, truth, what: str, columns=None) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    if pred.shape != truth.shape or pred.ndim != 2 or (columns and pred.shape[1] != columns):
        raise ValueError(f"predicted {what} {pred.shape} and labels {truth.shape} must have the same "
                         f"(images, {columns or 'values'}) shape")
    return pred, truth


def smape(pred: np.ndarray, truth: np.ndarray) -> float:
    """The challenge SMAPE in percent over images of three angles each."""
    pred, truth = _same_shape(pred, truth, "angles", 3)
    return float(100 * np.mean(_ratio(np.abs(pred - truth).sum(1), (pred + truth).sum(1))))


def landmark_nmse(pred_rows: np.ndarray, truth_rows: np.ndarray) -> float:
    """Mean over images and landmarks of the squared distance in normalised coordinates.

    Rows are AASCE ``landmarks.csv`` rows: n x-values then n y-values, normalised."""
    pred_rows, truth_rows = _same_shape(pred_rows, truth_rows, "landmark rows")
    if pred_rows.shape[1] % 2:
        raise ValueError(f"landmark rows need x then y values, got {pred_rows.shape[1]} columns")
    n = pred_rows.shape[1] // 2
    d2 = (pred_rows[:, :n] - truth_rows[:, :n]) ** 2 + (pred_rows[:, n:] - truth_rows[:, n:]) ** 2
    return float(d2.mean())


@dataclass(frozen=True)
class AngleEvaluation:
    """Accuracy figures; the per-angle tuples are in ``angles.csv`` column order (``AASCE_NAMES``)."""

    images: int
    smape: float
    smape_per_angle: tuple[float, float, float]
    mae_deg: tuple[float, float, float]
    median_abs_error_deg: float
    share_within_5deg: float
    landmark_nmse: float | None = None

    def to_dict(self) -> dict:
        return {"images": self.images, "smape_percent": round(self.smape, 3),
                "smape_percent_per_angle": dict(zip(AASCE_NAMES, np.round(self.smape_per_angle, 3).tolist())),
                "mean_abs_error_deg": dict(zip(AASCE_NAMES, np.round(self.mae_deg, 3).tolist())),
                "median_abs_error_deg": round(self.median_abs_error_deg, 3),
                "share_images_max_error_within_5deg": round(self.share_within_5deg, 4),
                "landmark_nmse": self.landmark_nmse}

    def lines(self) -> list[str]:
        per = ", ".join(f"{n} {v:.2f}" for n, v in zip(AASCE_NAMES, self.smape_per_angle))
        mae = ", ".join(f"{n} {v:.2f}°" for n, v in zip(AASCE_NAMES, self.mae_deg))
        out = [f"images: {self.images}",
               f"SMAPE: {self.smape:.2f} % (per angles.csv column: {per})",
               f"mean absolute error: {mae}; median over all angles {self.median_abs_error_deg:.2f}°",
               f"images whose largest angle error is <= 5°: {100 * self.share_within_5deg:.1f} %"]
        if self.landmark_nmse is not None:
            out.append(f"landmark NMSE: {self.landmark_nmse:.3e}")
        return out


def evaluate_angles(pred: np.ndarray, truth: np.ndarray, pred_rows=None, truth_rows=None) -> AngleEvaluation:
    """All angle measures, plus landmark NMSE when both landmark row sets are given."""
    pred, truth = _same_shape(pred, truth, "angles", 3)
    err = np.abs(pred - truth)
    per_angle = tuple(float(100 * np.mean(_ratio(err[:, k], pred[:, k] + truth[:, k]))) for k in range(3))
    nmse = landmark_nmse(pred_rows, truth_rows) if pred_rows is not None and truth_rows is not None else None
    return AngleEvaluation(len(pred), smape(pred, truth), per_angle, tuple(err.mean(0).tolist()),
                           float(np.median(err)), float(np.mean(err.max(1) <= 5.0)), nmse)
