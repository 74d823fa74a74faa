"""The Cobb report of one radiograph and the files written for it.

All outputs of a run are written into a staging folder first and moved into place only when
every file is complete, so a failed run leaves the output folder as it was.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from .cobb import AASCE_NAMES, CobbResult
from ..io.atomic import check_output_folder, write_csv_rows, write_json
from ..io.dicom_out import write_overlay_capture
from ..io.xray import SPACING_SOURCES
from ..io.landmark_files import write_landmarks_csv, write_landmarks_json
from .landmarks import SpineLandmarks
from .overlay import draw_overlay, save_png
from .quality import QualityFlag, quality_flags
from .spine_check import SpineCheck

#: The severity a report gives when the image was measured although it failed the spine check.
SEVERITY_NOT_STATED = "not stated: the image did not pass the spine check"
OUTPUT_FILES = ("report.json", "report.csv", "landmarks.csv", "landmarks.json", "overlay.png")
#: Written beside them for a DICOM radiograph when asked: the overlay as a Secondary Capture in its study.
CAPTURE_FILE = "overlay_sc.dcm"


@dataclass
class CobbReport:
    """What a clinician reads: curves, AASCE angles, provenance, timings and quality flags.

    The three AASCE angles are named "AASCE angle 1 (largest)", "AASCE angle 2" and "AASCE
    angle 3" (``cobb.AASCE_NAMES``) and follow the column order of the challenge's
    ``angles.csv``; they are not the clinical PT/MT/TL-L curves listed above them."""

    source: str
    image_size: tuple[int, int]                   # (width, height) pixels
    result: CobbResult
    flags: list[QualityFlag] = field(default_factory=list)
    model: str | None = None                      # None: landmarks were given, not detected
    timings_s: dict = field(default_factory=dict)
    edited: bool = False
    note: str | None = None
    spacing_mm: tuple[float, float] | None = None
    spacing_source: str | None = None             # where spacing_mm came from (io.xray.SPACING_SOURCES)
    spine_check: SpineCheck | None = None         # None: landmarks were given, not detected

    @property
    def landmarks(self) -> SpineLandmarks:
        return self.result.landmarks

    @property
    def forced(self) -> bool:
        """Measured although the image did not pass the spine check: no severity is stated."""
        return self.spine_check is not None and not self.spine_check.passed

    def severity(self, curve) -> str:
        return SEVERITY_NOT_STATED if self.forced else curve.severity

    def to_dict(self) -> dict:
        result = self.result.to_dict()
        if self.forced:
            result["curves"] = [{**c, "severity": SEVERITY_NOT_STATED} for c in result["curves"]]
            result["overall_severity"] = SEVERITY_NOT_STATED
        return {
            "software": f"spine-analysis {__version__}",
            "source": self.source,
            "note": self.note,
            "image_size_px": list(self.image_size),
            "pixel_spacing_mm": list(self.spacing_mm) if self.spacing_mm else None,
            "pixel_spacing_source": SPACING_SOURCES.get(self.spacing_source, self.spacing_source),
            "landmarks_from": self.model or "provided landmarks",
            "landmarks_edited": self.edited,
            "spine_check": self.spine_check.to_dict() if self.spine_check else None,
            "forced": self.forced,
            **result,
            "quality_flags": [f.to_dict() for f in self.flags],
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
        }

    def summary(self) -> str:
        """A few readable lines for the terminal; the curve rows line up in columns whatever the
        lengths of the curve names (e.g. "TL/L (2)"), angles and vertebra names."""
        lines = [f"{self.source}: {self.landmarks.levels[0]}–{self.landmarks.levels[-1]}"]
        if self.note:
            lines.append(self.note)
        if self.forced:
            lines.append(f"MEASURED ANYWAY, no severity stated: {self.spine_check.reason}")
        if not self.result.curves:
            lines.append("no curve of 5° or more")
        cells = [(c.name, f"{c.angle_deg:.1f}°", f"{c.upper_end}–{c.lower_end},", f"{c.apex},",
                  f"{c.convexity},", "severity not stated" if self.forced else c.severity)
                 for c in self.result.curves]
        widths = [max(len(row[k]) for row in cells) for k in range(5)] if cells else []
        for name, angle, ends, apex, convexity, severity in cells:
            lines.append(f"  {name:<{widths[0]}}  {angle:>{widths[1]}}  {ends:<{widths[2]}} "
                         f"apex {apex:<{widths[3]}} convex to the patient's {convexity:<{widths[4]}} "
                         f"{severity}")
        if self.result.aasce_angles is not None:
            lines.append("  AASCE challenge rule (angles.csv order): " + ", ".join(
                f"{n} {a:.1f}°" for n, a in zip(AASCE_NAMES, self.result.aasce_angles)))
        for f in self.flags:
            lines.append(f"  check: {f.message}")
        return "\n".join(lines)


def make_report(result: CobbResult, source: str, image_size, extra_flags=(), **kwargs) -> CobbReport:
    """A report with the quality flags of the result's landmarks (after ``extra_flags``, such
    as the detector's framing flag)."""
    size = tuple(int(v) for v in image_size)
    return CobbReport(source=source, image_size=size, result=result,
                      flags=[*extra_flags, *quality_flags(result.landmarks, size)], **kwargs)


def endplate_lines(result: CobbResult) -> list:
    """The Cobb endplate segments with their labels, as the overlay draws them."""
    return [(tuple(seg[0]), tuple(seg[1]), c.label) for c in result.curves
            for seg in (c.upper_endplate, c.lower_endplate)]


def _report_rows(report: CobbReport) -> list[list]:
    rows = [[c.name, c.region, f"{c.angle_deg:.2f}", c.upper_end, c.lower_end, c.apex,
             c.convexity, report.severity(c)] for c in report.result.curves]
    if report.result.aasce_angles is not None:
        rows += [[f"AASCE {n}", "AASCE rule", f"{a:.2f}", "", "", "", "", ""]
                 for n, a in zip(AASCE_NAMES, report.result.aasce_angles)]
    return rows


def check_outputs(out_dir, protect=(), capture: bool = False) -> dict[str, Path]:
    """The output paths (with ``CAPTURE_FILE`` if ``capture``), after checking none is an input
    (``protect``) or a non-file and that the folder is writable (``io.atomic.check_output_folder``).

    Called before any work, so a run that cannot write its results fails at once."""
    return check_output_folder(out_dir, OUTPUT_FILES + ((CAPTURE_FILE,) if capture else ()), protect)


def write_report_files(out_dir, image: np.ndarray, report: CobbReport,
                       protect=(), dicom_radiograph=None) -> dict[str, Path]:
    """Write report.json/.csv, landmarks.csv/.json and overlay.png into ``out_dir``, and with
    ``dicom_radiograph`` (the radiograph's pydicom header) the overlay as a DICOM Secondary
    Capture in its study, ``CAPTURE_FILE``.

    ``protect`` lists input paths that must never be overwritten. Returns the written paths.
    """
    out_dir = Path(out_dir)
    targets = check_outputs(out_dir, protect, capture=dicom_radiograph is not None)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".spine-analysis-", dir=out_dir))
    try:
        write_json(report.to_dict(), staging / "report.json")
        write_csv_rows(["curve", "region", "angle_deg", "upper_end_vertebra", "lower_end_vertebra",
                        "apex", "convexity", "severity"], _report_rows(report), staging / "report.csv")
        write_landmarks_csv(report.landmarks, staging / "landmarks.csv")
        write_landmarks_json(report.landmarks, staging / "landmarks.json")
        title = f"{Path(report.source).name}" + (" (edited landmarks)" if report.edited else "")
        if report.note:
            title += f" - {report.note}"
        if report.forced:
            title += " - did not pass the spine check, measured anyway"
        overlay = draw_overlay(image, report.landmarks, endplate_lines(report.result), title)
        save_png(overlay, staging / "overlay.png")
        if dicom_radiograph is not None:
            write_overlay_capture(overlay, dicom_radiograph, staging / CAPTURE_FILE,
                                  patient_right_on_image_left=report.result.patient_right_on_image_left,
                                  protect=protect)
        for name, target in targets.items():
            (staging / name).replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return targets


def write_cobb_outputs(out_dir, image: np.ndarray, landmarks: SpineLandmarks, result: CobbResult,
                       edited: bool, source: str, spine_check_failure: str | None = None) -> dict[str, Path]:
    """The Slicer module's export: the report of (possibly edited) landmarks with its files.

    ``spine_check_failure`` is the reason the image did not pass the spine check when it was
    measured anyway: the report then says so and states no severity."""
    check = SpineCheck(False, reason=spine_check_failure) if spine_check_failure else None
    report = make_report(result, source, (image.shape[1], image.shape[0]), edited=edited, spine_check=check)
    if result.landmarks is not landmarks:
        raise ValueError("the result was computed from other landmarks")
    return write_report_files(out_dir, image, report)
