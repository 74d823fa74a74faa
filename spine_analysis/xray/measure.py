"""One radiograph measured: detection, the spine check, the Cobb angles and their report.

The command line's ``cobb`` and the warm server's ``cobb`` job both come here, so an image is
refused, or measured with ``force``, the same way whichever front end a user meets.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import NotSpineRadiographError
from .cobb import analyse
from .report import CobbReport, make_report
from .spine_check import check_radiograph


def measure_radiograph(detector, pixels: np.ndarray, source: str, *, force: bool = False,
                       patient_right_on_image_left: bool = True, spacing_mm=None, spacing_source=None,
                       note: str | None = None, model_load_s: float | None = None) -> CobbReport:
    """The report of radiograph ``pixels`` (rows, cols; bright bone) with a loaded ``detector``.

    An image that fails the spine check raises ``NotSpineRadiographError`` (its reason), unless
    ``force``: then it is measured and the report says it did not pass (no severity stated).
    """
    started = time.perf_counter()
    detection = detector.detect(pixels)
    check = check_radiograph(detector, pixels, detection)
    if not check.passed and not force:
        raise NotSpineRadiographError(check.reason)
    height, width = pixels.shape
    timings = {"detection": detection.seconds}
    if model_load_s is not None:
        timings = {"model_load": model_load_s, **timings}
    report = make_report(analyse(detection.landmarks, height, patient_right_on_image_left), source, (width, height),
                         extra_flags=detection.flags, model=detector.version, timings_s=timings, note=note,
                         spacing_mm=spacing_mm, spacing_source=spacing_source, spine_check=check)
    report.timings_s["measure"] = time.perf_counter() - started
    return report

