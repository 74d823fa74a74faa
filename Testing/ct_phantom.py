"""A hand-built lumbar spine CT with known geometry, for the CT tests.

Three vertebral bodies (elliptic cylinders: a 1.5 mm cortex of 600 HU around 180 HU marrow)
stacked along z with 8 mm discs of 80 HU between them, a spinal canal ring behind each, in
40 HU soft tissue inside a body outline, air outside. The scan's grid is anisotropic and,
when asked, oblique, so that results must come back on any grid.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

BODY_RADII_MM = (20.0, 15.0)      # x (left-right), y (antero-posterior)
BODY_HEIGHT_MM = 24.0
DISC_MM = 8.0
CORTEX_MM = 1.5
CENTRES_Z_MM = (-32.0, 0.0, 32.0)  # bodies' centres; the middle one is at the origin
MARROW_HU, CORTEX_HU, DISC_HU, TISSUE_HU = 180.0, 600.0, 80.0, 40.0


def _oblique_direction(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def body_interior(points: np.ndarray, shrink_mm: float = 0.0) -> np.ndarray:
    """Which LPS points (N, 3) lie inside any body, shrunk by ``shrink_mm``."""
    x, y, z = points.T
    inside = np.zeros(len(points), dtype=bool)
    for cz in CENTRES_Z_MM:
        rx, ry = BODY_RADII_MM[0] - shrink_mm, BODY_RADII_MM[1] - shrink_mm
        inside |= ((x / rx) ** 2 + (y / ry) ** 2 <= 1) & (np.abs(z - cz) <= BODY_HEIGHT_MM / 2 - shrink_mm)
    return inside


def voxel_points(size, spacing, origin, direction) -> np.ndarray:
    """LPS points (N, 3) of every voxel of a grid, in the (z, y, x) order of its array."""
    index = np.indices(np.asarray(size)[::-1]).reshape(3, -1)[::-1].T          # (N, 3) as (i, j, k)
    return np.asarray(origin) + (index * np.asarray(spacing)) @ np.asarray(direction).reshape(3, 3).T


def phantom_ct(spacing=(0.8, 0.8, 2.0), size=(120, 110, 56), oblique_deg: float = 0.0,
               noise_hu: float = 10.0, seed: int = 0) -> sitk.Image:
    """The phantom on a grid of ``spacing`` and ``size`` (x, y, z) centred on the middle body."""
    direction = _oblique_direction(oblique_deg)
    spacing, size = np.asarray(spacing, float), np.asarray(size, int)
    origin = -direction @ ((size - 1) / 2 * spacing)
    points = voxel_points(size, spacing, origin, direction)
    x, y, z = points.T
    hu = np.full(len(points), -1000.0)
    hu[(x / 70) ** 2 + ((y - 15) / 60) ** 2 <= 1] = TISSUE_HU
    for cz in CENTRES_Z_MM:                                        # discs between and around the bodies
        disc = ((x / BODY_RADII_MM[0]) ** 2 + (y / BODY_RADII_MM[1]) ** 2 <= 1) \
            & (np.abs(z - cz) <= BODY_HEIGHT_MM / 2 + DISC_MM)
        hu[disc] = DISC_HU
    ring = np.hypot(x, y - 30) - 9.0                               # spinal canal: a bony ring behind the bodies
    hu[(ring > 0) & (ring < 3)] = CORTEX_HU
    hu[body_interior(points)] = CORTEX_HU
    hu[body_interior(points, CORTEX_MM)] = MARROW_HU
    hu += np.random.default_rng(seed).normal(0, noise_hu, len(points))
    image = sitk.GetImageFromArray(hu.reshape(size[::-1]).astype(np.int16))
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(origin.tolist())
    image.SetDirection(direction.ravel().tolist())
    return image


def reference_centrum(image: sitk.Image, shell_mm: float = 3.0, z_centre_mm: float = 0.0) -> np.ndarray:
    """The true centrum of the body at ``z_centre_mm`` on ``image``'s grid: (z, y, x) booleans."""
    size = np.array(image.GetSize())
    points = voxel_points(size, image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    inside = body_interior(points, shell_mm) & (np.abs(points[:, 2] - z_centre_mm) < BODY_HEIGHT_MM / 2 + DISC_MM / 2)
    return inside.reshape(size[::-1])


def phantom_labels(image: sitk.Image, levels=(21, 22, 23)) -> sitk.Image:
    """A label map of the phantom's bodies on ``image``'s grid: top, middle, bottom body labelled
    ``levels`` (VerSe numbering; default L2, L3, L4)."""
    labels = np.zeros(sitk.GetArrayViewFromImage(image).shape, dtype=np.uint8)
    for level, z in zip(levels, sorted(CENTRES_Z_MM, reverse=True)):
        labels[reference_centrum(image, shell_mm=0.0, z_centre_mm=z)] = level
    mask = sitk.GetImageFromArray(labels)
    mask.CopyInformation(image)
    return mask
