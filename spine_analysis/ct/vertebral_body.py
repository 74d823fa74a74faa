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
from .body_labels import bounding_box, centrum_from_body, dilate_by_ball, largest_part, open_by_ball
from .classical_body import classical_body
from .lesions import lesion_masks
from .patches import contains_point, patch_grid, patch_to_scan, sample_patch, to_lps

METHODS = ("unet", "classical")
#: Slices thicker than this get a warning: a centrum is then only a few slices tall.
THICK_SLICE_MM = 3.0
#: The thickest shell a user may remove (a body is some 25 mm tall).
MAX_SHELL_MM = 6.0
#: A CT of the spine holds at least this much bone (ml above ``BONE_HU``): a single small vertebra
#: holds several.
MIN_BONE_ML = 1.0
BONE_HU = 200.0
#: The median of a CT's non-air voxels (soft tissue, fat, bone, or zeroed surroundings) lies here, even
#: in a tight crop around a dense vertebra.
TISSUE_HU = (-250.0, 400.0)


@dataclass
class BodySegmentation:
    """One vertebra's centrum and body as boolean (z, y, x) arrays on the CT's grid."""

    seed_lps: np.ndarray
    method: str
    centrum: np.ndarray
    body: np.ndarray
    seconds: float
    model: str = ""
    shell_mm: float = 3.0       # the shell removed from the body to leave the centrum
    slice_mm: float = 0.0       # the CT's slice thickness (spacing along the spine)


def check_ct_volume(ct: sitk.Image) -> None:
    """Refuse what cannot be a CT volume: not 3D, several components, 8-bit pixels, no contrast."""
    if ct.GetDimension() != 3 or ct.GetSize()[2] < 2:
        raise SpineAnalysisError("a 3D CT volume is expected, not a 2D image")
    if ct.GetNumberOfComponentsPerPixel() != 1:
        raise SpineAnalysisError("the volume has several components per voxel (colour?); a CT volume is expected")
    if ct.GetPixelID() in (sitk.sitkUInt8, sitk.sitkInt8):
        raise SpineAnalysisError("the volume has 8-bit voxels: a CT in Hounsfield units is expected")


def check_spine_ct(ct: sitk.Image) -> None:
    """Refuse, before any model runs, a volume that is not a CT of bone: ``check_ct_volume``, then
    less than ``MIN_BONE_ML`` above ``BONE_HU`` (a water phantom, an MR) or tissue that is not at
    CT values (the median of what is not air far from water's 0 HU: an MR's arbitrary units).
    Zeroed surroundings (finite-element inputs) and density-calibrated scans pass."""
    check_ct_volume(ct)
    values = sitk.GetArrayViewFromImage(ct)
    step = max(1, round(min(values.shape) / 64))   # a sample of voxels is enough for both checks
    sample = values[::step, ::step, ::step].astype(np.float32)
    bone_ml = float(np.count_nonzero(sample > BONE_HU)) * step ** 3 * float(np.prod(ct.GetSpacing())) / 1000.0
    if bone_ml < MIN_BONE_ML:
        raise SpineAnalysisError(f"no bone in this volume (about {bone_ml:.1f} ml above {BONE_HU:.0f} HU): not a CT "
                                 "of the spine in Hounsfield units (an MR, a phantom?)")
    tissue = float(np.median(sample[sample > -500]))
    if not TISSUE_HU[0] <= tissue <= TISSUE_HU[1]:
        raise SpineAnalysisError(f"the tissue in this volume has a median of {tissue:.0f}, not the "
                                 f"{TISSUE_HU[0]:.0f} to {TISSUE_HU[1]:.0f} HU of a CT: not a CT of the spine in "
                                 "Hounsfield units (an MR?)")


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


#: Fills the holes of each axial slice: only neighbours in the same slice connect.
_IN_SLICE = np.zeros((3, 3, 3), bool)
_IN_SLICE[1] = ndi.generate_binary_structure(2, 1)


def _solid(mask: np.ndarray, closing_vox: int) -> np.ndarray:
    """``mask`` as solid bone: closed by a ball of ``closing_vox``, holes filled in 3D and in each
    axial slice. Low-density marrow leaves the body network's output with holes and notches (a
    click there was refused and the centrum came in pieces); a vertebral body has none."""
    box = bounding_box(mask, closing_vox + 1)   # the same answer as on the whole patch, faster
    solid = np.zeros(mask.shape, dtype=bool)
    if box is None:
        return solid
    inside = mask[box]
    if closing_vox > 0:
        cross = ndi.generate_binary_structure(3, 1)
        inside = ndi.binary_closing(np.pad(inside, closing_vox), cross, iterations=closing_vox)[
            (slice(closing_vox, -closing_vox),) * 3]
    solid[box] = ndi.binary_fill_holes(ndi.binary_fill_holes(inside), structure=_IN_SLICE)
    return solid


def _body_at(ct: sitk.Image, seed_lps: np.ndarray, method: str, model, config: BodyConfig):
    """(patch grid, solid body holding the seed) for one seed; the body is empty when the seed is
    not inside one."""
    grid = patch_grid(seed_lps, config.patch_xyz, config.spacing_mm)
    hu = sample_patch(ct, grid)
    seed_zyx = _seed_voxel(config.patch_xyz)
    _refuse_seed(hu, seed_zyx, config)
    if method == "unet":
        body = body_probabilities(model, hu, seed_zyx)[0] > config.min_probability
    else:
        body = classical_body(hu, seed_zyx)[0]
    return grid, _one_body(body, seed_zyx, config)


def _one_body(mask: np.ndarray, seed_zyx, config: BodyConfig) -> np.ndarray:
    """The solid body at the seed from the network's (or the rules') body voxels: holes filled (a click
    in a hole lands inside), opened so that thin bridges through a disc to a neighbour's fragments
    do not join it, the part at the seed grown back inside the filled mask, then closed on its own."""
    filled = _solid(mask, 0)
    radius = round(config.opening_mm / config.spacing_mm)
    opened = open_by_ball(filled, radius) if radius > 0 else filled
    part = _part_at_seed(opened, seed_zyx, config.seed_reach_mm / config.spacing_mm)
    if not part.any():
        return part
    if radius > 0:
        part = filled & dilate_by_ball(part, radius)
    return _solid(part, round(config.closing_mm / config.spacing_mm))


def _cut_at_waist(body: np.ndarray, seed_zyx, ratio: float) -> np.ndarray:
    """The body cut in the middle of its narrowest axial slices, keeping the seed's side, when they have less
    than ``ratio`` of the area of the smaller peak on either side: a body that runs through a
    whole disc into its neighbour (a bridge too broad for the opening) narrows there. Only the
    middle 60 % of the body's rows are looked at, where a disc between two bodies must lie."""
    area = body.sum(axis=(1, 2)).astype(float)
    rows = np.flatnonzero(area)
    if ratio <= 0 or len(rows) < 5:
        return body
    inner = rows[len(rows) // 5: len(rows) - len(rows) // 5]
    narrow = inner[area[inner] <= 1.05 * area[inner].min()]
    waist = narrow[len(narrow) // 2]          # the middle of the disc, where it is uniformly narrow
    if area[waist] >= ratio * min(area[rows[0]:waist].max(), area[waist + 1:rows[-1] + 1].max()):
        return body
    kept = body.copy()
    if seed_zyx[0] > waist:
        kept[:waist + 1] = False
    else:
        kept[waist:] = False
    return _part_at_seed(kept, seed_zyx, np.inf)


def _body_centre(grid: sitk.Image, body: np.ndarray, ct: sitk.Image) -> np.ndarray:
    """The CT voxel centre nearest the body's centroid: nearby clicks then give the same patch."""
    centre = grid.TransformContinuousIndexToPhysicalPoint([float(v) for v in np.argwhere(body).mean(axis=0)[::-1]])
    return np.array(ct.TransformIndexToPhysicalPoint(ct.TransformPhysicalPointToIndex(centre)))


def _holds(grid: sitk.Image, body: np.ndarray, point_lps: np.ndarray) -> bool:
    """Whether the body (on ``grid``), grown by a voxel, holds ``point_lps``: after recentring, a click in a
    disc ends in one of the two bodies beside it, and is refused rather than moved there."""
    index = np.round(grid.TransformPhysicalPointToContinuousIndex([float(v) for v in point_lps])).astype(int)[::-1]
    if np.any(index < 0) or np.any(index >= body.shape):
        return False
    return bool(ndi.binary_dilation(body)[tuple(index)])


def slice_thickness_mm(ct: sitk.Image) -> float:
    """The CT's spacing along the voxel axis closest to the patient's long (S-I) axis."""
    direction = np.abs(np.array(ct.GetDirection()).reshape(3, 3))
    return float(ct.GetSpacing()[int(np.argmax(direction[2]))])


def thick_slice_warning(ct: sitk.Image) -> str | None:
    """One line for the user when the slices are too thick to trust a centrum's shape and height."""
    thickness = slice_thickness_mm(ct)
    if thickness <= THICK_SLICE_MM:
        return None
    return (f"slices are {thickness:.1f} mm thick (more than {THICK_SLICE_MM:.0f} mm): the centrum's borders "
            "are blurred along the spine, so its volume and HU are less certain and it may reach into a neighbour")


def _method_config(method: str, model, config: BodyConfig | None) -> BodyConfig:
    """The network's own settings, or the classical method's (``config``), which never recentres: its
    first answer is its best, from the centre of a rough body it does no better."""
    return model.config if method == "unet" else (config or BodyConfig(recentre=False))


def _recentred(ct: sitk.Image, first: tuple[sitk.Image, np.ndarray], method: str, model, config: BodyConfig,
               waist_ratio: float) -> tuple[sitk.Image, np.ndarray, bool]:
    """(patch grid, body, whether a waist was cut) from ``first``, the (grid, body) at the seed: segmented
    again from the body's centre (``config.recentre``) until that centre stays put (within
    ``recentre_tolerance_mm``), each body cut at a waist (``_cut_at_waist``) so that a body leaking through a
    disc moves its centre back into its own vertebra. When the centres go round a cycle instead (two bodies
    whose centres point at each other), the cycle's body whose seed sorts first is taken, so every click
    that ends in that cycle gives the same body."""
    centre_voxel = _seed_voxel(config.patch_xyz)
    grid, found = first
    body = _cut_at_waist(found, centre_voxel, waist_ratio)
    was_cut = body.sum() < found.sum()
    if not body.any():
        raise SpineAnalysisError("the seed is not inside a vertebral body (it lies in soft tissue, a disc "
                                 "or between two vertebrae): click inside the body")
    passes: list[tuple[np.ndarray, sitk.Image, np.ndarray]] = []      # (seed, grid, body) of each recentring
    for _ in range(config.recentre_passes if config.recentre else 0):
        centre = _body_centre(grid, body, ct)
        here = np.array(grid.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in config.patch_xyz]))
        if np.linalg.norm(centre - here) < config.recentre_tolerance_mm or not contains_point(ct, centre):
            break
        earlier = [k for k, (seed, _, _) in enumerate(passes)
                   if np.linalg.norm(seed - centre) < config.recentre_tolerance_mm]
        if earlier:
            _, grid, body = min(passes[earlier[0]:], key=lambda p: tuple(p[0]))
            break
        again_grid, found = _body_at(ct, centre, method, model, config)
        if not found.any():
            break
        grid, body = again_grid, _cut_at_waist(found, centre_voxel, waist_ratio)
        was_cut |= body.sum() < found.sum()
        passes.append((centre, grid, body))
    return grid, body, was_cut


def body_on_patch(ct: sitk.Image, seed_lps: np.ndarray, method: str, model,
                  config: BodyConfig | None = None) -> tuple[sitk.Image, np.ndarray]:
    """(1 mm patch grid, solid body on it) of the vertebra at ``seed_lps``: the body of
    ``segment_vertebral_body`` before it goes onto the scan's grid (heights are measured on a patch).
    Raises ``SpineAnalysisError`` as it does for a seed that is not inside a vertebral body.

    When a waist was cut on the way, the click must also lie in the body that recentring without cuts
    ends in: a click in a disc can settle on a cut body around it, while without cuts it ends in one of
    the two bodies beside the disc and is refused (held out, the cut alone accepted 3 more of 24 disc clicks)."""
    config = _method_config(method, model, config)
    first = _body_at(ct, seed_lps, method, model, config)
    grid, body, was_cut = _recentred(ct, first, method, model, config, config.waist_ratio)
    held = _holds(grid, body, seed_lps)
    if held and was_cut:
        held = _holds(*_recentred(ct, first, method, model, config, 0.0)[:2], seed_lps)
    if not held:
        raise SpineAnalysisError("the seed is not inside a vertebral body: the body found from it lies beside it "
                                 "(a disc or the gap between two vertebrae?): click inside the body")
    return grid, body


def segment_vertebral_body(ct: sitk.Image, seed: Sequence[float], coordinate_system: str, method: str = "unet",
                           model=None, config: BodyConfig | None = None,
                           shell_mm: float | None = None) -> BodySegmentation:
    """The centrum and body of the vertebra clicked at ``seed`` (mm, in ``coordinate_system`` "lps" or "ras").

    ``ct`` is in HU (density-calibrated values work too); ``model`` is a loaded body network
    (``body_model.weights_io.load_model``), which the "unet" method needs: the caller loads it once.
    The body is one solid (the connected part at the click, holes filled); the centrum is the body
    less a shell of ``shell_mm`` (default ``config.shell_mm``), so it is never in pieces. With
    ``config.recentre`` the vertebra is segmented again from the centre of the body found, until
    that centre stays put, so that where inside the body the user clicked changes little. Raises
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
    config = _method_config(method, model, config)
    try:
        shell_mm = config.shell_mm if shell_mm is None else float(shell_mm)
    except (TypeError, ValueError):
        raise SpineAnalysisError(f"a shell of {shell_mm!r} mm: give a number of mm") from None
    if not 0 <= shell_mm <= MAX_SHELL_MM:
        raise SpineAnalysisError(f"a shell of {shell_mm:g} mm: choose 0 to {MAX_SHELL_MM:g} mm")
    grid, body = body_on_patch(ct, seed_lps, method, model, config)
    centrum_patch = _part_at_seed(centrum_from_body(body, shell_mm, config.spacing_mm),
                                  _seed_voxel(config.patch_xyz), np.inf)
    # one piece on the scan's grid too: resampling can cut a thin bridge of the patch's one part
    centrum = largest_part(patch_to_scan(centrum_patch.astype(np.float32), grid, ct, 0.5))
    if not centrum.any():
        raise SpineAnalysisError("the vertebral body at the seed has no trabecular interior on this scan's grid "
                                 "(too coarse, or not a vertebra): nothing to measure")
    body_on_scan = patch_to_scan(body.astype(np.float32), grid, ct, 0.5)
    return BodySegmentation(seed_lps, method, centrum, body_on_scan | centrum,
                            time.perf_counter() - started, shell_mm=shell_mm, slice_mm=slice_thickness_mm(ct))


@dataclass(frozen=True)
class DensityThresholds:
    """HU settings of the metrics (see the README for their sources)."""

    lytic_below_hu: float = 0.0         # centrum regions below (lightly smoothed): lytic
    sclerotic_above_hu: float = 400.0   # centrum regions above (lightly smoothed): sclerotic
    min_lesion_ml: float = 0.1          # smaller regions are noise, not lesions (``lesions``)
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
    slice_mm: float | None = None    # the CT's slice thickness: above THICK_SLICE_MM, read with care
    shell_mm: float | None = None    # the shell removed from the body (segmented centra only)

    def to_dict(self) -> dict:
        return asdict(self)


def measure_centrum(ct: sitk.Image, centrum: np.ndarray, index: int, level: str, level_from: str,
                    thresholds: DensityThresholds = DensityThresholds()) -> CentrumMetrics:
    """Volume and HU statistics of a centrum mask ((z, y, x) on the CT's grid); ``index`` is its label.
    The lytic and sclerotic shares count regions of at least ``thresholds.min_lesion_ml``."""
    if not centrum.any():
        raise SpineAnalysisError(f"label {index} ({level}) is empty: nothing to measure")
    hu = sitk.GetArrayViewFromImage(ct)[centrum].astype(np.float64)
    mean = float(hu.mean())
    lytic, sclerotic = lesion_masks(ct, centrum, thresholds.lytic_below_hu, thresholds.sclerotic_above_hu,
                                    thresholds.min_lesion_ml)
    return CentrumMetrics(
        index=index, level=level, level_from=level_from,
        volume_ml=hu.size * float(np.prod(ct.GetSpacing())) / 1000.0,
        hu_mean=mean, hu_median=float(np.median(hu)), hu_std=float(hu.std(ddof=1)) if hu.size > 1 else 0.0,
        lytic_share=float(lytic.sum() / hu.size), sclerotic_share=float(sclerotic.sum() / hu.size),
        density_hint=density_hint(mean, level, thresholds), thresholds=asdict(thresholds),
        slice_mm=slice_thickness_mm(ct))


def centrum_metrics(ct: sitk.Image, segmentation: BodySegmentation, index: int, level: str, level_from: str,
                    thresholds: DensityThresholds = DensityThresholds()) -> CentrumMetrics:
    """``measure_centrum`` of a segmentation, with how it was made."""
    metrics = measure_centrum(ct, segmentation.centrum, index, level, level_from, thresholds)
    metrics.method = segmentation.method
    metrics.seed_lps = [round(float(v), 2) for v in segmentation.seed_lps]
    metrics.body_volume_ml = float(segmentation.body.sum()) * float(np.prod(ct.GetSpacing())) / 1000.0
    metrics.seconds = segmentation.seconds
    metrics.shell_mm = segmentation.shell_mm
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
                      progress=None, shell_mm: float | None = None,
                      refused: list | None = None) -> tuple[np.ndarray, np.ndarray, list[CentrumMetrics]]:
    """Segment the vertebra at each seed: the centra and the whole bodies (shell included) as label
    arrays on the CT's grid (value k for the k-th vertebra segmented, uint8), and each centrum's metrics.
    Two seeds in the same vertebra are refused. A seed that cannot be segmented raises; with a
    ``refused`` list it is appended there as (seed number, reason) instead and the other seeds go on.

    ``levels`` are the user's names per seed (None: not entered); ``label_map`` (VerSe numbering,
    on the CT's grid) or ``centroids`` (``levels.read_verse_centroids``) name them instead when
    given. ``model`` is a loaded body network, needed by the "unet" method (see
    ``segment_vertebral_body``, as is ``shell_mm``). ``progress(fraction, message)`` is told before each seed."""
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
    metrics: list[CentrumMetrics] = []
    for index, (seed, entered) in enumerate(zip(seeds, levels), start=1):
        if progress:
            progress((index - 1) / len(seeds), f"segmenting {entered or 'vertebra'} ({index} of {len(seeds)})")
        try:
            segmentation = segment_vertebral_body(ct, seed, coordinate_system, method, model, shell_mm=shell_mm)
        except SpineAnalysisError as exc:
            reason, message = str(exc), f"seed {index}: {exc}"
        else:
            taken = output[segmentation.centrum]
            if not taken.size or np.count_nonzero(taken) * 2 <= taken.size:
                label = len(metrics) + 1
                output[segmentation.centrum & (output == 0)] = label
                bodies[segmentation.body & (bodies == 0)] = label
                level, source = _name_level(segmentation, entered, label_map, centroids)
                metrics.append(centrum_metrics(ct, segmentation, label, level, source, thresholds))
                continue
            other = metrics[int(np.bincount(taken[taken > 0]).argmax()) - 1]
            reason = f"it lies in the centrum of {other.level or f'seed {other.index}'}, segmented already"
            message = f"seeds {other.index} and {index} are in the same vertebra"
        if refused is None:
            raise SpineAnalysisError(message)
        refused.append((index, reason))
    return output, bodies, metrics
