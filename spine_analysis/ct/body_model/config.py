"""Every setting of the body model that changes a prediction, stored beside its weights."""
from __future__ import annotations

from dataclasses import dataclass

from ...ml.bundle import BundleConfig


@dataclass(frozen=True)
class BodyConfig(BundleConfig):
    """Network shapes, the patch the network sees and how its output is read."""

    spacing_mm: float = 1.0                        # the patch's isotropic spacing (the paper's 1 mm)
    patch_xyz: tuple[int, int, int] = (96, 96, 64)  # inference patch around the seed, voxels (x, y, z)
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    res_units: int = 1
    seed_sigma_mm: float = 6.0                     # the Gaussian blob that tells the network which vertebra
    hu_window: tuple[float, float] = (-1000.0, 1500.0)   # clipped to, then divided by hu_scale
    hu_scale: float = 500.0
    min_probability: float = 0.5                   # a voxel is centrum (or body) above this
    seed_reach_mm: float = 0.0                     # the seed must lie this close to the body found
    recentre: bool = True                          # segment again from the found body's centre ...
    recentre_passes: int = 3                       # ... at most this often, until the centre stays put
    recentre_tolerance_mm: float = 1.0             # ... within this (or comes back to an earlier seed)
    opening_mm: float = 3.0                        # bridges thinner than twice this do not join a body
    waist_ratio: float = 0.0                       # a body whose axial area falls below this share of its
                                                   # smaller peak (a broad bridge through a disc) is cut there
    closing_mm: float = 2.0                        # the body is closed by this, holes filled: one solid
    shell_mm: float = 3.0                          # the centrum is the body less this shell (VerSe's border)
    air_hu: float = -500.0                         # a seed below this is in air (or outside the patient): refused
    min_bone_hu: float = 200.0                     # a patch with nothing above this holds no bone: refused
