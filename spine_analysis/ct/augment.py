"""Augmentations the CT networks share: random rotations and thick-slice simulation."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def random_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A rotation matrix of up to ``max_deg`` degrees about each axis."""
    angles = np.radians(rng.uniform(-max_deg, max_deg, 3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def coarsen_z(hu: np.ndarray, slice_mm: float) -> np.ndarray:
    """The crop as a scan with ``slice_mm`` slices would show it, back at 1 mm."""
    smoothed = ndi.gaussian_filter1d(hu, sigma=slice_mm / 2.355, axis=0)
    thick = ndi.zoom(smoothed, (1.0 / slice_mm, 1, 1), order=1)
    return ndi.zoom(thick, (hu.shape[0] / thick.shape[0], 1, 1), order=1)[: hu.shape[0]]
