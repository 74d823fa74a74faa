"""The engine's entry point for front ends that run it in another process (the Slicer modules).

``python -m spine_analysis.jobs`` reads one JSON request per line on stdin and answers each
with JSON lines on stdout: zero or more ``{"status": "progress", "fraction": f, "message": m}``,
then one ``{"status": "done", "result": {...}}`` or ``{"status": "error", "message": m}``. It
reads requests until stdin closes, so a front end can keep it running between requests, with
its model loaded. Anything else a library prints goes to stderr, never between the lines.

Jobs (``"job"`` in the request):
- ``landmarks``: ``{"image": PATH, "weights": PATH or null}`` -> ``{"landmarks":
  SpineLandmarks.to_dict(), "flags": [QualityFlag.to_dict(), ...] (the detector's own flags),
  "model": version text, "seconds": {"model_load": s, "detection": s}}``.
- ``vertebral_body``: ``{"ct": PATH, "seeds": [[x, y, z], ...], "frame": "ras" or "lps",
  "method": "unet" or "classical", "levels": [name or null, ...], "labels": PATH or null,
  "weights": PATH or null, "out": PATH, "lytic_below_hu": v, "sclerotic_above_hu": v}`` ->
  writes the mask (label k for seed k, on the CT's grid) to ``out`` and answers ``{"mask": out,
  "vertebrae": [CentrumMetrics.to_dict(), ...], "model": version text or "classical"}``.
- ``measure_centra``: ``{"ct": PATH, "labels": PATH, "names": {"1": "L1", ...},
  "lytic_below_hu": v, "sclerotic_above_hu": v}`` -> ``{"vertebrae": [CentrumMetrics.to_dict(), ...]}``
  for every label of an edited label map.
- ``fracture``: ``{"ct": PATH, "centroids": [{"level": name, "point": [x, y, z]}, ...] or null,
  "frame": "ras" or "lps" (of those points), "labels": PATH or null, "weights": PATH or null,
  "out_dir": PATH}`` -> writes ``ct.fracture.OUTPUT_FILES`` into ``out_dir`` and answers
  ``{"probability": PATH, "vertebrae": [VertebraFinding.row(), ...], "patient": {...},
  "level_source": text, "model": version text, "seconds": {...}}``. The classifier's
  probabilities of the last CT are kept: moved centroids are assessed again without it.

The last CT read stays in memory: a front end sending the same file again (same path, size and
modification time) is not read twice.
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Callable, TextIO

import numpy as np

from .errors import SpineAnalysisError

Emit = Callable[[dict], None]


class JobRunner:
    """Runs requests one after the other, keeping loaded models for the next request."""

    def __init__(self):
        self._detectors: dict = {}
        self._body_models: dict = {}
        self._ct: tuple | None = None
        self._fracture_models: dict = {}
        self._fracture_maps: tuple | None = None

    def handle(self, request: dict, emit: Emit) -> None:
        """Run one request, emitting its progress and exactly one final line."""
        try:
            if not isinstance(request, dict):
                raise SpineAnalysisError("a request must be a JSON object")
            job = request.get("job")
            handlers = {"landmarks": self._landmarks, "vertebral_body": self._vertebral_body,
                        "measure_centra": self._measure_centra, "fracture": self._fracture}
            handler = handlers.get(job)
            if handler is None:
                raise SpineAnalysisError(f"unknown job {job!r}; known: {', '.join(handlers)}")
            emit({"status": "done", "result": handler(request, emit)})
        except (SpineAnalysisError, OSError) as exc:
            emit({"status": "error", "message": str(exc)})
        except Exception as exc:  # a bug, not a user's error: keep serving, leave the traceback on stderr
            traceback.print_exc(file=sys.stderr)
            emit({"status": "error", "message": f"internal error ({type(exc).__name__}: {exc}); "
                                                "the details are in the engine's log"})

    def _landmarks(self, request: dict, emit: Emit) -> dict:
        from .io.xray import read_xray
        from .xray.landmark_model.detector import LandmarkDetector

        if not request.get("image"):
            raise SpineAnalysisError("the landmarks job needs an 'image' path")
        emit(_progress(0.1, "reading the radiograph"))
        pixels = read_xray(request["image"]).pixels
        weights = request.get("weights") or None
        load_s = 0.0
        if weights not in self._detectors:
            emit(_progress(0.3, "loading the landmark model"))
            started = time.perf_counter()
            self._detectors[weights] = LandmarkDetector.load(weights)
            load_s = time.perf_counter() - started
        detector = self._detectors[weights]
        emit(_progress(0.5, "detecting 68 vertebral corners"))
        detection = detector.detect(pixels)
        return {"landmarks": detection.landmarks.to_dict(), "flags": [f.to_dict() for f in detection.flags],
                "model": detector.version, "seconds": {"model_load": load_s, "detection": detection.seconds}}


    def _read_ct(self, path):
        """The CT at ``path``, from memory when the file has not changed since it was last read."""
        from pathlib import Path

        from .io.ct import read_ct

        if not path:
            raise SpineAnalysisError("the job needs a 'ct' path")
        stat = Path(path).stat() if Path(path).is_file() else None
        key = (str(path), stat.st_size, stat.st_mtime_ns) if stat else None
        if key is None or self._ct is None or self._ct[0] != key:
            self._ct = (key, read_ct(path))
        return self._ct[1]

    def _body_model(self, weights, emit: Emit):
        """The body network of folder ``weights`` (None: the default), loaded once."""
        if weights not in self._body_models:
            from .ct.body_model.weights_io import load_model

            emit(_progress(0.1, "loading the body model"))
            self._body_models[weights] = load_model(weights)
        return self._body_models[weights]

    @staticmethod
    def _thresholds(request: dict):
        from .ct.vertebral_body import DensityThresholds

        defaults = DensityThresholds()
        return DensityThresholds(
            lytic_below_hu=float(request.get("lytic_below_hu", defaults.lytic_below_hu)),
            sclerotic_above_hu=float(request.get("sclerotic_above_hu", defaults.sclerotic_above_hu)))

    def _vertebral_body(self, request: dict, emit: Emit) -> dict:
        import SimpleITK as sitk

        from .ct.vertebral_body import segment_vertebrae
        from .io.atomic import atomic_output
        from .io.ct import read_ct

        if not request.get("out"):
            raise SpineAnalysisError("the vertebral_body job needs an 'out' path for the mask")
        emit(_progress(0.05, "reading the CT"))
        ct = self._read_ct(request.get("ct"))
        method = request.get("method", "unet")
        model, version = None, "classical"
        if method == "unet":
            model, bundle = self._body_model(request.get("weights") or None, emit)
            version = f"body model {bundle.metadata.get('trained', '')} settings {bundle.digest}"
        labels = read_ct(request["labels"]) if request.get("labels") else None
        output, _, metrics = segment_vertebrae(
            ct, request.get("seeds") or [], request.get("frame", "lps"), method, model,
            request.get("levels"), labels, None, self._thresholds(request),
            progress=lambda f, m: emit(_progress(0.15 + 0.8 * f, m)))
        mask = sitk.GetImageFromArray(output)
        mask.CopyInformation(ct)
        with atomic_output(request["out"]) as tmp:
            sitk.WriteImage(mask, str(tmp), True)
        return {"mask": request["out"], "vertebrae": [m.to_dict() for m in metrics], "model": version}

    def _measure_centra(self, request: dict, emit: Emit) -> dict:
        import SimpleITK as sitk

        from .ct.bone_metrics import labels_on_ct_grid
        from .ct.vertebral_body import measure_centrum
        from .io.ct import read_ct

        ct = self._read_ct(request.get("ct"))
        if not request.get("labels"):
            raise SpineAnalysisError("the measure_centra job needs a 'labels' path")
        labels = sitk.GetArrayFromImage(labels_on_ct_grid(ct, read_ct(request["labels"])))
        names = {int(k): v for k, v in (request.get("names") or {}).items()}
        present = [int(v) for v in np.unique(labels) if v]
        if not present:
            raise SpineAnalysisError("the label map is empty: no centrum to measure")
        thresholds = self._thresholds(request)
        return {"vertebrae": [measure_centrum(ct, labels == label, label, names.get(label, "unnamed"),
                                              "entered" if label in names else "not given", thresholds).to_dict()
                              for label in present]}

    def _fracture(self, request: dict, emit: Emit) -> dict:
        from .ct.fracture import Centroid, detect_fractures, write_outputs
        from .ct.patches import to_lps
        from .io.ct import read_ct

        if not request.get("out_dir"):
            raise SpineAnalysisError("the fracture job needs an 'out_dir' folder")
        emit(_progress(0.02, "reading the CT"))
        ct = self._read_ct(request.get("ct"))
        weights = request.get("weights") or None
        if weights not in self._fracture_models:
            from .ct.fracture_model.weights_io import load_model

            emit(_progress(0.04, "loading the fracture model"))
            self._fracture_models[weights] = load_model(weights)
        model, bundle = self._fracture_models[weights]
        centroids = None
        if request.get("centroids"):
            frame = request.get("frame", "lps")
            try:
                centroids = [Centroid(str(c["level"]), to_lps(c["point"], frame)) for c in request["centroids"]]
            except (KeyError, TypeError) as exc:
                raise SpineAnalysisError(f"each centroid needs a 'level' and a 'point' ({exc})") from None
        labels = read_ct(request["labels"]) if request.get("labels") else None
        body_model = self._body_model(None, emit)[0] if labels is None or centroids else None
        key = (self._ct[0], weights)
        maps = self._fracture_maps[1] if self._fracture_maps and self._fracture_maps[0] == key else None
        result = detect_fractures(ct, model, centroids, labels, body_model, "points given" if centroids else "",
                                  lambda f, m: emit(_progress(0.05 + 0.9 * f, m)), maps)
        if key[0] is not None:
            self._fracture_maps = (key, result.maps)
        version = f"fracture model {bundle.metadata.get('trained', '')} settings {bundle.digest}"
        paths = write_outputs(result, request["out_dir"], {"ct": request["ct"], "model": version},
                              [request.get("ct"), request.get("labels")])
        return {"probability": paths["fracture_probability.nii.gz"], "vertebrae": [f.row() for f in result.vertebrae],
                "patient": result.patient, "level_source": result.level_source, "model": version,
                "seconds": result.seconds}


def _progress(fraction: float, message: str) -> dict:
    return {"status": "progress", "fraction": fraction, "message": message}


def serve(requests: TextIO, answers: TextIO) -> None:
    """Answer each JSON line of ``requests`` on ``answers`` until ``requests`` ends."""
    runner = JobRunner()

    def emit(message: dict) -> None:
        answers.write(json.dumps(message, ensure_ascii=False) + "\n")
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
