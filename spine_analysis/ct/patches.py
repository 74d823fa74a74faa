"""Patches around a physical point, on a grid aligned with the patient's axes, and back.

The CT networks and the classical method work on a patch resampled to a fixed spacing with
an identity direction (x to the patient's left, y to posterior, z to superior: LPS), centred
on a seed. Whatever the scan's spacing or direction matrix (oblique included), the patch looks
the same; results go back onto the scan's own voxel grid. Points are LPS, as in ITK; Slicer's
RAS points are converted with ``to_lps``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..coords import flip_lps_ras
from ..errors import SpineAnalysisError

#: What a patch holds where it reaches past the scan: air.
OUTSIDE_HU = -1024.0


def to_lps(point: Sequence[float], coordinate_system: str) -> np.ndarray:
    """A physical point in LPS from one given in ``coordinate_system`` ("lps" or "ras")."""
    coordinate_system = coordinate_system.lower()
    if coordinate_system not in ("lps", "ras"):
        raise SpineAnalysisError(f"unknown coordinate system {coordinate_system!r}: use 'lps' or 'ras'")
    point = np.asarray(point, dtype=float)
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise SpineAnalysisError(f"a point needs three finite coordinates, got {list(np.ravel(point))}")
    return flip_lps_ras(point) if coordinate_system == "ras" else point


def contains_point(image: sitk.Image, point_lps: np.ndarray) -> bool:
    """Whether ``point_lps`` lies inside the image's voxels (within half a voxel of the outer centres)."""
    index = np.array(image.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in point_lps)))
    return bool(np.all(index >= -0.5) and np.all(index <= np.array(image.GetSize()) - 0.5))


def patch_grid(centre_lps: np.ndarray, size_xyz: Sequence[int], spacing_mm: float) -> sitk.Image:
    """An empty image of ``size_xyz`` voxels of ``spacing_mm``, LPS-aligned, centred on ``centre_lps``."""
    size = np.asarray(size_xyz, dtype=int)
    grid = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    grid.SetSpacing([float(spacing_mm)] * 3)
    grid.SetOrigin([float(v) for v in np.asarray(centre_lps) - (size - 1) / 2.0 * spacing_mm])
    return grid


def ct_grid(ct: sitk.Image, spacing_mm: float) -> sitk.Image:
    """An LPS-aligned grid of ``spacing_mm`` covering the whole CT (any direction, oblique too)."""
    size = np.array(ct.GetSize())
    corners = np.array([ct.TransformContinuousIndexToPhysicalPoint([float(v) for v in corner])
                        for corner in np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in size])).reshape(3, -1).T])
    low, high = corners.min(axis=0), corners.max(axis=0)
    voxels = np.maximum(1, np.ceil((high - low) / spacing_mm).astype(int))
    return patch_grid((low + high) / 2, voxels, spacing_mm)


def sample_patch(image: sitk.Image, grid: sitk.Image, labels: bool = False,
                 outside: float = OUTSIDE_HU) -> np.ndarray:
    """``image`` resampled onto ``grid`` as a (z, y, x) array: linear for intensities (float32,
    ``outside`` past the scan), nearest neighbour for a label map (``labels``, 0 past it)."""
    interpolator = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    pixel = sitk.sitkUInt16 if labels else sitk.sitkFloat32
    default = 0.0 if labels else float(outside)
    resampled = sitk.Resample(image, grid, sitk.Transform(), interpolator, default, pixel)
    return sitk.GetArrayFromImage(resampled)


def patch_on_scan_region(values: np.ndarray, grid: sitk.Image, scan: sitk.Image) -> sitk.Image | None:
    """Patch ``values`` (z, y, x) resampled linearly onto the scan voxels the patch covers: an image of that
    region of the scan's grid (float32), or None when the patch misses the scan."""
    size = np.array(scan.GetSize())
    corners = np.array([[grid.TransformIndexToPhysicalPoint((int(i), int(j), int(k)))
                         for i in (0, grid.GetSize()[0] - 1)
                         for j in (0, grid.GetSize()[1] - 1)
                         for k in (0, grid.GetSize()[2] - 1)]])[0]
    index = np.array([scan.TransformPhysicalPointToContinuousIndex(tuple(c)) for c in corners])
    low = np.clip(np.floor(index.min(axis=0)).astype(int) - 1, 0, size)
    high = np.clip(np.ceil(index.max(axis=0)).astype(int) + 2, 0, size)
    if np.any(high <= low):
        return None
    region = sitk.RegionOfInterest(scan, [int(v) for v in high - low], [int(v) for v in low])
    source = sitk.GetImageFromArray(np.ascontiguousarray(values, dtype=np.float32))
    source.CopyInformation(grid)
    return sitk.Resample(source, region, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def patch_to_scan(values: np.ndarray, grid: sitk.Image, scan: sitk.Image, threshold: float = 0.5) -> np.ndarray:
    """Where patch ``values`` (z, y, x, e.g. a probability) exceed ``threshold``, on the scan's grid.

    Interpolates linearly, so a 1 mm result lands smoothly on a 0.5 mm or a 3 mm scan. Only the
    scan voxels the patch covers are resampled; returns a boolean (z, y, x) array of the scan's shape.
    """
    full = np.zeros(scan.GetSize()[::-1], dtype=bool)
    on_region = patch_on_scan_region(values, grid, scan)
    if on_region is not None:
        low = scan.TransformPhysicalPointToIndex(on_region.GetOrigin())
        high = [a + n for a, n in zip(low, on_region.GetSize())]
        full[low[2]:high[2], low[1]:high[1], low[0]:high[0]] = sitk.GetArrayViewFromImage(on_region) > threshold
    return full


def reaches_edge(mask: np.ndarray, grid: sitk.Image, scan: sitk.Image, margin_vox: int = 2) -> bool:
    """Whether ``mask`` ((z, y, x) on ``grid``) comes within ``margin_vox`` voxels of the edge of
    ``scan``'s volume: a vertebra there may be cut, its label or its heights incomplete."""
    return bool(np.any(mask & ~ndi.binary_erosion(coverage(scan, grid), iterations=margin_vox)))


def coverage(scan: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """Which voxels of ``grid`` ((z, y, x) booleans) lie inside ``scan``'s volume."""
    ones = sitk.Image(scan.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(scan)
    return sample_patch(ones, grid, labels=True) > 0


def values_at_points(image: sitk.Image, points_lps: np.ndarray, order: int, outside: float = 0.0) -> np.ndarray:
    """``image`` at LPS points (..., 3): linear (``order`` 1, float32) or nearest (0, as stored) interpolation,
    ``outside`` past the image."""
    origin = np.array(image.GetOrigin())
    matrix = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    index = np.linalg.solve(matrix, (points_lps.reshape(-1, 3) - origin).T)       # (i, j, k) per point
    array = sitk.GetArrayViewFromImage(image)
    values = ndi.map_coordinates(array, index[::-1], output=np.float32 if order else array.dtype, order=order,
                                 mode="constant", cval=outside)
    return values.reshape(points_lps.shape[:-1])
