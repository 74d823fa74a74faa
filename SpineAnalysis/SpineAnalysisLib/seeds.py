"""What a seed and a centrum segment mean, without Slicer (tested by Testing/test_slicer_spineanalysis_helpers.py):
the level a user typed, the segment's name, the CT box sent to the engine, the names and levels of a user's vertebra
labels, and the table row of the metrics the engine measured.

A level is only ever what the user typed or what a label map says (the engine decides the latter); never a guess.
"""
import re

import numpy as np

SEGMENT_NAME_PATTERN = re.compile(r"^\s*(?P<level>\S+)(\s+centrum)?\s*$", re.IGNORECASE)
UNNAMED_NAME = "vertebra {number} centrum"
#: How the engine names the only seed of a request in a refusal (spine_analysis.ct.vertebral_body.segment_vertebrae).
ENGINE_SEED_NUMBER = re.compile(r"^seed 1: ")
#: Half the side of the CT box sent to the engine: its 1 mm patch around the seed is at most 96 mm wide.
CROP_HALF_WIDTH_MM = 64.0

METHOD_LABELS = {"unet": "U-Net", "classical": "Classical"}
COLUMNS = ["segment", "level", "level_from", "volume_ml", "hu_mean", "hu_median", "hu_std",
           "lytic_percent", "sclerotic_percent", "density_hint", "method"]
TITLES = {"segment": "Segment", "level": "Level", "level_from": "Level from", "volume_ml": "Centrum volume",
          "hu_mean": "Mean", "hu_median": "Median", "hu_std": "SD", "lytic_percent": "Lytic",
          "sclerotic_percent": "Sclerotic", "density_hint": "Density hint", "method": "Method",
          "at_seed": "At seed"}
#: Added to the rows of a user's labels measured with a seed: whether the vertebra holds the seed.
AT_SEED_COLUMN = "at_seed"
UNITS = {"volume_ml": "mL", "hu_mean": "HU", "hu_median": "HU", "hu_std": "HU", "lytic_percent": "%",
         "sclerotic_percent": "%"}


def segmentName(level, number):
    """"L1 centrum" for a named vertebra, else "vertebra 3 centrum" (`number`: the seed's number)."""
    return f"{level} centrum" if level and level != "unnamed" else UNNAMED_NAME.format(number=number)


def levelFromSegmentName(name):
    """The level a segment's name gives ("L1 centrum" or "L1" -> "L1"); None for unnamed or other segments."""
    from spine_analysis.ct.levels import level_from_text

    match = SEGMENT_NAME_PATTERN.match(name or "")
    return level_from_text(match.group("level")) if match else None


def freeNumber(names):
    """The smallest n for which "vertebra n centrum" is not among `names`."""
    number = 1
    while UNNAMED_NAME.format(number=number) in names:
        number += 1
    return number


def oneSeedMessage(text):
    """An engine refusal of a request holding one seed, without the engine's number for it ("seed 1: the seed is in
    air ..." -> "The seed is in air ..."): the module sends each seed alone, so that number is never the user's."""
    text = ENGINE_SEED_NUMBER.sub("", str(text or ""), count=1)
    return text[:1].upper() + text[1:]


def cropBox(ijk, spacing, size, halfWidthMm=CROP_HALF_WIDTH_MM):
    """(start, stop) voxel indices per axis (i, j, k) of a box of about 2 * `halfWidthMm` around the continuous
    index `ijk`, clipped to a volume of `size` voxels. Raises ValueError when `ijk` lies outside the volume."""
    ijk, spacing, size = (np.asarray(v, dtype=float) for v in (ijk, spacing, size))
    if np.any(ijk < -0.5) or np.any(ijk > size - 0.5):
        raise ValueError("The seed lies outside the CT volume.")
    centre = np.round(ijk)
    half = np.ceil(halfWidthMm / spacing)
    start = np.clip(centre - half, 0, size).astype(int)
    stop = np.clip(centre + half + 1, 0, size).astype(int)
    return start.tolist(), stop.tolist()


def labelBox(labels):
    """(start, stop) voxel indices per axis (i, j, k) of the non-zero voxels of a (k, j, i) array, or None."""
    present = np.nonzero(labels)
    if not present[0].size:
        return None
    start = [int(axis.min()) for axis in reversed(present)]
    stop = [int(axis.max()) + 1 for axis in reversed(present)]
    return start, stop


def metricsRow(segment, metrics):
    """The table row of one centrum: engine metrics (CentrumMetrics.to_dict()) shown as the user reads them."""
    method = METHOD_LABELS.get(metrics.get("method"), metrics.get("method") or "")
    if metrics.get("remeasured"):
        method = f"{method}, re-measured" if method else "re-measured"
    return {
        "segment": segment,
        "level": metrics.get("level"),
        "level_from": metrics.get("level_from"),
        "volume_ml": metrics.get("volume_ml"),
        "hu_mean": metrics.get("hu_mean"),
        "hu_median": metrics.get("hu_median"),
        "hu_std": metrics.get("hu_std"),
        "lytic_percent": None if metrics.get("lytic_share") is None else 100.0 * metrics["lytic_share"],
        "sclerotic_percent": None if metrics.get("sclerotic_share") is None else 100.0 * metrics["sclerotic_share"],
        "density_hint": metrics.get("density_hint"),
        "method": method,
    }


def labelNames(values, names=None):
    """{label value: (name, level or None)} of a user's vertebra labels. `names` ({value: name}: the segments of a
    segmentation, or the label map's own colour table) name them, a level when a name is one ("L1", "L1 centrum");
    without names the values are VerSe numbers (20 = L1). A label named by neither is "label <value>"."""
    from spine_analysis.ct.levels import VERSE_LEVEL_NAMES

    named = {}
    for value in values:
        if names is None:
            level = VERSE_LEVEL_NAMES.get(int(value))
            named[int(value)] = (level or f"label {value}", level)
        else:
            name = names.get(int(value)) or f"label {value}"
            named[int(value)] = (name, levelFromSegmentName(name))
    return named


def labelRows(vertebrae, named, levelFrom, seedLabel=None):
    """Table rows (`metricsRow`) of the engine's measure_centra answer for a user's labels, in label order: each
    named as `named` ({value: (name, level)}, see `labelNames`) says, a level it gives coming from `levelFrom` (e.g.
    "label map"). With `seedLabel` (the label holding a seed, 0 for none) each row says whether it holds the seed."""
    rows = []
    for metrics in sorted(vertebrae, key=lambda each: int(each["index"])):
        value = int(metrics["index"])
        name, level = named.get(value, (f"label {value}", None))
        row = metricsRow(name, dict(metrics, level_from=levelFrom) if level else metrics)
        if seedLabel is not None:
            row[AT_SEED_COLUMN] = value == seedLabel
        rows.append(row)
    return rows
