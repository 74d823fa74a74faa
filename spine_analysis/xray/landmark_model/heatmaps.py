"""Heatmaps as the landmark networks learn and emit them: Gaussian targets, and peaks decoded
with sub-pixel precision. Heatmaps are (…, h, w); points are (x, y) in heatmap pixels."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _parabola_offset(before, centre, after):
    """Sub-pixel offset of a peak from log-values at -1, 0, +1 (exact for a Gaussian)."""
    curvature = before - 2 * centre + after
    safe = torch.where(curvature < -1e-6, curvature, torch.full_like(curvature, -1.0))
    return torch.where(curvature < -1e-6, (0.5 * (before - after) / safe).clamp(-0.5, 0.5),
                       torch.zeros_like(curvature))


def _refine(log: torch.Tensor, rows, py, px):
    """Sub-pixel (x, y) of integer peaks (py, px) in the log-heatmaps ``log`` (N, h, w)."""
    h, w = log.shape[-2:]
    centre = log[rows, py, px]
    dx = _parabola_offset(log[rows, py, (px - 1).clamp_min(0)], centre, log[rows, py, (px + 1).clamp_max(w - 1)])
    dy = _parabola_offset(log[rows, (py - 1).clamp_min(0), px], centre, log[rows, (py + 1).clamp_max(h - 1), px])
    return torch.stack([px + dx, py + dy], dim=-1)


def decode_heatmaps(heatmaps: torch.Tensor):
    """Peak of each channel with sub-pixel refinement: (…, 2) as (x, y) and the peak value."""
    *lead, h, w = heatmaps.shape
    flat = heatmaps.reshape(-1, h, w)
    peak, index = flat.reshape(len(flat), -1).max(dim=1)
    rows = torch.arange(len(flat))
    points = _refine(flat.clamp_min(1e-6).log(), rows, index // w, index % w).to(heatmaps.dtype)
    return points.reshape(*lead, 2), peak.reshape(lead)


def heatmap_peaks(heatmap: torch.Tensor, threshold: float, min_distance: int = 2):
    """All local maxima of one heatmap (h, w) above ``threshold``: (m, 2) sub-pixel (x, y), values."""
    pooled = F.max_pool2d(heatmap[None, None], 2 * min_distance + 1, stride=1, padding=min_distance)[0, 0]
    py, px = torch.nonzero((heatmap >= pooled) & (heatmap > threshold), as_tuple=True)
    values = heatmap[py, px]
    rows = torch.zeros_like(py)
    points = _refine(heatmap.clamp_min(1e-6).log()[None], rows, py, px).to(heatmap.dtype)
    return points, values



def gaussian_heatmaps(points: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Training targets: one Gaussian (peak 1) per point; points (B, k, 2) -> (B, k, h, w)."""
    h, w = size
    ys = torch.arange(h, dtype=points.dtype)[None, None, :, None]
    xs = torch.arange(w, dtype=points.dtype)[None, None, None, :]
    d2 = (xs - points[..., 0, None, None]) ** 2 + (ys - points[..., 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma ** 2))

