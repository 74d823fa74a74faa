"""Training cases for the fracture network: labelled CT scans (found and read as for the body
network, ``body_model.data``) with each vertebra's Genant grade from a grades JSON.

The grades file maps ``"<scan>_<VerSe label>"`` (e.g. ``"sub-verse010_20"`` for L1 of
sub-verse010) to a grade 0-3, either flat or grouped (``{"train": {...}, "test": {...}}``), as
the VerSe 2019 grades of ``ct-spine/fracture-grades`` are. A vertebra the file does not grade is
taken as normal and listed as such: the simulated fractures are made from these. Vertebrae cut
by the scan's edge are kept as labels (a body in view is never background) but not trained on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...errors import SpineAnalysisError
from ..scans import Scan, load_scans
from ..levels import VERSE_LEVEL_NAMES

_LEVEL_LABELS = {name: label for label, name in VERSE_LEVEL_NAMES.items()}


def read_grades(path) -> dict[str, int]:
    """``{"<scan>_<VerSe label>": grade}`` from a flat or grouped grades JSON."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SpineAnalysisError(f"{path}: not a readable grades JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SpineAnalysisError(f"{path}: a grades JSON maps '<scan>_<label>' to a Genant grade 0-3")
    groups = data.values() if all(isinstance(v, dict) for v in data.values()) else [data]
    grades = {}
    for group in groups:
        for key, grade in group.items():
            if not isinstance(grade, int) or not 0 <= grade <= 3:
                raise SpineAnalysisError(f"{path}: {key} has grade {grade!r}; grades are 0, 1, 2 or 3")
            grades[str(key)] = grade
    return grades


@dataclass
class GradedScan:
    """A scan and, per vertebra (same order as ``scan.vertebrae``), its grade; None when ungraded."""

    scan: Scan
    grades: list[int | None]

    def fractured(self, index: int) -> bool:
        """Whether vertebra ``index`` is graded as fractured (mild or worse)."""
        return (self.grades[index] or 0) >= 1


def grade_of(grades: dict[str, int], scan_name: str, level: str) -> int | None:
    label = _LEVEL_LABELS.get(level)
    return None if label is None else grades.get(f"{scan_name}_{label}")


def load_graded_scans(root, grades_path=None, log=print) -> list[GradedScan]:
    """Every labelled scan under ``root`` with its vertebrae's grades (``grades_path`` optional)."""
    grades = read_grades(grades_path) if grades_path else {}
    graded = []
    for scan in load_scans(root, log=log, keep_cut=True):
        found = [grade_of(grades, scan.name, v.level) for v in scan.vertebrae]
        ungraded = [v.level for v, g in zip(scan.vertebrae, found) if g is None]
        if ungraded:
            log(f"{scan.name}: no grade for {', '.join(ungraded)}: taken as normal")
        graded.append(GradedScan(scan, found))
    return graded
