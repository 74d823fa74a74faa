"""The one place that maps image pixels to physical RAS millimetres and back.

Pixel (x, y) is IJK (i, j) exactly: x = column = i, y = row = j, pixel centres at integer
coordinates (the convention of ``landmarks.py``, SimpleITK continuous indices and Slicer).
Geometry is a 4x4 homogeneous IJK-to-RAS matrix, the form Slicer gives for a volume node
(``volumeNode.GetIJKToRASMatrix``); ``ijk_to_ras_from_sitk`` builds it from a SimpleITK image,
whose spacing, origin and direction are in LPS. So landmarks land on the image in Slicer
whatever its spacing, origin and axis directions.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

#: LPS <-> RAS for homogeneous points: negate x and y. It is its own inverse.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def flip_lps_ras(point) -> np.ndarray:
    """A point (x, y, z) from LPS to RAS, or back (x and y change sign): SimpleITK and the engine speak LPS,
    Slicer RAS."""
    return (LPS_TO_RAS @ np.append(np.asarray(point, dtype=float).reshape(3), 1.0))[:3]


def _embed_3d(values, fill: np.ndarray) -> np.ndarray:
    """Place 2D geometry (2-vector or 2x2 matrix) into the top-left of the 3D ``fill``."""
    values = np.asarray(values, dtype=float)
    if values.shape == fill.shape:
        return values
    if values.shape != (2,) * fill.ndim:
        raise ValueError(f"expected shape {fill.shape} or {(2,) * fill.ndim}, got {values.shape}")
    out = fill.copy()
    out[(slice(0, 2),) * fill.ndim] = values
    return out


def ijk_to_ras_matrix(spacing, origin_ras=(0.0, 0.0, 0.0), direction_ras=None) -> np.ndarray:
    """A 4x4 IJK-to-RAS matrix from spacing (i, j[, k]) mm, the RAS position of voxel (0, 0, 0)
    and a direction matrix whose columns are the RAS unit vectors of the i, j (and k) axes.

    2D geometry (2 spacings, 2 origin values, 2x2 direction) is taken as the k = 0 slice of a
    volume with k = 1 mm towards S; the default direction is identity (i towards R, j towards A).
    """
    spacing = _embed_3d(spacing, np.ones(3))
    if np.any(spacing <= 0):
        raise ValueError(f"spacing must be positive, got {spacing.tolist()}")
    direction = _embed_3d(np.eye(3) if direction_ras is None else direction_ras, np.eye(3))
    matrix = np.eye(4)
    matrix[:3, :3] = direction * spacing  # scales column c by spacing[c]
    matrix[:3, 3] = _embed_3d(origin_ras, np.zeros(3))
    return matrix


def ijk_to_ras_from_sitk(image: sitk.Image) -> np.ndarray:
    """The IJK-to-RAS matrix of a 2D or 3D SimpleITK image, whose geometry is LPS.

    A 2D image becomes the k = 0 slice with k towards S, as Slicer loads a 2D file.
    """
    dim = image.GetDimension()
    if dim not in (2, 3):
        raise ValueError(f"a 2D or 3D image is expected, got {dim}D")
    flip = LPS_TO_RAS[:3, :3]
    origin_lps = _embed_3d(image.GetOrigin(), np.zeros(3))
    direction_lps = _embed_3d(np.reshape(image.GetDirection(), (dim, dim)), np.eye(3))
    return ijk_to_ras_matrix(image.GetSpacing(), flip @ origin_lps, flip @ direction_lps)


def _checked_matrix(ijk_to_ras) -> np.ndarray:
    matrix = np.asarray(ijk_to_ras, dtype=float)
    if matrix.shape != (4, 4):
        raise ValueError(f"an IJK-to-RAS matrix must be 4x4, got shape {matrix.shape}")
    return matrix


def _points(points, width: int) -> np.ndarray:
    pts = np.asarray(points, dtype=float)
    if pts.shape[-1:] != (width,) or pts.ndim > 2:
        raise ValueError(f"points must be shaped (n, {width}) or ({width},), got {pts.shape}")
    return pts


def pixel_to_ras(points_xy, ijk_to_ras, k: float = 0.0) -> np.ndarray:
    """Pixel points (x = column, y = row), (n, 2) or (2,), to RAS millimetres on slice ``k``."""
    pts = _points(points_xy, 2)
    column = pts.shape[:-1] + (1,)
    ijk1 = np.concatenate([pts, np.full(column, float(k)), np.ones(column)], axis=-1)
    return (ijk1 @ _checked_matrix(ijk_to_ras).T)[..., :3]


def ras_to_ijk(points_ras, ijk_to_ras) -> np.ndarray:
    """RAS millimetres, (n, 3) or (3,), to continuous IJK indices."""
    pts = _points(points_ras, 3)
    ras1 = np.concatenate([pts, np.ones(pts.shape[:-1] + (1,))], axis=-1)
    return (ras1 @ np.linalg.inv(_checked_matrix(ijk_to_ras)).T)[..., :3]


def ras_to_pixel(points_ras, ijk_to_ras) -> np.ndarray:
    """RAS millimetres, (n, 3) or (3,), to pixel points (x = column, y = row) of a radiograph.

    The slice index k is dropped: a point off the image plane is projected onto it along the
    k axis (markups placed on a 2D image in Slicer lie on it, k ~ 0). Use ``ras_to_ijk`` to
    check k when that matters.
    """
    return ras_to_ijk(points_ras, ijk_to_ras)[..., :2]
