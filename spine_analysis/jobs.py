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
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Callable, TextIO

from .errors import SpineAnalysisError

Emit = Callable[[dict], None]


class JobRunner:
    """Runs requests one after the other, keeping loaded models for the next request."""

    def __init__(self):
        self._detectors: dict = {}

    def handle(self, request: dict, emit: Emit) -> None:
        """Run one request, emitting its progress and exactly one final line."""
        try:
            if not isinstance(request, dict):
                raise SpineAnalysisError("a request must be a JSON object")
            job = request.get("job")
            handler = {"landmarks": self._landmarks}.get(job)
            if handler is None:
                raise SpineAnalysisError(f"unknown job {job!r}; known: landmarks")
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
