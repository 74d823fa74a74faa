"""Corner landmark files: our CSV (one row per corner, pixels) and JSON (``SpineLandmarks.to_dict``)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..errors import LandmarkError
from ..xray.landmarks import CORNER_LABELS, CORNERS, LEVELS, SpineLandmarks
from .atomic import write_csv_rows, write_json

LANDMARK_CSV_HEADER = ("level", "corner", "x_px", "y_px")


def write_landmarks_csv(landmarks: SpineLandmarks, path) -> None:
    """One row per corner: level, anatomical corner name, pixel x (column), pixel y (row)."""
    rows = [(level, corner, f"{x:.3f}", f"{y:.3f}")
            for level, quad in zip(landmarks.levels, landmarks.points)
            for corner, (x, y) in zip(CORNER_LABELS, quad)]
    write_csv_rows(LANDMARK_CSV_HEADER, rows, path)


def write_landmarks_json(landmarks: SpineLandmarks, path) -> None:
    """``landmarks.to_dict()`` as JSON at ``path`` (pixels, level names, corner names)."""
    write_json(landmarks.to_dict(), path)


def _landmarks_from_csv(path: Path) -> SpineLandmarks:
    """The CSV of ``write_landmarks_csv``: a header naming at least level, corner, x_px and y_px
    (other named columns are ignored), then one row per corner with as many values as the header
    has names. Corners are named anatomically (``CORNER_LABELS``) or as seen in the image
    (``CORNERS``); blank rows are skipped. Rows may come in any order, but each corner only once,
    and every level from the first to the last needs its 4 corners. Errors name the line."""
    corner_index = {name: i for names in (CORNER_LABELS, CORNERS) for i, name in enumerate(names)}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        header = [name.strip() for name in header] if header else None
        if header is None or not set(LANDMARK_CSV_HEADER) <= set(header):
            raise LandmarkError(f"{path} lacks the header {','.join(LANDMARK_CSV_HEADER)}")
        column = {name: header.index(name) for name in LANDMARK_CSV_HEADER}
        found, line_of = {}, {}
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise LandmarkError(f"{path} line {line} has {len(row)} columns, expected {len(header)} "
                                    f"({','.join(header)})")
            level, corner = row[column["level"]].strip(), row[column["corner"]].strip()
            if level not in LEVELS:
                raise LandmarkError(f"{path} line {line}: unknown level {level!r} "
                                    f"(expected one of {LEVELS[0]}–{LEVELS[-1]})")
            if corner not in corner_index:
                raise LandmarkError(f"{path} line {line}: unknown corner {corner!r} "
                                    f"(expected one of {', '.join(CORNER_LABELS)})")
            key = LEVELS.index(level), corner_index[corner]
            if key in found:
                raise LandmarkError(f"{path}: {level} {CORNER_LABELS[key[1]]} is given twice "
                                    f"(lines {line_of[key]} and {line})")
            try:
                found[key] = (float(row[column["x_px"]]), float(row[column["y_px"]]))
            except ValueError:
                raise LandmarkError(f"{path} line {line}: x_px and y_px must be numbers") from None
            line_of[key] = line
    if not found:
        raise LandmarkError(f"{path} holds no landmarks")
    levels = sorted({level for level, _ in found})
    first, last = levels[0], levels[-1]
    missing = [f"{LEVELS[lv]} {CORNER_LABELS[c]}" for lv in range(first, last + 1) for c in range(4)
               if (lv, c) not in found]
    if missing:
        more = " ..." if len(missing) > 4 else ""
        raise LandmarkError(f"{path} misses corners: {', '.join(missing[:4])}{more}")
    points = [[found[lv, c] for c in range(4)] for lv in range(first, last + 1)]
    return SpineLandmarks(np.array(points, dtype=float), LEVELS[first])


def read_landmarks(path) -> SpineLandmarks:
    """Landmarks from our CSV (``write_landmarks_csv``) or JSON (``SpineLandmarks.to_dict``)."""
    path = Path(path)
    if not path.is_file():
        raise LandmarkError(f"{path}: landmark file not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _landmarks_from_csv(path)
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LandmarkError(f"{path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise LandmarkError(f"{path} must hold a JSON object with 'points'")
        return SpineLandmarks.from_dict(data)
    raise LandmarkError(f"{path}: landmark files must be .csv or .json")

