"""Every setting of the fracture model that changes a prediction, stored beside its weights."""
from __future__ import annotations

from dataclasses import dataclass

from ...ml.bundle import BundleConfig


@dataclass(frozen=True)
class FractureConfig(BundleConfig):
    """Network shapes, how the CT is tiled, and how voxel probabilities become calls."""

    spacing_mm: float = 1.0                              # the paper's 1 mm isotropic resampling
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    res_units: int = 1
    hu_window: tuple[float, float] = (-1000.0, 1500.0)    # clipped to, then divided by hu_scale
    hu_scale: float = 500.0
    window_xyz: tuple[int, int, int] = (96, 96, 96)       # sliding-window tile, voxels (x, y, z)
    overlap: float = 0.25
    body_probability: float = 0.5        # a voxel is vertebral body (normal or fractured) above this
    cube_half_mm: float = 10.0           # vertebra level: the cube around the centroid (paper: 10 voxels)
    gaussian_sigma_mm: float = 6.0       # ... whose voxels are weighted by this Gaussian
    calibration: tuple[float, float] | None = None   # Platt (slope, intercept) on the logit of a vertebra's
    #   fractured share, fitted on held-out folds after training (model card); None: the share as it is
    fracture_threshold: float = 0.5      # a vertebra's (calibrated) probability at or above: fractured
    component_probability: float = 0.5   # patient level: confident fracture voxels ...
    component_min_ml: float = 2.0        # ... in connected groups at least this large
    min_body_ml: float = 4.0             # found vertebrae (no centroids given): smaller parts are noise
    max_body_height_mm: float = 45.0     # ... and a taller part is two bodies joined across a disc
    max_body_ml: float = 120.0           # ... and a larger part is not one body (a pelvis, an organ)
    chain_step_mm: tuple[float, float] = (15.0, 45.0)   # ... the spine: one vertebra to the next, centre to centre
    chain_max_tilt_deg: float = 50.0     # ... each step at most this far off the patient's long axis
    chain_max_offset_mm: float = 15.0    # ... each vertebra this near the line through its two neighbours
    edge_box_mm: tuple[float, float, float] = (20.0, 20.0, 15.0)   # body voxels this near a centroid
    #   (x, y, z half-sides) reaching the scan's edge: that vertebra is cut, not assessed
    genant_call_grade: int = 2           # a morphometric grade at or above this calls a vertebra fractured
    min_bone_hu: float = 200.0           # found vertebrae: a body holds voxels above this (its cortex)
    component_reach_mm: float = 25.0     # a group of fracture voxels this near an assessed centroid belongs to it
    neighbour_mm: float = 50.0           # morphometry: neighbours farther than this are not a height reference
    label_patch_xyz: tuple[int, int, int] = (112, 112, 96)   # the 1 mm grid a body is measured on (x, y, z)
    tail_fraction: float = 0.2           # tails thinner than a ball of this share of the body's height ...
    tail_radius_mm: tuple[int, int] = (2, 5)   # ... within these radii are cut off before heights are measured:
    #   a fixed 3 mm left pedicle stubs on lumbar bodies, 5 mm shrank the small upper thoracic ones (model card);
    #   a label map's bodies are reduced the same way (their corner spurs), so both give the same heights
    max_slice_mm: float = 3.0            # heights only when the CT's spacing along the long axis is at most this:
    #   on thicker slices the classifier alone decides (5 mm slices made a normal L1 a "moderate wedge")
