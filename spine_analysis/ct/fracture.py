"""Vertebral compression fractures in a CT: the voxel classifier's opinion beside Genant's heights.

After Nicolaes et al. (CSI 2019): the CT is resampled to 1 mm on the patient's axes and every
voxel classified as background, normal vertebral body or fractured vertebral body
(``fracture_model.inference``, MONAI sliding windows). Then

- **per vertebra**: at each centroid, the fractured share of vertebral-body probability in a cube
  around it, weighted by a Gaussian of the distance (``FractureConfig.cube_half_mm``,
  ``gaussian_sigma_mm``); a share at or above ``fracture_threshold`` is the classifier's "fractured";
- **morphometry** (``fracture_heights``): the body at the centroid (the body network, or a given vertebra
  label map, reduced the same way) is measured and graded against the larger of its own posterior
  height and its neighbours' mean posterior height, so a crushed body is seen too; not on slices
  thicker than ``max_slice_mm``, where the classifier alone decides;
- **call**: fractured when the classifier says so or the Genant grade reaches
  ``genant_call_grade``; the row says which opinion drove it (``basis``) and whether they agree;
- **per patient**: one call, fractured when a vertebra is, with its ``basis``; each opinion on its own
  under ``opinions`` (the levels it alone would call, its figures). The paper's connected groups of
  confident fracture voxels (above a size) are listed with the classifier's opinion, each with the
  vertebra it lies at (within ``component_reach_mm``); a group away from every assessed vertebra is
  pointed out in a note, never called (on held-out crops such groups at the scan's edges made 5 of 6
  normal patients "fractured").

Centroids come from the user (points named by level, a VerSe centroid file, a label map: the centroid
of each vertebra's body, ``levels.centroids_from_label_map``) or, when none are given, from the
classifier's own body voxels kept only where they form a spine (``spine_chain``: numbered from the top,
levels unnamed). Given with a label map, a point named by a level is measured on that level's label
wherever it was put.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import SpineAnalysisError
from ..ml.calibration import calibrate
from .fracture_heights import grade_heights, measure_heights, thick_slices
from .fracture_model.config import FractureConfig
from .fracture_model.inference import ProbabilityMaps, Progress, fracture_probabilities, quiet
from .genant import GenantResult
from .levels import Centroid, centroids_from_label_map, labels_of_centroids
from .patches import contains_point, coverage
from .spine_chain import vertebrae_in_view
from .vertebral_body import check_ct_volume

#: The columns of ``vertebrae.csv``, in order.
CSV_COLUMNS = ("level", "centroid_lps_x", "centroid_lps_y", "centroid_lps_z", "probability", "genant_grade",
               "genant_label", "deformity", "height_loss_pct", "anterior_mm", "middle_mm", "posterior_mm",
               "reference_mm", "call", "basis", "opinions_agree", "note")


@dataclass
class VertebraFinding:
    """Both opinions on one vertebra and the call they lead to."""

    level: str
    centroid_lps: np.ndarray
    probability: float | None
    genant: GenantResult | None
    call: str
    basis: str
    agree: bool | None
    note: str = ""

    def row(self) -> dict:
        """One row of ``vertebrae.csv`` / ``vertebrae.json`` (``CSV_COLUMNS``)."""
        g = self.genant
        x, y, z = (round(float(v), 2) for v in self.centroid_lps)
        return {"level": self.level, "centroid_lps_x": x, "centroid_lps_y": y, "centroid_lps_z": z,
                "probability": None if self.probability is None else round(self.probability, 4),
                "genant_grade": g.grade if g else None, "genant_label": g.label if g else None,
                "deformity": g.deformity if g else None,
                "height_loss_pct": round(g.height_loss_pct, 1) if g else None,
                "anterior_mm": round(g.anterior_mm, 1) if g else None,
                "middle_mm": round(g.middle_mm, 1) if g else None,
                "posterior_mm": round(g.posterior_mm, 1) if g else None,
                "reference_mm": round(g.reference_mm, 1) if g else None,
                "call": self.call, "basis": self.basis, "opinions_agree": self.agree, "note": self.note}


@dataclass
class FractureResult:
    """Everything ``detect_fractures`` finds: the probability map on the CT's grid, one finding per
    vertebra (top to bottom) and the patient-level summary."""

    probability: sitk.Image
    vertebrae: list[VertebraFinding]
    patient: dict
    level_source: str
    maps: ProbabilityMaps
    seconds: dict = field(default_factory=dict)


def vertebra_probability(maps: ProbabilityMaps, centroid_lps: np.ndarray, config: FractureConfig) -> float | None:
    """Fractured share of body probability in the Gaussian-weighted cube at the centroid, Platt-scaled
    when the model carries a calibration; None when the cube holds almost no vertebral body."""
    index = np.array(maps.grid.TransformPhysicalPointToContinuousIndex([float(v) for v in centroid_lps]))[::-1]
    half = int(round(config.cube_half_mm / config.spacing_mm))
    centre = np.round(index).astype(int)
    low = np.maximum(centre - half, 0)
    high = np.minimum(centre + half + 1, maps.body.shape)
    if np.any(high <= low):
        return None
    region = tuple(slice(a, b) for a, b in zip(low, high))
    z, y, x = np.ogrid[region]
    distance2 = ((z - index[0]) ** 2 + (y - index[1]) ** 2 + (x - index[2]) ** 2) * config.spacing_mm ** 2
    weight = np.exp(-0.5 * distance2 / config.gaussian_sigma_mm ** 2)
    body = float((weight * maps.body[region]).sum())
    if body < 0.05 * float(weight.sum()):
        return None
    share = float((weight * maps.fractured[region]).sum()) / body
    return share if config.calibration is None else float(calibrate(share, *config.calibration))


def fracture_components(maps: ProbabilityMaps, config: FractureConfig) -> list[dict]:
    """The paper's patient-level aggregate: connected groups of voxels with fracture probability
    above ``component_probability``, at least ``component_min_ml`` large, largest first."""
    voxel_ml = config.spacing_mm ** 3 / 1000
    parts, count = ndi.label(maps.fractured > config.component_probability)
    if count == 0:
        return []
    sizes = ndi.sum_labels(np.ones_like(parts), parts, index=np.arange(1, count + 1)) * voxel_ml
    centres = ndi.center_of_mass(np.ones_like(parts), parts, index=np.arange(1, count + 1))
    found = []
    for size, centre in zip(sizes, centres):
        if size >= config.component_min_ml:
            point = maps.grid.TransformContinuousIndexToPhysicalPoint([float(v) for v in centre[::-1]])
            found.append({"volume_ml": round(float(size), 2), "centroid_lps": [round(v, 2) for v in point]})
    return sorted(found, key=lambda c: -c["volume_ml"])


def _cut_by_edge(maps: ProbabilityMaps, ct: sitk.Image, centroids: Sequence[Centroid],
                 config: FractureConfig) -> list[bool]:
    """Per centroid, whether the classifier's body voxels in a box around it (``edge_box_mm``: about
    one body, not its neighbours) come within 2 mm of the edge of the scan."""
    near_edge = ~ndi.binary_erosion(coverage(ct, maps.grid), iterations=2) & (maps.body > config.body_probability)
    half = np.round(np.array(config.edge_box_mm) / config.spacing_mm).astype(int)[::-1]
    cut = []
    for centroid in centroids:
        centre = np.round(maps.grid.TransformPhysicalPointToContinuousIndex([float(v) for v in centroid.lps]))
        low = np.maximum(centre[::-1].astype(int) - half, 0)
        high = np.minimum(centre[::-1].astype(int) + half + 1, near_edge.shape)
        cut.append(bool(np.all(high > low) and near_edge[tuple(slice(a, b) for a, b in zip(low, high))].any()))
    return cut


def _call(probability: float | None, grade: GenantResult | None, config: FractureConfig,
          no_heights: str = "heights not measured") -> tuple[str, str, bool | None]:
    """(call, which opinion drove it, whether the two opinions agree); ``no_heights`` says why a vertebra
    has no grade."""
    classifier = None if probability is None else probability >= config.fracture_threshold
    morphometry = None if grade is None else grade.grade >= config.genant_call_grade
    if classifier is None and morphometry is None:
        return "not assessed", f"no vertebral body found at this centroid; {no_heights}", None
    if morphometry is None:
        return ("fractured" if classifier else "normal"), f"classifier alone ({no_heights})", None
    if classifier is None:
        return ("fractured" if morphometry else "normal"), "morphometry only (classifier found no body)", None
    if classifier == morphometry:
        return ("fractured" if classifier else "normal"), "classifier and morphometry agree", True
    if classifier:
        return "fractured", f"classifier (morphometry: {grade.label})", False
    return "fractured", f"morphometry: {grade.label} {grade.deformity} (classifier p={probability:.2f})", False


def _where_to_look(ct: sitk.Image, centroids: Sequence[Centroid] | None, label_map: sitk.Image | None,
                   centroid_source: str) -> tuple[list[Centroid] | None, list[int], str]:
    """The centroids to assess (top to bottom), each one's label in ``label_map`` (empty without one) and
    where they came from; ("", no centroids) when the classifier is to find them."""
    label_values: list[int] = []
    if centroids is not None:
        centroids = sorted(centroids, key=lambda c: -c.lps[2])   # top to bottom: neighbours are adjacent
        if not centroids:
            raise SpineAnalysisError("no centroids given")
        for centroid in centroids:
            if not contains_point(ct, centroid.lps):
                raise SpineAnalysisError(f"the centroid of {centroid.level} "
                                         f"({', '.join(f'{v:.1f}' for v in centroid.lps)}"
                                         " mm, LPS) lies outside the CT volume")
        source = centroid_source or "given centroids"
    elif label_map is not None:
        centroids, label_values = centroids_from_label_map(label_map)
        if not centroids:
            raise SpineAnalysisError("the label map holds no vertebra labels (VerSe numbering 1-25, 28)")
        outside = [c.level for c in centroids if not contains_point(ct, c.lps)]
        if outside:
            raise SpineAnalysisError(f"the label map's vertebrae {', '.join(outside)} lie outside the CT volume")
        source = "label map (VerSe numbering)"
    else:
        source = ""
    if label_map is not None and not label_values:   # centroids given too: the label of each one's level
        label_values = labels_of_centroids(label_map, centroids)
    return centroids, label_values, source


def _opinions(assessed: list[VertebraFinding], components: list[dict], too_thick: str,
              config: FractureConfig) -> dict:
    """Each opinion on its own: the levels it alone would call fractured, and what it rests on."""
    graded = [f for f in assessed if f.genant is not None]
    return {
        "classifier": {
            "fractured_levels": [f.level for f in assessed
                                 if f.probability is not None and f.probability >= config.fracture_threshold],
            "threshold": config.fracture_threshold,
            "max_vertebra_probability": max((round(f.probability, 4) for f in assessed if f.probability is not None),
                                            default=None),
            "fracture_components": components,
        },
        "morphometry": {
            "fractured_levels": [f.level for f in graded if f.genant.grade >= config.genant_call_grade],
            "vertebrae_graded": len(graded),
            "deformed": [{"level": f.level, "grade": f.genant.grade, "label": f.genant.label,
                          "deformity": f.genant.deformity} for f in graded if f.genant.grade > 0],
            "note": too_thick,
        },
    }


def _patient_basis(assessed: list[VertebraFinding], too_thick: str) -> str:
    """What the patient's call rests on, in a line."""
    fractured = [f for f in assessed if f.call == "fractured"]
    if fractured:
        basis = "; ".join(f"{f.level}: {f.basis}" for f in fractured)
    elif not assessed:
        basis = "no vertebra could be assessed"
    else:
        differ = [f.level for f in assessed if f.agree is False]
        basis = (f"no vertebra called fractured ({len(assessed)} assessed)"
                 + (f"; the opinions differ at {', '.join(differ)}" if differ else ""))
    return basis + (f"; {too_thick}: the classifier alone decides" if too_thick else "")


def _patient(findings: list[VertebraFinding], components: list[dict], source: str, config: FractureConfig,
             too_thick: str = "", off_spine: int = 0) -> dict:
    """The patient's one call with its basis, and the two opinions under their own names; each group of
    fracture voxels gets the vertebra it lies at, and one away from all of them is noted, never called."""
    for component in components:   # a group at a vertebra cut by the scan's edge is explained by it too
        distances = [float(np.linalg.norm(np.array(component["centroid_lps"]) - f.centroid_lps)) for f in findings]
        nearest = int(np.argmin(distances))
        component["level"] = findings[nearest].level if distances[nearest] <= config.component_reach_mm else None
    assessed = [f for f in findings if f.call != "not assessed"]
    fractured = [f.level for f in assessed if f.call == "fractured"]
    elsewhere = [c for c in components if c["level"] is None]
    notes = ([f"{len(elsewhere)} group(s) of fracture voxels lie away from every assessed vertebra: look at the "
              "probability map"] if elsewhere else []) + \
        ([f"{off_spine} body-like part(s) off the spine were not taken for vertebrae"] if off_spine else [])
    return {
        "call": "fractured" if fractured else "normal" if assessed else "not assessed",
        "basis": _patient_basis(assessed, too_thick),
        "fractured_levels": fractured,
        "vertebrae_assessed": len(assessed),
        "opinions": _opinions(assessed, components, too_thick, config),
        "level_source": source,
        "note": "; ".join(notes),
    }


def detect_fractures(ct: sitk.Image, model, centroids: Sequence[Centroid] | None = None,
                     label_map: sitk.Image | None = None, body_model=None, centroid_source: str = "",
                     progress: Progress = quiet, maps: ProbabilityMaps | None = None) -> FractureResult:
    """Fracture probability map, per-vertebra findings and patient summary for a CT in HU.

    ``model`` is a loaded fracture network (``fracture_model.weights_io.load_model``); ``centroids``
    (LPS, named by level; ``centroid_source`` says where they came from) or ``label_map`` (VerSe
    numbering, on any grid) say where the vertebrae are; with neither, the classifier finds them.
    ``body_model`` (the loaded body network) measures heights where no label map does: the caller
    passes it unless every centroid has its label. ``maps`` reuses the probabilities of an earlier
    run on the same CT (moved centroids). Raises ``SpineAnalysisError`` for a volume that is not a
    CT, a centroid outside it, or no vertebra in view; ``ValueError`` when the body model is needed
    and missing.
    """
    check_ct_volume(ct)
    config: FractureConfig = model.config
    centroids, label_values, source = _where_to_look(ct, centroids, label_map, centroid_source)
    if body_model is None and not all(label_values or [0]):
        raise ValueError("detect_fractures needs the body model (body_model.weights_io.load_model) to measure "
                         "the heights of vertebrae without a label")
    reused = maps is not None
    if maps is None:
        maps = fracture_probabilities(ct, model, progress)
    off_spine = 0
    if not source:
        found = vertebrae_in_view(maps, config)
        centroids, off_spine = found.centroids, len(found.off_spine)
        source = ("unnamed: found by the classifier (vertebral-body voxels in a chain along the spine), "
                  "numbered from the top")
    # Assessed where the rows say they are (0.01 mm): those centroids sent back (a re-run) give the same answer.
    centroids = [Centroid(c.level, np.round(np.asarray(c.lps, dtype=float), 2)) for c in centroids]
    started = time.perf_counter()
    probabilities = [vertebra_probability(maps, c.lps, config) for c in centroids]
    if all(p is None for p in probabilities):
        raise SpineAnalysisError("no vertebral body at any of the centroids: are they in this CT's space "
                                 "(LPS millimetres; a Slicer point list says its own coordinate system), "
                                 "and is the spine in view?")
    measured = measure_heights(ct, centroids, label_map, label_values or [0] * len(centroids), body_model, config,
                               progress)
    grades = grade_heights(centroids, measured, config)
    too_thick = thick_slices(ct, config)   # said in every basis; why else a body has no heights is in its note
    findings = []
    cut = _cut_by_edge(maps, ct, centroids, config)
    for centroid, probability, grade, (_heights_mm, note), is_cut in zip(
            centroids, probabilities, grades, measured, cut):
        call, basis, agree = _call(probability, grade, config, too_thick or "heights not measured")
        if is_cut:   # the classifier is unreliable on a part of a body (the paper's edge-vertebra errors)
            call, basis, agree = "not assessed", "its body is cut by the edge of the scan", None
        findings.append(VertebraFinding(centroid.level, np.asarray(centroid.lps, float), probability, grade,
                                        call, basis, agree, note))
    progress(0.97, "writing the probability map")
    probability_image = maps.fractured_on(ct)
    patient = _patient(findings, fracture_components(maps, config), source, config, too_thick, off_spine)
    return FractureResult(probability_image, findings, patient, source, maps,
                          {"classifier": 0.0 if reused else round(maps.seconds, 2),
                           "vertebrae": round(time.perf_counter() - started, 2)})


#: What ``write_outputs`` writes into the output folder.
OUTPUT_FILES = ("fracture_probability.nii.gz", "vertebrae.csv", "vertebrae.json", "patient.json")


def write_outputs(result: FractureResult, out_dir, about: dict, protect=()) -> dict[str, str]:
    """The probability map, ``vertebrae.csv``/``.json`` and ``patient.json`` in ``out_dir``, each
    complete or absent; ``about`` (CT path, model version...) goes into both JSON files."""
    from ..io.atomic import atomic_output, check_output_folder, write_csv_rows, write_json

    targets = check_output_folder(out_dir, OUTPUT_FILES, protect)
    targets[OUTPUT_FILES[0]].parent.mkdir(parents=True, exist_ok=True)
    rows = [f.row() for f in result.vertebrae]
    with atomic_output(targets["fracture_probability.nii.gz"]) as tmp:
        sitk.WriteImage(result.probability, str(tmp), True)
    write_csv_rows(CSV_COLUMNS, [["" if row[c] is None else row[c] for c in CSV_COLUMNS] for row in rows],
                   targets["vertebrae.csv"])
    write_json({**about, "level_source": result.level_source, "vertebrae": rows}, targets["vertebrae.json"])
    write_json({**about, **result.patient, "seconds": result.seconds}, targets["patient.json"])
    return {name: str(path) for name, path in targets.items()}
