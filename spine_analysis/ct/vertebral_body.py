"""Click a vertebra, get its trabecular centrum: ``segment_vertebral_body`` and its metrics.

The seed is a physical point (LPS, or RAS from Slicer, named explicitly). A 1 mm patch around
it, aligned with the patient's axes (``patches``), goes through the body network (``unet``) or
the classical rules (``classical``); the body part holding the seed is kept and its centrum
comes back on the CT's own grid, whatever the CT's spacing and direction. A seed that is not
inside a vertebral body is refused with a message saying where it is, never segmented anyway.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import SpineAnalysisError
from .body_model.config import BodyConfig
from .body_model.inference import body_probabilities
from .classical_body import classical_body
from .patches import contains_point, patch_grid, patch_to_scan, sample_patch, to_lps

METHODS = ("unet", "classical")


@dataclass
class BodySegmentation:
    """One vertebra's centrum and body as boolean (z, y, x) arrays on the CT's grid."""

    seed_lps: np.ndarray
    method: str
    centrum: np.ndarray
    body: np.ndarray
    seconds: float
    model: str = ""


def check_ct_volume(ct: sitk.Image) -> None:
    """Refuse what cannot be a CT volume: not 3D, several components, 8-bit pixels, no contrast."""
    if ct.GetDimension() != 3 or ct.GetSize()[2] < 2:
        raise SpineAnalysisError("a 3D CT volume is expected, not a 2D image")
    if ct.GetNumberOfComponentsPerPixel() != 1:
        raise SpineAnalysisError("the volume has several components per voxel (colour?); a CT volume is expected")
    if ct.GetPixelID() in (sitk.sitkUInt8, sitk.sitkInt8):
        raise SpineAnalysisError("the volume has 8-bit voxels: a CT in Hounsfield units is expected")


def _seed_voxel(config_patch_xyz: Sequence[int]) -> tuple[int, int, int]:
    """The patch voxel (z, y, x) nearest the seed, which lies at the patch's centre."""
    return tuple(int(round((n - 1) / 2)) for n in reversed(config_patch_xyz))


def _refuse_seed(hu: np.ndarray, seed_zyx, config: BodyConfig) -> None:
    """A seed in air, or with no bone anywhere near, is refused before anything is segmented."""
    z, y, x = seed_zyx
    at_seed = float(np.median(hu[z - 1:z + 2, y - 1:y + 2, x - 1:x + 2]))
    if at_seed < config.air_hu:
        raise SpineAnalysisError(f"the seed is in air ({at_seed:.0f} HU): click inside a vertebral body")
    if hu.max() < config.min_bone_hu:
        raise SpineAnalysisError(
            f"there is no bone within {hu.shape[2] // 2} mm of the seed (nothing above {config.min_bone_hu:.0f} HU): "
            "click inside a vertebral body of a CT in Hounsfield units")


def _part_at_seed(mask: np.ndarray, seed_zyx, reach_vox: float) -> np.ndarray:
    """The connected part of ``mask`` that holds the seed or passes within ``reach_vox`` of it."""
    parts, count = ndi.label(mask)
    if count == 0:
        return np.zeros_like(mask)
    distance, nearest = ndi.distance_transform_edt(parts == 0, return_indices=True)
    if distance[tuple(seed_zyx)] > reach_vox:
        return np.zeros_like(mask)
    return parts == parts[tuple(int(nearest[a][tuple(seed_zyx)]) for a in range(3))]


def _body_at(ct: sitk.Image, seed_lps: np.ndarray, method: str, model, config: BodyConfig):
    """(patch grid, body part holding the seed, body and centrum probabilities) for one seed;
    the body part is empty when the seed is not inside a body."""
    grid = patch_grid(seed_lps, config.patch_xyz, config.spacing_mm)
    hu = sample_patch(ct, grid)
    seed_zyx = _seed_voxel(config.patch_xyz)
    _refuse_seed(hu, seed_zyx, config)
    if method == "unet":
        body_p, centrum_p = body_probabilities(model, hu, seed_zyx)
    else:
        body_p, centrum_p = (m.astype(np.float32) for m in classical_body(hu, seed_zyx))
    body = _part_at_seed(body_p > config.min_probability, seed_zyx, config.seed_reach_mm / config.spacing_mm)
    return grid, body, body_p, centrum_p


def segment_vertebral_body(ct: sitk.Image, seed: Sequence[float], coordinate_system: str, method: str = "unet",
                           model=None, config: BodyConfig | None = None) -> BodySegmentation:
    """The centrum and body of the vertebra clicked at ``seed`` (mm, in ``coordinate_system`` "lps" or "ras").

    ``ct`` is in HU (density-calibrated values work too); ``model`` is a loaded body network
    (``body_model.weights_io.load_model``), which the "unet" method needs: the caller loads it once.
    With ``config.recentre`` the vertebra is segmented a second time from the centre of the body
    the click found, so that where inside the body the user clicked changes little. Raises
    ``SpineAnalysisError`` when the seed is outside the volume, in air, away from bone, or not
    inside a vertebral body; ``ValueError`` for the "unet" method without a model.
    """
    if method not in METHODS:
        raise SpineAnalysisError(f"unknown method {method!r}; choose {' or '.join(METHODS)}")
    if method == "unet" and model is None:
        raise ValueError("the unet method needs a loaded body model (body_model.weights_io.load_model)")
    check_ct_volume(ct)
    started = time.perf_counter()
    seed_lps = to_lps(seed, coordinate_system)
    if not contains_point(ct, seed_lps):
        raise SpineAnalysisError(f"the seed ({', '.join(f'{v:.1f}' for v in seed_lps)} mm, LPS) lies outside "
                                 "the CT volume")
    # the classical method's first answer is its best: from the centre of a rough body it does no better
    config = model.config if method == "unet" else (config or BodyConfig(recentre=False))
    grid, body, body_p, centrum_p = _body_at(ct, seed_lps, method, model, config)
    if not body.any():
        raise SpineAnalysisError("the seed is not inside a vertebral body (it lies in soft tissue, a disc "
                                 "or between two vertebrae): click inside the body")
    if config.recentre:   # on the CT voxel nearest the body's centre: nearby clicks then give the same patch
        centre = grid.TransformContinuousIndexToPhysicalPoint([float(v) for v in np.argwhere(body).mean(axis=0)[::-1]])
        centre = np.array(ct.TransformIndexToPhysicalPoint(ct.TransformPhysicalPointToIndex(centre)))
        if contains_point(ct, centre):
            again = _body_at(ct, centre, method, model, config)
            if again[1].any():
                grid, body, body_p, centrum_p = again
    centrum_p = np.where(ndi.binary_dilation(body), centrum_p, 0.0)
    centrum_patch = _part_at_seed(centrum_p > config.min_probability, _seed_voxel(config.patch_xyz), np.inf)
    centrum = patch_to_scan(np.where(ndi.binary_dilation(centrum_patch), centrum_p, 0.0), grid, ct,
                            config.min_probability)
    if not centrum.any():
        raise SpineAnalysisError("the vertebral body at the seed has no trabecular interior on this scan's grid "
                                 "(too coarse, or not a vertebra): nothing to measure")
    body_on_scan = patch_to_scan(np.where(body, body_p, 0.0), grid, ct, config.min_probability)
    return BodySegmentation(seed_lps, method, centrum, body_on_scan | centrum,
                            time.perf_counter() - started)


@dataclass(frozen=True)
class DensityThresholds:
    """HU settings of the metrics (see the README for their sources)."""

    lytic_below_hu: float = 0.0         # centrum voxels below: counted as lytic
    sclerotic_above_hu: float = 400.0   # centrum voxels above: counted as sclerotic
    osteoporosis_at_most_hu: float = 110.0   # Pickhardt et al. 2013, L1: specificity ~90 % for osteoporosis
    normal_above_hu: float = 160.0           # Pickhardt et al. 2013, L1: sensitivity ~90 % for normal density


def density_hint(mean_hu: float, level: str | None, thresholds: DensityThresholds = DensityThresholds()) -> str:
    """An opportunistic screening hint from the centrum's mean HU: not a diagnosis."""
    where = "" if level == "L1" else " (thresholds were set on L1)"
    if mean_hu <= thresholds.osteoporosis_at_most_hu:
        band = f"at most {thresholds.osteoporosis_at_most_hu:.0f} HU: osteoporosis likely"
    elif mean_hu > thresholds.normal_above_hu:
        band = f"above {thresholds.normal_above_hu:.0f} HU: bone density likely normal"
    else:
        band = (f"between {thresholds.osteoporosis_at_most_hu:.0f} and {thresholds.normal_above_hu:.0f} HU: "
                "indeterminate, osteopenia possible")
    return f"screening hint, not a diagnosis{where}: {band}; confirm with DXA"


@dataclass
class CentrumMetrics:
    """What the module reports for one vertebra's centrum. ``method`` and ``seed_lps`` are empty
    for a centrum measured as given (e.g. after editing it)."""

    index: int
    level: str
    level_from: str
    volume_ml: float
    hu_mean: float
    hu_median: float
    hu_std: float
    lytic_share: float
    sclerotic_share: float
    density_hint: str
    method: str = ""
    seed_lps: list[float] = field(default_factory=list)
    body_volume_ml: float | None = None
    seconds: float | None = None
    thresholds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def measure_centrum(ct: sitk.Image, centrum: np.ndarray, index: int, level: str, level_from: str,
                    thresholds: DensityThresholds = DensityThresholds()) -> CentrumMetrics:
    """Volume and HU statistics of a centrum mask ((z, y, x) on the CT's grid); ``index`` is its label."""
    if not centrum.any():
        raise SpineAnalysisError(f"label {index} ({level}) is empty: nothing to measure")
    hu = sitk.GetArrayViewFromImage(ct)[centrum].astype(np.float64)
    mean = float(hu.mean())
    return CentrumMetrics(
        index=index, level=level, level_from=level_from,
        volume_ml=hu.size * float(np.prod(ct.GetSpacing())) / 1000.0,
        hu_mean=mean, hu_median=float(np.median(hu)), hu_std=float(hu.std(ddof=1)) if hu.size > 1 else 0.0,
        lytic_share=float(np.mean(hu < thresholds.lytic_below_hu)),
        sclerotic_share=float(np.mean(hu > thresholds.sclerotic_above_hu)),
        density_hint=density_hint(mean, level, thresholds), thresholds=asdict(thresholds))


def centrum_metrics(ct: sitk.Image, segmentation: BodySegmentation, index: int, level: str, level_from: str,
                    thresholds: DensityThresholds = DensityThresholds()) -> CentrumMetrics:
    """``measure_centrum`` of a segmentation, with how it was made."""
    metrics = measure_centrum(ct, segmentation.centrum, index, level, level_from, thresholds)
    metrics.method = segmentation.method
    metrics.seed_lps = [round(float(v), 2) for v in segmentation.seed_lps]
    metrics.body_volume_ml = float(segmentation.body.sum()) * float(np.prod(ct.GetSpacing())) / 1000.0
    metrics.seconds = segmentation.seconds
    return metrics


def _name_level(segmentation: BodySegmentation, entered: str | None, label_map: sitk.Image | None,
                centroids: dict | None) -> tuple[str, str]:
    """(level, where it came from): a label map or centroid file when given, else the user's entry.

    A file and an entry that disagree are refused; a vertebra nothing names is "unnamed"."""
    found, source = None, ""
    if label_map is not None:
        from .levels import level_from_label_map
        found, source = level_from_label_map(label_map, segmentation.centrum), "label map"
    elif centroids is not None:
        from .levels import level_from_centroids
        found, source = level_from_centroids(centroids, segmentation.seed_lps), "centroid file"
    if found and entered and found != entered:
        raise SpineAnalysisError(f"the {source} says this vertebra is {found} but {entered} was entered")
    if found:
        return found, source
    if entered:
        return entered, "entered"
    return "unnamed", f"not in the {source}" if source else "not given"


def segment_vertebrae(ct: sitk.Image, seeds: Sequence[Sequence[float]], coordinate_system: str, method: str = "unet",
                      model=None, levels: Sequence[str | None] | None = None, label_map: sitk.Image | None = None,
                      centroids: dict | None = None, thresholds: DensityThresholds = DensityThresholds(),
                      progress=None) -> tuple[np.ndarray, np.ndarray, list[CentrumMetrics]]:
    """Segment the vertebra at each seed: the centra and the whole bodies (shell included) as label
    arrays on the CT's grid (value k for the k-th seed, uint8), and each centrum's metrics. Two
    seeds in the same vertebra are refused.

    ``levels`` are the user's names per seed (None: not entered); ``label_map`` (VerSe numbering,
    on the CT's grid) or ``centroids`` (``levels.read_verse_centroids``) name them instead when
    given. ``model`` is a loaded body network, needed by the "unet" method (see
    ``segment_vertebral_body``). ``progress(fraction, message)`` is told before each seed."""
    if not seeds:
        raise SpineAnalysisError("no seed given: click inside at least one vertebral body")
    if len(seeds) > 255:
        raise SpineAnalysisError("at most 255 seeds at a time")
    levels = list(levels or [])
    if len(levels) > len(seeds):
        raise SpineAnalysisError(f"{len(levels)} levels entered for {len(seeds)} seeds")
    levels += [None] * (len(seeds) - len(levels))
    if label_map is not None:
        from .bone_metrics import labels_on_ct_grid
        label_map = labels_on_ct_grid(ct, label_map)
    output = np.zeros(sitk.GetArrayViewFromImage(ct).shape, dtype=np.uint8)
    bodies = np.zeros_like(output)
    metrics = []
    for index, (seed, entered) in enumerate(zip(seeds, levels), start=1):
        if progress:
            progress((index - 1) / len(seeds), f"segmenting vertebra {index} of {len(seeds)}")
        try:
            segmentation = segment_vertebral_body(ct, seed, coordinate_system, method, model)
        except SpineAnalysisError as exc:
            raise SpineAnalysisError(f"seed {index}: {exc}") from None
        taken = output[segmentation.centrum]
        if taken.size and np.count_nonzero(taken) * 2 > taken.size:
            other = int(np.bincount(taken[taken > 0]).argmax())
            raise SpineAnalysisError(f"seeds {other} and {index} are in the same vertebra")
        output[segmentation.centrum & (output == 0)] = index
        bodies[segmentation.body & (bodies == 0)] = index
        level, source = _name_level(segmentation, entered, label_map, centroids)
        metrics.append(centrum_metrics(ct, segmentation, index, level, source, thresholds))
    return output, bodies, metrics
