"""One study on a Dask worker: the engine's own entry points, the models loaded once per worker process.

A study reads its input, runs the same engine functions as the command line and the warm server
(``xray.measure.measure_radiograph`` and ``xray.report.write_report_files`` for ``cobb``;
``ct.study``'s ``read_fracture_study``/``assess_fractures`` for ``fracture``, and ``read_study``,
``segment_centroids``/``write_masks`` for ``centra``, as ``segment --centroids`` does), so a study's
files are those the single-study command writes. They are written into a staging folder under
DIR/.partial/ and renamed to DIR/<id>/ only when complete. The task returns the study's ledger row
(status, reason, seconds, the worker's peak memory); it never writes the ledger itself.
"""
from __future__ import annotations

import os
import resource
import shutil
import socket
import sys
import time
import traceback
import uuid
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from ..errors import NotSpineRadiographError, SpineAnalysisError, os_error_message
from ..io.atomic import write_json
from .models import models_digest, task_models
from .sources import Study

#: The rows a study adds to the cohort table, beside its other outputs in DIR/<id>/.
ROWS_FILE = "cohort_rows.json"
STAGING = ".partial"

#: (kind, folder) -> the loaded network; one per worker process, kept for its next studies.
_LOADED: dict = {}


def _model(kind: str, folder: str | None):
    """The ``kind`` network of ``folder`` (None: the default), loaded on this worker's first study."""
    if (kind, folder) not in _LOADED:
        if kind == "landmark":
            from ..xray.landmark_model.detector import LandmarkDetector

            _LOADED[kind, folder] = LandmarkDetector.load(folder)
        else:
            from ..ct.study import load_ct_model

            _LOADED[kind, folder] = load_ct_model(kind, folder)
    return _LOADED[kind, folder]


@cache
def _digest(kinds: tuple[str, ...], weights: tuple) -> str:
    return models_digest(kinds, dict(weights))


def _cobb(study: Study, staging: Path, weights: dict, options: dict) -> list[dict]:
    from ..io.xray import read_xray
    from ..xray.measure import measure_radiograph
    from ..xray.report import write_report_files

    xray = read_xray(study.path)
    try:
        report = measure_radiograph(_model("landmark", weights["landmark"]), xray.pixels, study.path,
                                    force=options.get("force", False), spacing_mm=xray.spacing_mm,
                                    spacing_source=xray.spacing_source,
                                    patient_right_on_image_left=not options.get("image_right_is_patient_right"))
    except NotSpineRadiographError as exc:
        raise NotSpineRadiographError(f"{exc} (--force measures it anyway)") from None
    write_report_files(staging, xray.pixels, report, protect=[study.path])
    return [cobb_row(report.to_dict())]


def cobb_row(report: dict) -> dict:
    """A radiograph's row of the cohort table: the largest curve of each region with its end vertebrae,
    apex, convexity and severity, the AASCE angles, the spine check and the quality flags."""
    row = {"largest_cobb_deg": report["largest_cobb_deg"], "overall_severity": report["overall_severity"],
           "curves": len(report["curves"])}
    for region in ("PT", "MT", "TL/L"):
        curves = [c for c in report["curves"] if c["name"].split(" (")[0] == region]
        best = max(curves, key=lambda c: c["angle_deg"]) if curves else None
        prefix = region.lower().replace("/", "")
        row[f"{prefix}_angle_deg"] = best["angle_deg"] if best else 0.0
        for key, column in (("upper_end_vertebra", "upper_end"), ("lower_end_vertebra", "lower_end"),
                            ("apex", "apex"), ("convexity", "convexity"), ("severity", "severity")):
            row[f"{prefix}_{column}"] = best[key] if best else None
    for k, angle in enumerate((report["aasce_angles_deg"] or {}).values(), start=1):
        row[f"aasce_angle_{k}_deg"] = angle
    row["spine_check_passed"] = bool(report["spine_check"] and report["spine_check"]["passed"])
    row["forced"] = report["forced"]
    row["quality_flags"] = " ".join(sorted({f["code"] for f in report["quality_flags"]}))
    spacing = report["pixel_spacing_mm"]
    row["pixel_spacing_mm"] = spacing[0] if spacing else None
    return row


def _fracture(study: Study, staging: Path, weights: dict, options: dict) -> list[dict]:
    from ..ct.study import assess_fractures, read_fracture_study

    protect = [study.path, study.centroids]
    inputs = read_fracture_study(study.path, centroids=study.centroids)
    assessment = assess_fractures(
        inputs.ct, _model("fracture", weights["fracture"]), staging, study.path,
        body_model=_model("body", weights["body"]), centroids=inputs.centroids,
        centroid_source="centroid file " + Path(study.centroids).name if study.centroids else "", protect=protect)
    patient = assessment.result.patient
    keep = ("level", "probability", "genant_grade", "genant_label", "deformity", "height_loss_pct", "call",
            "basis", "centroid_lps_x", "centroid_lps_y", "centroid_lps_z")
    return [{**{k: finding.row()[k] for k in keep}, "patient_call": patient["call"],
             "level_source": assessment.result.level_source} for finding in assessment.result.vertebrae]


def _found_centroids(ct, weights: dict) -> dict:
    """The vertebrae the fracture classifier finds along the spine (``fracture.detect_fractures`` finds
    them the same way when no centroids are given), named "vertebra k" from the top."""
    from ..ct.fracture_model.inference import fracture_probabilities
    from ..ct.spine_chain import vertebrae_in_view

    network = _model("fracture", weights["fracture"]).network
    found = vertebrae_in_view(fracture_probabilities(ct, network), network.config)
    return {c.level: c.lps for c in found.centroids}


def _centra(study: Study, staging: Path, weights: dict, options: dict) -> list[dict]:
    from ..ct.levels import read_centroids
    from ..ct.study import read_study, segment_centroids, write_masks

    ct = read_study(study.path).ct
    centroids = read_centroids(study.centroids, ct) if study.centroids else _found_centroids(ct, weights)
    segmentation = segment_centroids(ct, centroids, "unet", _model("body", weights["body"]))
    if not study.centroids:   # named "vertebra k" from the top, by no file
        for metrics in segmentation.vertebrae:
            metrics.level_from = "found by the fracture classifier"
    staging.mkdir(parents=True, exist_ok=True)
    write_masks(segmentation, ct, staging / "centra.nii.gz", staging / "bodies.nii.gz",
                overview_path=staging / "overview.png")
    source = f"centroid file {Path(study.centroids).name}" if study.centroids else "found by the fracture classifier"
    write_json({"ct": study.path, "centroids": source, **segmentation.to_dict()}, staging / "centra.json")
    keep = ("level", "level_from", "volume_ml", "hu_mean", "hu_median", "hu_std", "lytic_share", "sclerotic_share",
            "density_hint", "body_volume_ml", "slice_mm", "shell_mm")
    rows = [{**{k: m.to_dict()[k] for k in keep}, "segmented": True, "reason": ""} for m in segmentation.vertebrae]
    return rows + [{"level": r["level"], "segmented": False, "reason": r["reason"]} for r in segmentation.refused]


RUNNERS = {"cobb": _cobb, "fracture": _fracture, "centra": _centra}


def _publish(staging: Path, final: Path) -> None:
    """Put a complete staging folder in place of ``final`` (an earlier run's outputs go)."""
    if final.exists():
        old = staging.with_name(staging.name + ".old")
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(final)


def _peak_memory_mb() -> float:
    """This worker process's peak resident memory so far (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def run_study(task: str, study: dict, out_dir: str, weights: dict, options: dict) -> dict:
    """Run ``task`` on one study (``Study.to_dict()``) into ``out_dir``/<id>/; returns its ledger row.

    A study the engine refuses (``SpineAnalysisError``: not a spine radiograph, no bone, unreadable) is
    ``refused`` with its reason; anything else is an ``error`` (a bug: the traceback goes to the worker's
    log). Either way earlier outputs of the study are removed, so DIR/<id>/ holds only results done."""
    started = time.perf_counter()
    one = Study(**study)
    final = Path(out_dir) / one.id
    staging = Path(out_dir) / STAGING / f"{one.id}.{uuid.uuid4().hex[:8]}"
    kinds = task_models(task, bool(one.centroids))
    row = {"id": one.id, "task": task, "path": one.path, "centroids": one.centroids,
           "model": _digest(kinds, tuple(sorted(weights.items())))}
    try:
        staging.mkdir(parents=True)
        rows = RUNNERS[task](one, staging, weights, options)
        write_json({"study": one.to_dict(), "rows": rows}, staging / ROWS_FILE)
        _publish(staging, final)
        row.update(status="done", reason="")
    except SpineAnalysisError as exc:
        row.update(status="refused", reason=str(exc))
    except OSError as exc:
        row.update(status="error", reason=os_error_message(exc))
    except Exception as exc:   # a bug, not the study's fault: the next study goes on
        traceback.print_exc(file=sys.stderr)
        row.update(status="error", reason=f"internal error ({type(exc).__name__}: {exc})")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if row["status"] != "done":
        shutil.rmtree(final, ignore_errors=True)
    row.update(seconds=round(time.perf_counter() - started, 3), peak_memory_mb=_peak_memory_mb(),
               worker=f"{socket.gethostname()}:{os.getpid()}",
               finished=datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
    return row
