"""Names of vertebrae in CT: VerSe label numbers, VerSe centroid files, label maps, and where a
named vertebra is (``Centroid``), read from those files or found in a label map.

A level is only ever named from one of these or from the user's entry, never guessed.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..coords import flip_lps_ras
from ..errors import SpineAnalysisError
from .body_labels import OPENING_MM, body_from_vertebra
from .patches import contains_point, patch_grid, sample_patch

#: VerSe vertebra numbering (also used by the VerSe 2019/2020 label maps).
VERSE_LEVEL_NAMES: dict[int, str] = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{i + 7: f"T{i}" for i in range(1, 13)},
    **{i + 19: f"L{i}" for i in range(1, 7)},
    26: "sacrum",
    28: "T13",
}

#: The levels a user may type: C1-C7, T1-T13, L1-L6 (T13 and L6 exist as anatomical variants).
LEVEL_PATTERN = re.compile(r"^(C[1-7]|T([1-9]|1[0-3])|L[1-6])$")

#: A VerSe centroid farther than this from the seed does not name its vertebra (mm).
CENTROID_REACH_MM = 20.0


def level_from_text(text: str | None) -> str | None:
    """The level a user typed ("L1", " t12 "), in capitals; None for anything else ("Seeds-3", "L1 centrum")."""
    level = (text or "").strip().upper()
    return level if LEVEL_PATTERN.match(level) else None


def read_verse_centroids(path, ct: sitk.Image) -> dict[str, np.ndarray]:
    """Vertebra centroids of a VerSe ``*_ctd.json`` as LPS points, keyed by level name.

    VerSe stores voxel coordinates of the scan reoriented to the axes its first entry names
    (e.g. P, I, R), so ``ct`` (the scan the file belongs to) is needed to place them."""
    try:
        entries = json.loads(Path(path).read_text())
        axes = "".join(entries[0]["direction"])
        oriented = sitk.DICOMOrient(ct, axes)
        centroids = {}
        for entry in entries[1:]:
            if "label" in entry and {"X", "Y", "Z"} <= set(entry):
                name = VERSE_LEVEL_NAMES.get(int(entry["label"]), f"label {entry['label']}")
                centroids[name] = np.array(oriented.TransformContinuousIndexToPhysicalPoint(
                    (float(entry["X"]), float(entry["Y"]), float(entry["Z"]))))
    except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError) as exc:
        raise SpineAnalysisError(f"{path} is not a VerSe centroid file ({type(exc).__name__}: {exc})") from None
    if not centroids:
        raise SpineAnalysisError(f"{path} lists no vertebra centroids")
    return centroids


def level_from_centroids(centroids: dict[str, np.ndarray], point_lps: np.ndarray) -> str | None:
    """The level whose centroid is nearest ``point_lps``, if within ``CENTROID_REACH_MM``."""
    name, distance = min(((n, float(np.linalg.norm(c - point_lps))) for n, c in centroids.items()),
                         key=lambda item: item[1])
    return name if distance <= CENTROID_REACH_MM else None


def level_from_label_map(labels: sitk.Image, mask: np.ndarray, names: dict[int, str] = VERSE_LEVEL_NAMES) -> str | None:
    """The level of the label covering most of ``mask`` (a (z, y, x) array on the label map's
    grid), if it covers at least half of it."""
    values = sitk.GetArrayViewFromImage(labels)[mask].astype(np.int64)
    values = values[values > 0]
    if values.size * 2 < mask.sum():
        return None
    label = int(np.bincount(values).argmax())
    return names.get(label, f"label {label}")


@dataclass
class Centroid:
    """A vertebra to assess: its level name and its centroid (LPS, mm)."""

    level: str
    lps: np.ndarray


def _label_at(label_map: sitk.Image, point_lps: np.ndarray) -> int:
    """The label map's value at a point (0 outside it)."""
    if not contains_point(label_map, point_lps):
        return 0
    return int(label_map[label_map.TransformPhysicalPointToIndex([float(v) for v in point_lps])])


def labels_of_centroids(label_map: sitk.Image, centroids: Sequence[Centroid]) -> list[int]:
    """The label of each given centroid: the one of the level it is named by, when the label map holds that level,
    else the one under it (0: none). A point named L2 stays L2's vertebra wherever it was moved to (into the spinal
    canal, onto a disc), as its row says."""
    present = {int(v) for v in np.unique(sitk.GetArrayViewFromImage(label_map))}
    numbers = {name.upper(): number for number, name in VERSE_LEVEL_NAMES.items() if number in present}
    return [numbers.get(str(c.level).strip().upper()) or _label_at(label_map, c.lps) for c in centroids]


def _body_centroid(label_map: sitk.Image, value: int, stats: sitk.LabelShapeStatisticsImageFilter) -> np.ndarray:
    """The centroid of label ``value``'s vertebral body (LPS): the whole vertebra's centroid lies behind the body, in
    the spinal canal, where the classifier's cube would hold only the back of the body. The vertebra's own centroid
    when no body can be told apart (a vertebra cut by the scan's edge). Found on a 1 mm grid around the label's
    bounding box (a margin of the opening's ball and more)."""
    x, y, z, sx, sy, sz = stats.GetBoundingBox(value)
    corners = np.array([label_map.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k)))
                        for i in (x - 1, x + sx) for j in (y - 1, y + sy) for k in (z - 1, z + sz)])
    low, high = corners.min(axis=0), corners.max(axis=0)
    grid = patch_grid((low + high) / 2, np.ceil(high - low).astype(int) + 2 * (OPENING_MM + 2), 1.0)
    body = body_from_vertebra(sample_patch(label_map, grid, labels=True) == value)
    if body is None:
        return np.array(stats.GetCentroid(value))
    z, y, x = np.nonzero(body)
    return np.array(grid.TransformContinuousIndexToPhysicalPoint((float(x.mean()), float(y.mean()), float(z.mean()))))


def centroids_from_label_map(label_map: sitk.Image) -> tuple[list[Centroid], list[int]]:
    """Each vertebra of the label map (VerSe numbering), at its body's centroid, from the top; and its label."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(label_map, sitk.sitkUInt16))
    values = [v for v in stats.GetLabels() if v in VERSE_LEVEL_NAMES and v != 26]
    centroids = [Centroid(VERSE_LEVEL_NAMES[v], _body_centroid(label_map, v, stats)) for v in values]
    order = np.argsort([-c.lps[2] for c in centroids])
    return [centroids[i] for i in order], [values[i] for i in order]


def read_centroids(path, ct: sitk.Image) -> dict[str, np.ndarray]:
    """Vertebra centroids (LPS) keyed by level from a VerSe ``*_ctd.json``, a Slicer point list
    (``.mrk.json``: each point's label is its level; RAS or LPS as the file says) or a CSV with
    columns ``level,x,y,z`` in LPS mm."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpineAnalysisError(f"{path}: cannot read the centroid file ({exc})") from None
    if path.suffix.lower() == ".csv":
        return _centroids_from_csv(path, text)
    try:
        data = json.loads(text)
    except ValueError:
        raise SpineAnalysisError(f"{path}: a centroid file is a VerSe JSON, a Slicer .mrk.json or a "
                                 "level,x,y,z CSV") from None
    if isinstance(data, dict) and "markups" in data:
        return _centroids_from_markups(path, data)
    return read_verse_centroids(path, ct)


def _centroids_from_markups(path: Path, data: dict) -> dict[str, np.ndarray]:
    centroids = {}
    try:
        for markup in data["markups"]:
            ras = markup.get("coordinateSystem", "LPS") == "RAS"
            for point in markup.get("controlPoints", []):
                position = np.array(point["position"], dtype=float)
                centroids[str(point["label"])] = flip_lps_ras(position) if ras else position
    except (KeyError, TypeError, ValueError) as exc:
        raise SpineAnalysisError(f"{path} is not a Slicer point list ({type(exc).__name__}: {exc})") from None
    if not centroids:
        raise SpineAnalysisError(f"{path} holds no points")
    return centroids


def _centroids_from_csv(path: Path, text: str) -> dict[str, np.ndarray]:
    import csv

    centroids = {}
    rows = list(csv.DictReader(text.splitlines()))
    for number, row in enumerate(rows, start=2):
        try:
            centroids[row["level"].strip()] = np.array([float(row[k]) for k in ("x", "y", "z")])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise SpineAnalysisError(f"{path} line {number}: expected columns level,x,y,z (LPS, mm)") from None
    if not centroids:
        raise SpineAnalysisError(f"{path} lists no centroids")
    return centroids
