"""Every setting of the landmark model that changes a prediction, stored beside its weights.

Network shapes, preprocessing, heatmap decoding, level assignment, the shape-model limits and
the framing flag all live here, so the bundle's digest (``spine_analysis.ml.bundle``) names
exactly what produced a set of landmarks. Older ``config.json`` files that lack a setting get
its default, which is the value those models ran with.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ml.bundle import BundleConfig

from ..quality import MAX_NEIGHBOUR_TILT_DEG


@dataclass(frozen=True)
class LandmarkConfig(BundleConfig):
    """Settings of both steps, in working pixels unless a comment says otherwise."""

    # network shapes and geometry
    working_height: int = 1024
    n_vertebrae: int = 17
    centre_downsample: int = 4            # step 1 sees the working image at 1/4 scale
    centre_features: tuple[int, ...] = (16, 16, 32, 64, 128, 16)
    centre_sigma: float = 2.0             # heatmap Gaussian, step-1 pixels
    roi_spacings: float = 2.0             # step-2 region side, in vertebra spacings
    roi_size: int = 64                    # step-2 region, pixels
    corner_features: tuple[int, ...] = (16, 16, 32, 64, 128, 16)
    corner_sigma: float = 2.0             # heatmap Gaussian, step-2 pixels
    corner_stages: int = 2
    end_levels: tuple[int, ...] = ()      # levels (0 = T1) whose corners come from a corner network of their
                                          # own, fine-tuned on them (empty: none; the recipe: T1 and L5)
    member_seeds: tuple[int, ...] = ()    # an ensemble: the training seeds of its members, whose
                                          # heatmaps are averaged in both steps (empty: one network each)
    tta_gammas: tuple[float, ...] = ()    # test-time augmentation: both steps' heatmaps also averaged over
                                          # the image raised to these gammas (empty: the image as it is)
    centre_modes: int = 12                # PCA modes of the centre shape model
    corner_modes: int = 6                 # PCA modes of the corner shape model
    # preprocessing (``preprocess.to_working_image``)
    window_percentiles: tuple[float, float] = (0.5, 99.5)
    clahe_clip_limit: float = 0.01
    # step-1 heatmap peaks and their levels (``level_assignment``)
    peak_threshold: float = 0.2           # step-1 heatmap peaks below this are ignored
    peak_min_distance: int = 2            # step-1 pixels between two peaks
    missing_level_cost: float = 1.5       # per level the chain leaves unmatched
    skipped_peak_cost: float = 1.0        # times the value of each peak the chain skips
    step_ratio_weight: float = 1.0        # per unit of |log(found step / expected step)|, head to foot
    lateral_weight: float = 0.15          # per spacing of sideways mismatch between a step and the expected one
    max_level_gap: int = 3                # levels one step of the chain may jump
    max_peak_gap: int = 4                 # peaks one step of the chain may skip
    step_scale_range: tuple[float, float] = (0.7, 1.4)   # this spine's size against the mean spine's
    # shape models and corrections
    min_confidence: float = 0.25          # weaker heatmap peaks are replaced by the shape model
    max_shape_deviation: float = 0.5      # in spacings; farther points are replaced too
    turned_vertebra_limit_deg: float = MAX_NEIGHBOUR_TILT_DEG   # turned against both neighbours: replaced
    tilt_smoothing: float = 0.0           # Whittaker penalty on the tilts' second differences (0: none)
    # flags
    framing_limit_sd: float = 3.0         # T1 or L5 this many SD from the training framing: flagged
