"""One CT study through the engine: read it, name the models, segment seeds, assess fractures, write.

The command line's ``segment`` and ``fracture`` and the warm server's CT jobs all come here (as
``xray.measure`` serves radiographs), so a CT is read, segmented, assessed and written the same way
whichever front end a user meets. The front ends parse, call, and present these results; the server
passes in what it keeps loaded (models, the last CT, the last probability maps).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import SpineAnalysisError

if TYPE_CHECKING:   # imported where used: the command line's start-up (and --help) stays free of torch
    import numpy as np
    import SimpleITK as sitk

    from .fracture import Centroid, FractureResult, ProbabilityMaps, Progress
    from .vertebral_body import CentrumMetrics, DensityThresholds

#: The fracture probability map as a DICOM SEG, beside the NIfTI map, with ``fracture --dicom-seg``.
FRACTURE_SEG = "fracture_probability_seg.dcm"
#: The file types a mask is written as (SimpleITK picks the format from the name).
MASK_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
#: ``fracture``'s picture of its calls (``overview.fracture_overview``), beside ``fracture.OUTPUT_FILES``.
FRACTURE_OVERVIEW = "overview.png"


@dataclass
class StudyInputs:
    """A CT read for a run, with what came beside it."""

    ct: sitk.Image
    slices: list | None = None               # its DICOM slice headers, when a DICOM SEG will reference them
    label_map: sitk.Image | None = None      # a vertebra label map (VerSe numbering)
    centroids: list[Centroid] | None = None  # vertebrae named by level, LPS


def read_study(ct_path, series_uid: str | None = None, *, for_dicom_seg: bool = False,
               labels=None, check_bone: bool = True) -> StudyInputs:
    """The CT at ``ct_path`` (its ``series_uid`` in a DICOM folder) and the label map at ``labels``.

    With ``for_dicom_seg`` the CT must be a folder of DICOM slices that a DICOM SEG can reference,
    checked before any long computation so that a CT that cannot carry one fails at once. With
    ``check_bone`` a volume with no bone is refused (``vertebral_body.check_spine_ct``); the Slicer
    module's crops around one click are checked at the click instead."""
    from ..io.ct import read_ct
    from ..io.dicom_out import check_sources
    from ..io.dicom_series import read_acquired_series
    from .vertebral_body import check_spine_ct

    if not for_dicom_seg:
        study = StudyInputs(read_ct(ct_path, series_uid))
    elif not Path(ct_path).is_dir():
        raise SpineAnalysisError(f"{ct_path}: --dicom-seg references the CT's DICOM slices: give the CT as a "
                                 "folder of DICOM slices")
    else:
        study = StudyInputs(*read_acquired_series(ct_path, series_uid))
        check_sources(study.slices)
    if check_bone:
        check_spine_ct(study.ct)
    study.label_map = read_ct(labels) if labels else None
    return study


def read_fracture_study(ct_path, series_uid: str | None = None, *, for_dicom_seg: bool = False, labels=None,
                        centroids=None) -> StudyInputs:
    """``read_study`` plus the centroid file ``centroids`` (VerSe, Slicer point list or CSV), checked
    before any network loads: the volume is a CT and every centroid lies inside it."""
    from .fracture import Centroid
    from .levels import read_centroids
    from .patches import contains_point

    study = read_study(ct_path, series_uid, for_dicom_seg=for_dicom_seg, labels=labels)
    if centroids:
        study.centroids = [Centroid(level, point) for level, point in read_centroids(centroids, study.ct).items()]
    for centroid in study.centroids or []:
        if not contains_point(study.ct, centroid.lps):
            raise SpineAnalysisError(f"the centroid of {centroid.level} lies outside the CT volume: is the file "
                                     "this CT's, and in LPS (a Slicer .mrk.json says its own coordinate system)?")
    return study


@dataclass(frozen=True)
class LoadedModel:
    """A CT network ready to run, with the text results name it by."""

    network: object
    version: str


def model_version(kind: str, bundle) -> str:
    """How outputs name a network: its kind, training date and settings digest."""
    return f"{kind} model {bundle.metadata.get('trained', '')} settings {bundle.digest}"


def load_ct_model(kind: str, weights=None) -> LoadedModel:
    """The ``kind`` ("body" or "fracture") network of folder ``weights`` (None: its default)."""
    if kind == "body":
        from .body_model.weights_io import load_model
    elif kind == "fracture":
        from .fracture_model.weights_io import load_model
    else:
        raise ValueError(f"no CT network called {kind!r}")
    network, bundle = load_model(weights)
    return LoadedModel(network, model_version(kind, bundle))


def check_mask_outputs(masks: Sequence, others: Sequence = (), inputs: Sequence = ()) -> None:
    """Refuse, before any work, outputs that would overwrite an ``inputs`` file, masks (``masks``) not
    named as an image type, and outputs whose folder is missing or cannot be written."""
    from ..io.atomic import check_output_folder

    outputs = [p for p in (*masks, *others) if p]
    for out in outputs:
        for given in inputs:
            if given and Path(given).exists() and Path(out).resolve() == Path(given).resolve():
                raise SpineAnalysisError(f"refusing to overwrite the input {given}: choose another output")
    for mask_path in masks:
        if mask_path and not str(mask_path).lower().endswith(MASK_SUFFIXES):
            raise SpineAnalysisError(f"{mask_path}: masks are written as NIfTI (.nii.gz), NRRD or MHA; "
                                     "give one of those extensions")
    for out in outputs:
        folder = Path(out).parent
        if not folder.is_dir():
            raise SpineAnalysisError(f"{out}: the folder {folder} does not exist: create it or choose another output")
        check_output_folder(folder, [Path(out).name], option="output")


@dataclass
class Segmentation:
    """The centra and whole bodies at the seeds (label k for seed k, on the CT's grid) and their metrics."""

    centra: np.ndarray
    bodies: np.ndarray
    vertebrae: list[CentrumMetrics]
    method: str
    model: str      # the body model's version text, or "classical"
    refused: list[dict] = field(default_factory=list)   # centroids not segmented: level, centroid_lps, reason
    slice_mm: float | None = None                       # the CT's slice thickness
    warnings: list[str] = field(default_factory=list)   # one line each, for the user (thick slices)

    def to_dict(self) -> dict:
        return {"vertebrae": [m.to_dict() for m in self.vertebrae], "model": self.model,
                "slice_thickness_mm": self.slice_mm, "warnings": self.warnings,
                **({"refused": self.refused} if self.refused else {})}


def segment_seeds(ct: sitk.Image, seeds: Sequence[Sequence[float]], coordinate_system: str = "lps",
                  method: str = "unet", body_model: LoadedModel | None = None,
                  levels: Sequence[str | None] | None = None, label_map: sitk.Image | None = None,
                  centroids: dict | None = None, thresholds: DensityThresholds | None = None,
                  progress=None, shell_mm: float | None = None, refused: list | None = None) -> Segmentation:
    """``vertebral_body.segment_vertebrae`` of ``seeds`` (mm, in ``coordinate_system`` "lps" or "ras");
    the "unet" method needs ``body_model``; ``shell_mm`` (default: the model's) is removed from each body;
    ``refused``, a list, collects the seeds that cannot be segmented instead of raising."""
    from .vertebral_body import DensityThresholds, segment_vertebrae, slice_thickness_mm, thick_slice_warning

    if method == "unet" and body_model is None:
        raise ValueError("the unet method needs a loaded body model")
    network = body_model.network if method == "unet" else None
    centra, bodies, metrics = segment_vertebrae(ct, seeds, coordinate_system, method, network, levels, label_map,
                                                centroids, thresholds or DensityThresholds(), progress=progress,
                                                shell_mm=shell_mm, refused=refused)
    warning = thick_slice_warning(ct)
    return Segmentation(centra, bodies, metrics, method, body_model.version if method == "unet" else "classical",
                        slice_mm=slice_thickness_mm(ct), warnings=[warning] if warning else [])


def segment_centroids(ct: sitk.Image, centroids: dict[str, np.ndarray], method: str = "unet",
                      body_model: LoadedModel | None = None, label_map: sitk.Image | None = None,
                      thresholds: DensityThresholds | None = None, progress=None,
                      shell_mm: float | None = None) -> Segmentation:
    """The vertebral body at each of ``centroids`` (LPS, keyed by level, as ``levels.read_centroids`` reads
    a file), in their order, named by its level: label k for the k-th segmented. A centroid whose body
    cannot be segmented (cut by the scan's edge, not inside a body, in a vertebra segmented already) goes
    into ``refused`` with the reason and the others go on; when none can be, the reasons are raised."""
    levels, points = list(centroids), list(centroids.values())
    seeds_refused: list[tuple[int, str]] = []
    segmentation = segment_seeds(ct, points, "lps", method, body_model, levels, label_map, centroids, thresholds,
                                 progress, shell_mm, refused=seeds_refused)
    segmentation.refused = [{"level": levels[number - 1],
                             "centroid_lps": [round(float(v), 2) for v in points[number - 1]], "reason": reason}
                            for number, reason in seeds_refused]
    if not segmentation.vertebrae:
        raise SpineAnalysisError("no vertebral body could be segmented at the centroids ("
                                 + "; ".join(f"{r['level']}: {r['reason']}" for r in segmentation.refused) + ")")
    return segmentation


def _overview_title(segmentation: Segmentation) -> str:
    """What the segment overview shows, in a line above it."""
    names = ", ".join(m.level for m in segmentation.vertebrae)
    not_done = ", ".join(r["level"] for r in segmentation.refused)
    return (f"Centra ({segmentation.method}): {names}. Filled: trabecular centrum; line: vertebral body."
            + (f" Not segmented: {not_done}." if not_done else "") + " Check every outline on the CT.")


def write_masks(segmentation: Segmentation, ct: sitk.Image, centra_path, bodies_path=None, dicom_seg_path=None,
                slices: Sequence | None = None, overview_path=None) -> None:
    """The centra (and the bodies) as label images on ``ct``'s grid, each complete or absent; with
    ``dicom_seg_path`` the centra also as a DICOM SEG referencing the CT's ``slices``; with
    ``overview_path`` a PNG of them over the CT (``overview.segment_overview``), drawn before anything
    is written."""
    import SimpleITK as sitk

    from ..drawing import save_png
    from ..io.atomic import atomic_output
    from ..io.dicom_out import Segment, write_segmentation
    from .overview import segment_overview

    picture = segment_overview(ct, segmentation.centra, segmentation.bodies,
                               [m.level for m in segmentation.vertebrae],
                               _overview_title(segmentation)) if overview_path else None
    for labels, path in ((segmentation.centra, centra_path), (segmentation.bodies, bodies_path)):
        if path:
            mask = sitk.GetImageFromArray(labels)
            mask.CopyInformation(ct)
            with atomic_output(path) as tmp:
                sitk.WriteImage(mask, str(tmp), True)
    if dicom_seg_path:
        segments = [Segment(m.index, f"{m.level} centrum", None if m.level == "unnamed" else m.level)
                    for m in segmentation.vertebrae]
        write_segmentation(segmentation.centra, slices, segments, dicom_seg_path,
                           artificial_intelligence=segmentation.method == "unet")
    if picture is not None:
        save_png(picture, overview_path)


def measure_centra(ct: sitk.Image, label_map: sitk.Image, names: dict[int, str],
                   thresholds: DensityThresholds | None = None) -> list[CentrumMetrics]:
    """The metrics of every label of an edited label map (any grid), named by ``names`` (label -> level)."""
    import numpy as np
    import SimpleITK as sitk

    from .bone_metrics import labels_on_ct_grid
    from .vertebral_body import DensityThresholds, measure_centrum

    thresholds = thresholds or DensityThresholds()

    labels = sitk.GetArrayFromImage(labels_on_ct_grid(ct, label_map))
    present = [int(v) for v in np.unique(labels) if v]
    if not present:
        raise SpineAnalysisError("the label map is empty: no centrum to measure")
    return [measure_centrum(ct, labels == label, label, names.get(label, "unnamed"),
                            "entered" if label in names else "not given", thresholds) for label in present]


def fracture_outputs(out_dir, dicom_seg: bool = False, protect: Sequence = ()) -> dict[str, Path]:
    """The files ``assess_fractures`` will write into ``out_dir``, checked writable before any work."""
    from ..io.atomic import check_output_folder
    from .fracture import OUTPUT_FILES

    return check_output_folder(out_dir, OUTPUT_FILES + (FRACTURE_OVERVIEW,) + ((FRACTURE_SEG,) if dicom_seg else ()),
                               protect)


@dataclass
class FractureAssessment:
    """A CT's fracture findings, the model that made them and the files written."""

    result: FractureResult
    model: str
    outputs: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        result = self.result
        return {"probability": self.outputs["fracture_probability.nii.gz"],
                "vertebrae": [f.row() for f in result.vertebrae], "patient": result.patient,
                "level_source": result.level_source, "model": self.model, "seconds": result.seconds}


def assess_fractures(ct: sitk.Image, fracture_model: LoadedModel, out_dir, ct_path, *,
                     body_model: LoadedModel | None = None, centroids: Sequence[Centroid] | None = None,
                     label_map: sitk.Image | None = None, centroid_source: str = "", progress: Progress | None = None,
                     maps: ProbabilityMaps | None = None, slices: Sequence | None = None,
                     protect: Sequence = ()) -> FractureAssessment:
    """``fracture.detect_fractures`` of ``ct`` written into ``out_dir`` (``fracture.OUTPUT_FILES``, and
    with ``slices`` the map as a DICOM SEG, ``FRACTURE_SEG``; and ``FRACTURE_OVERVIEW``, drawn before
    anything is written). ``body_model`` measures the heights where no label map gives the body;
    ``maps`` reuses an earlier run's probabilities of this CT."""
    import SimpleITK as sitk

    from ..drawing import save_png
    from ..io.atomic import check_output_folder
    from ..io.dicom_out import write_fracture_probability
    from .fracture import detect_fractures, write_outputs
    from .overview import fracture_overview

    result = detect_fractures(ct, fracture_model.network, centroids, label_map,
                              body_model.network if body_model else None, centroid_source,
                              progress or (lambda fraction, message: None), maps)
    overview = check_output_folder(out_dir, [FRACTURE_OVERVIEW], protect)[FRACTURE_OVERVIEW]
    picture = fracture_overview(ct, result.vertebrae, getattr(result, "maps", None),
                                fracture_model.network.config.body_probability, result.patient)
    paths = write_outputs(result, out_dir, {"ct": str(ct_path), "model": fracture_model.version}, protect)
    paths[FRACTURE_OVERVIEW] = str(save_png(picture, overview))
    if slices is not None:
        paths[FRACTURE_SEG] = str(write_fracture_probability(sitk.GetArrayFromImage(result.probability), slices,
                                                             Path(out_dir) / FRACTURE_SEG, protect=protect))
    return FractureAssessment(result, fracture_model.version, paths)
