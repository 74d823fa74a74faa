"""The engine's warm server: ``spine-analysis serve`` (or ``python -m spine_analysis.jobs``).

It reads one JSON request per line on stdin and answers each with JSON lines on stdout: zero
or more ``{"status": "progress", "fraction": f, "message": m}``, then exactly one
``{"status": "done", ...the job's result fields...}`` or ``{"status": "error", "message": m}``
(with ``"code"`` when the error has one, e.g. ``"not_spine"``). It reads requests until stdin
closes, keeping its models loaded, so only the first request pays for starting Python, torch
and MONAI. Anything else a library prints goes to stderr, never between the lines.

Jobs (``"job"`` in the request; a request with an ``"image"`` and no job is a ``cobb`` job):
- ``cobb``: ``{"image": PATH, "weights": PATH or null, "force": false,
  "patient_right_on_image_left": true, "out_dir": PATH or null}`` -> the report of
  ``spine-analysis cobb --json`` (curves, AASCE angles, ``quality_flags``, ``spine_check``, ...)
  plus ``"landmarks": SpineLandmarks.to_dict()``, ``"flags"`` (the same flags; code
  ``framing`` is the detector's own) and ``"outputs"`` (paths written when ``out_dir`` is
  given). An image that does not look like an AP spine radiograph is answered with the
  error code ``not_spine`` unless ``force`` is true; then it is measured, ``"forced": true``,
  and no severity is stated.
- ``vertebral_body``: ``{"ct": PATH, "seeds": [[x, y, z], ...], "coordinate_system": "ras" or "lps",
  "method": "unet" or "classical", "levels": [name or null, ...], "labels": PATH or null,
  "weights": PATH or null, "out": PATH, "shell_mm": v or null, "lytic_below_hu": v, "sclerotic_above_hu": v,
  "min_lesion_ml": v}`` -> writes the mask (label k for seed k, on the CT's grid) to ``out`` and answers
  ``{"mask": out, "vertebrae": [CentrumMetrics.to_dict(), ...], "model": version text or "classical",
  "slice_thickness_mm": v, "warnings": [line, ...]}``.
- ``measure_centra``: ``{"ct": PATH, "labels": PATH, "names": {"1": "L1", ...},
  "lytic_below_hu": v, "sclerotic_above_hu": v, "min_lesion_ml": v}`` ->
  ``{"vertebrae": [CentrumMetrics.to_dict(), ...]}``
  for every label of an edited label map.
- ``fracture``: ``{"ct": PATH, "centroids": [{"level": name, "point": [x, y, z]}, ...] or null,
  "coordinate_system": "ras" or "lps" (of those points), "labels": PATH or null, "weights": PATH or null,
  "out_dir": PATH}`` -> writes ``ct.fracture.OUTPUT_FILES`` and ``overview.png`` into ``out_dir`` and answers
  ``{"probability": PATH, "vertebrae": [VertebraFinding.row(), ...], "patient": {"call", "basis",
  "fractured_levels", "vertebrae_assessed", "opinions": {"classifier": {...}, "morphometry": {...}}, ...},
  "level_source": text, "model": version text, "seconds": {...}}``. The classifier's
  probabilities of the last CT are kept: moved centroids are assessed again without it.

Every CT job also takes ``"series": UID or null``: the series to read from a DICOM folder holding
several (without it such a folder is refused with the list of its series). The CT jobs run through
``ct.study``, as the command line's ``segment`` and ``fracture`` do. ``"coordinate_system"`` defaults
to ``"lps"``; ``"frame"`` is only the cobb job's frame number, and a CT job sending it is refused.

The last CT read stays in memory: a front end sending the same file again (same path, size and
modification time) is not read twice.
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Callable, TextIO

from .errors import SpineAnalysisError, os_error_message

Emit = Callable[[dict], None]


class JobRunner:
    """Runs requests one after the other, keeping loaded models for the next request."""

    def __init__(self):
        self._detectors: dict = {}
        self._ct_models: dict = {}
        self._ct: tuple | None = None
        self._fracture_maps: tuple | None = None

    def handle(self, request: dict, emit: Emit) -> None:
        """Run one request, emitting its progress and exactly one final line."""
        try:
            if not isinstance(request, dict):
                raise SpineAnalysisError("a request must be a JSON object")
            job = request.get("job") or ("cobb" if "image" in request else None)
            handlers = {"cobb": self._cobb, "vertebral_body": self._vertebral_body,
                        "measure_centra": self._measure_centra, "fracture": self._fracture}
            handler = handlers.get(job)
            if handler is None:
                raise SpineAnalysisError(f"unknown job {job!r}; known: {', '.join(handlers)}")
            emit({"status": "done", **handler(request, emit)})
        except SpineAnalysisError as exc:
            emit({"status": "error", "message": str(exc), **({"code": exc.code} if getattr(exc, "code", None) else {})})
        except OSError as exc:
            emit({"status": "error", "message": os_error_message(exc)})
        except Exception as exc:  # a bug, not a user's error: keep serving, leave the traceback on stderr
            traceback.print_exc(file=sys.stderr)
            emit({"status": "error", "message": f"internal error ({type(exc).__name__}: {exc}); "
                                                "the details are in the engine's log"})

    def _cobb(self, request: dict, emit: Emit) -> dict:
        from .io.xray import read_xray
        from .xray.measure import measure_radiograph

        image = request.get("image")
        if not image:
            raise SpineAnalysisError("the cobb job needs an 'image' path")
        if request.get("out_dir"):
            from .xray.report import check_outputs

            check_outputs(request["out_dir"], [image])
        emit(_progress(0.1, "reading the radiograph"))
        frame = request.get("frame")
        if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int)):
            raise SpineAnalysisError("'frame' must be a whole number (1 = the first frame)")
        xray = read_xray(image, frame)
        weights = request.get("weights") or None
        load_s = 0.0
        if weights not in self._detectors:
            from .xray.landmark_model.detector import LandmarkDetector

            emit(_progress(0.3, "loading the landmark model"))
            started = time.perf_counter()
            self._detectors[weights] = LandmarkDetector.load(weights)
            load_s = time.perf_counter() - started
        emit(_progress(0.5, "detecting 68 vertebral corners"))
        report = measure_radiograph(self._detectors[weights], xray.pixels, str(image),
                                    force=bool(request.get("force")), spacing_mm=xray.spacing_mm,
                                    spacing_source=xray.spacing_source,
                                    patient_right_on_image_left=bool(request.get("patient_right_on_image_left", True)),
                                    model_load_s=load_s)
        outputs = {}
        if request.get("out_dir"):
            from .xray.report import write_report_files

            emit(_progress(0.9, "writing the report"))
            outputs = write_report_files(request["out_dir"], xray.pixels, report, protect=[image])
        report_dict = report.to_dict()
        return {**report_dict, "landmarks": report.landmarks.to_dict(), "flags": report_dict["quality_flags"],
                "outputs": {name: str(path) for name, path in outputs.items()}}

    def _read_ct(self, path, series=None):
        """The CT at ``path`` (its ``series`` for a DICOM folder), from memory when the same file and
        series were read last and the file has not changed since. Not checked for bone: the Slicer
        module sends crops around a click (checked at the click); the fracture job checks the whole CT."""
        from pathlib import Path

        from .ct.study import read_study

        if not path:
            raise SpineAnalysisError("the job needs a 'ct' path")
        stat = Path(path).stat() if Path(path).is_file() else None
        key = (str(path), series, stat.st_size, stat.st_mtime_ns) if stat else None
        if key is None or self._ct is None or self._ct[0] != key:
            self._ct = (key, read_study(path, series, check_bone=False).ct)
        return self._ct[1]

    def _model(self, kind: str, weights, emit: Emit, fraction: float):
        """The ``kind`` CT network of folder ``weights`` (None: the default), loaded once."""
        from .ct.study import load_ct_model

        if (kind, weights) not in self._ct_models:
            emit(_progress(fraction, f"loading the {kind} model"))
            self._ct_models[kind, weights] = load_ct_model(kind, weights)
        return self._ct_models[kind, weights]

    @staticmethod
    def _thresholds(request: dict):
        from .ct.vertebral_body import DensityThresholds

        defaults = DensityThresholds()
        return DensityThresholds(
            lytic_below_hu=float(request.get("lytic_below_hu", defaults.lytic_below_hu)),
            sclerotic_above_hu=float(request.get("sclerotic_above_hu", defaults.sclerotic_above_hu)),
            min_lesion_ml=float(request.get("min_lesion_ml", defaults.min_lesion_ml)))

    def _vertebral_body(self, request: dict, emit: Emit) -> dict:
        from .ct.study import segment_seeds, write_masks
        from .io.ct import read_ct

        if not request.get("out"):
            raise SpineAnalysisError("the vertebral_body job needs an 'out' path for the mask")
        coordinate_system = _coordinate_system(request)
        emit(_progress(0.05, "reading the CT"))
        ct = self._read_ct(request.get("ct"), request.get("series"))
        method = request.get("method", "unet")
        body_model = self._model("body", request.get("weights") or None, emit, 0.1) if method == "unet" else None
        labels = read_ct(request["labels"]) if request.get("labels") else None
        segmentation = segment_seeds(ct, request.get("seeds") or [], coordinate_system, method, body_model,
                                     request.get("levels"), labels, None, self._thresholds(request),
                                     progress=lambda f, m: emit(_progress(0.15 + 0.8 * f, m)),
                                     shell_mm=request.get("shell_mm"))
        write_masks(segmentation, ct, request["out"])
        return {"mask": request["out"], **segmentation.to_dict()}

    def _measure_centra(self, request: dict, emit: Emit) -> dict:
        from .ct.study import measure_centra
        from .io.ct import read_ct

        ct = self._read_ct(request.get("ct"), request.get("series"))
        if not request.get("labels"):
            raise SpineAnalysisError("the measure_centra job needs a 'labels' path")
        names = {int(k): v for k, v in (request.get("names") or {}).items()}
        metrics = measure_centra(ct, read_ct(request["labels"]), names, self._thresholds(request))
        return {"vertebrae": [m.to_dict() for m in metrics]}

    def _fracture(self, request: dict, emit: Emit) -> dict:
        from .ct.fracture import Centroid
        from .ct.patches import to_lps
        from .ct.study import assess_fractures
        from .ct.vertebral_body import check_spine_ct
        from .io.ct import read_ct

        if not request.get("out_dir"):
            raise SpineAnalysisError("the fracture job needs an 'out_dir' folder")
        coordinate_system = _coordinate_system(request)
        emit(_progress(0.02, "reading the CT"))
        ct = self._read_ct(request.get("ct"), request.get("series"))
        check_spine_ct(ct)
        weights = request.get("weights") or None
        model = self._model("fracture", weights, emit, 0.04)
        centroids = None
        if request.get("centroids"):
            try:
                centroids = [Centroid(str(c["level"]), to_lps(c["point"], coordinate_system))
                             for c in request["centroids"]]
            except (KeyError, TypeError) as exc:
                raise SpineAnalysisError(f"each centroid needs a 'level' and a 'point' ({exc})") from None
        labels = read_ct(request["labels"]) if request.get("labels") else None
        body_model = self._model("body", None, emit, 0.1) if labels is None or centroids else None
        key = (self._ct[0], weights)
        maps = self._fracture_maps[1] if self._fracture_maps and self._fracture_maps[0] == key else None
        assessment = assess_fractures(ct, model, request["out_dir"], request["ct"], body_model=body_model,
                                      centroids=centroids, label_map=labels,
                                      centroid_source="points given" if centroids else "",
                                      progress=lambda f, m: emit(_progress(0.05 + 0.9 * f, m)), maps=maps,
                                      protect=[request.get("ct"), request.get("labels")])
        if key[0] is not None:
            self._fracture_maps = (key, assessment.result.maps)
        return assessment.to_dict()


def _coordinate_system(request: dict) -> str:
    """The coordinate system ("lps" or "ras") of a CT job's points; "frame" is the cobb job's frame number."""
    if "frame" in request:
        raise SpineAnalysisError("'frame' is the frame number of a cobb job: send the points' coordinate system "
                                 "as 'coordinate_system' ('lps' or 'ras')")
    return request.get("coordinate_system", "lps")


def _progress(fraction: float, message: str) -> dict:
    return {"status": "progress", "fraction": fraction, "message": message}


def serve(requests: TextIO, answers: TextIO) -> None:
    """Answer each JSON line of ``requests`` on ``answers`` until ``requests`` ends."""
    runner = JobRunner()

    def emit(message: dict) -> None:
        answers.write(json.dumps(message) + "\n")  # ASCII: readable whatever the locale
        answers.flush()

    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            emit({"status": "error", "message": f"a request must be one line of JSON ({exc})"})
            continue
        runner.handle(request, emit)


def main() -> int:
    """``python -m spine_analysis.jobs``: serve stdin to stdout; 0 when stdin ends."""
    answers = sys.stdout
    sys.stdout = sys.stderr   # a library's print() must not break the JSON lines
    try:
        serve(sys.stdin, answers)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
