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


def _soft(mask: np.ndarray, sigma_vox: float = 1.0) -> np.ndarray:
    """A 0-1 weight that follows ``mask`` with a blurred edge: no step a network could key on."""
    return ndi.gaussian_filter(mask.astype(np.float32), sigma_vox)


def osteoporotic(hu: np.ndarray, interior: np.ndarray, factor: float) -> np.ndarray:
    """Trabecular bone thinned: HU inside ``interior`` (the centrum) scaled by ``factor`` (a third
    to one), as in osteoporosis, where the marrow's HU falls and the cortex stays."""
    return hu * (1.0 - _soft(interior) * (1.0 - factor))


def simulated_lesion(hu: np.ndarray, interior: np.ndarray, rng: np.random.Generator, kind: str,
                     radius_mm: tuple[float, float] = (3.0, 10.0)) -> np.ndarray:
    """A metastasis-like focus in the centrum on a 1 mm grid: an ellipsoid around a random
    ``interior`` voxel, clipped to the interior, set to soft-tissue HU (``lytic``: 0-60 HU, bone
    destroyed) or to dense bone (``blastic``: 500-1100 HU), with a blurred edge and the image's
    texture kept. The label does not change: a lesion is still inside the centrum."""
    voxels = np.argwhere(interior)
    if not len(voxels):
        return hu
    centre = voxels[rng.integers(len(voxels))]
    radii = rng.uniform(*radius_mm, 3)
    z, y, x = np.ogrid[: hu.shape[0], : hu.shape[1], : hu.shape[2]]
    inside = ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 \
        + ((x - centre[2]) / radii[2]) ** 2 <= 1
    level = rng.uniform(0.0, 60.0) if kind == "lytic" else rng.uniform(500.0, 1100.0)
    texture = hu - ndi.gaussian_filter(hu, 2.0)
    weight = _soft(inside & interior)
    return hu * (1 - weight) + (level + 0.5 * texture) * weight


def vertebra_only(hu: np.ndarray, vertebra: np.ndarray, value: float) -> np.ndarray:
    """Everything outside the vertebra (dilated by 1-2 mm) set to ``value``: the input of finite-element
    and bone-density tools, which keep the bone and zero the rest."""
    return np.where(ndi.binary_dilation(vertebra, iterations=2), hu, value)
