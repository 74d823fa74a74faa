"""Giving the step-1 centre peaks their levels T1–L5: a dynamic programme over the chain of
peaks from head to foot (see ``assign_levels``)."""
from __future__ import annotations

import numpy as np
import torch

from .config import LandmarkConfig


def _step_scale(pts: np.ndarray, exp: np.ndarray, limits: tuple[float, float]) -> float | None:
    """How much larger this spine's vertebra steps are than the mean spine's (median steps),
    within ``limits``; None when too few peaks say it."""
    if len(pts) < 4:
        return None
    observed = np.median(np.diff(np.sort(pts[:, 1])))
    expected = np.median(np.diff(exp[:, 1]))
    return float(np.clip(observed / expected, *limits)) if expected > 0 and observed > 0 else None


def assign_levels(points: torch.Tensor, values: torch.Tensor, expected: torch.Tensor,
                  config: LandmarkConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Give detected centre peaks their levels: (n, 2) centres and an (n,) matched mask.

    ``points`` (m, 2) and ``values`` (m,) are the peaks (pixels, heatmap values); the costs
    are ``config``'s level-assignment settings.

    ``expected`` (n, 2) is the mean training spine in this image's pixels: it says what step
    to expect from each level to the next (larger in the lumbar spine). Peaks are visited top
    to bottom; a dynamic programme picks the chain of peaks whose steps best match the
    expected steps (after matching the spine's size), rewarding each peak's heatmap value,
    and paying for every level it leaves unmatched and for every peak it skips (ribs, C7,
    sacrum: the detector gives them lower values). Unmatched levels are left to the shape
    model. A step is judged by the ratio of its length to the expected one: a step of a
    third of a spacing (a second peak on one vertebra) then costs as much as one three times
    too long, where a cost linear in pixels let such half-steps through and shifted every
    level below them. There is deliberately no absolute position prior (where T1 and L5
    usually lie): it hides a shifted chain from the framing flag (measurements in the model card).
    """
    n = len(expected)
    matched = torch.zeros(n, dtype=torch.bool)
    centres = expected.clone()
    if len(points) == 0:
        return centres, matched
    order = torch.argsort(points[:, 1])
    pts = points[order].double().numpy()
    vals = values[order].double().numpy()
    exp = expected.double().numpy()
    if m_scale := _step_scale(pts, exp, config.step_scale_range):
        # Spines differ in size: compare steps after matching the typical step of the peaks.
        exp = exp[:1] + (exp - exp[:1]) * m_scale
    steps = np.linalg.norm(np.diff(exp, axis=0), axis=1)
    spacing = np.concatenate([steps[:1], (steps[1:] + steps[:-1]) / 2, steps[-1:]]).clip(min=1.0)
    m = len(pts)
    unary = np.broadcast_to(-vals[None, :], (n, m))
    skipped_sum = np.concatenate([[0.0], np.cumsum(vals)])
    # A chain may start at any level and peak: the levels above it are missing, the peaks
    # above it skipped, and both are paid for, as are those below its end.
    cost = unary + config.missing_level_cost * np.arange(n)[:, None] + config.skipped_peak_cost * skipped_sum[None, :m]
    back = {}
    for k in range(1, n):
        for j in range(1, m):
            best, arg = cost[k, j], None
            for dk in range(1, min(config.max_level_gap, k) + 1):
                want = exp[k] - exp[k - dk]
                for dj in range(1, min(config.max_peak_gap, j) + 1):
                    got = pts[j] - pts[j - dj]
                    total = (cost[k - dk, j - dj]
                             + config.step_ratio_weight * abs(np.log(max(got[1], 1e-3) / max(want[1], 1e-3)))
                             + config.lateral_weight * abs(got[0] - want[0]) / spacing[k]
                             + config.missing_level_cost * (dk - 1)
                             + config.skipped_peak_cost * (skipped_sum[j] - skipped_sum[j - dj + 1])
                             + unary[k, j])
                    if total < best:
                        best, arg = total, (k - dk, j - dj)
            if arg is not None:
                cost[k, j] = best
                back[(k, j)] = arg
    final = (cost + config.missing_level_cost * (n - 1 - np.arange(n))[:, None]
             + config.skipped_peak_cost * (skipped_sum[-1] - skipped_sum[None, 1:]))
    k, j = np.unravel_index(int(np.argmin(final)), final.shape)
    while True:
        centres[k] = torch.from_numpy(pts[j]).to(centres.dtype)
        matched[k] = True
        if (k, j) not in back:
            break
        k, j = back[(k, j)]
    return centres, matched

