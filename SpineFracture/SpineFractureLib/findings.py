"""The engine's fracture job seen from Slicer, without Slicer (tested by Testing/test_slicer_spinefracture_helpers.py):
the request built from a point list, vertebra names in label maps and segmentations, the table rows and the patient
summary made from the answer, and which row a centroid belongs to.

Points are RAS (Slicer's frame); the engine's rows give centroids in LPS (x and y negated).
"""
import re

import numpy as np

#: What separates the words of a segment or colour name ("vertebrae_L1", "L1 vertebra").
NAME_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")
#: A point without a label is sent as "point <n>" (n counts from 1 in the point list).
UNNAMED_POINT = "point {number}"
#: Below this fracture probability the overlay is transparent: the CT stays readable.
OVERLAY_MIN_PROBABILITY = 0.1
#: A point farther than this from every result centroid (and not named like a row) belongs to no row.
POINT_REACH_MM = 25.0

CALLS = ("fractured", "normal", "not assessed")
COLUMNS = ("level", "probability", "genant_grade", "deformity", "height_loss_pct", "anterior_mm", "middle_mm",
           "posterior_mm", "call", "basis", "opinions_agree", "note", "centroid_r", "centroid_a", "centroid_s")
TITLES = {"level": "Level", "probability": "Classifier probability", "genant_grade": "Genant grade",
          "deformity": "Deformity", "height_loss_pct": "Height loss", "anterior_mm": "Anterior",
          "middle_mm": "Middle", "posterior_mm": "Posterior", "call": "Call", "basis": "Basis of the call",
          "opinions_agree": "Agree", "note": "Note", "centroid_r": "R", "centroid_a": "A", "centroid_s": "S"}
UNITS = {"height_loss_pct": "%", "anterior_mm": "mm", "middle_mm": "mm", "posterior_mm": "mm",
         "centroid_r": "mm", "centroid_a": "mm", "centroid_s": "mm"}
DESCRIPTIONS = {
    "probability": "Fractured share of the vertebral-body probability around the centroid (voxel classifier)",
    "genant_grade": "Genant semi-quantitative grade from the vertebral body heights: "
                    "0 normal, 1 mild, 2 moderate, 3 severe",
    "height_loss_pct": "Height loss against the larger of the body's own posterior height and its neighbours' mean",
    "call": "fractured, normal or not assessed",
    "basis": "Which opinion (classifier or morphometry) drove the call",
    "opinions_agree": "Whether the classifier and the Genant grade agree",
    "centroid_r": "Vertebra centroid (RAS)", "centroid_a": "Vertebra centroid (RAS)",
    "centroid_s": "Vertebra centroid (RAS)",
}
ANSWER_KEYS = ("probability", "vertebrae", "patient")


# ---------------------------------------------------------------------- level names

def levelInName(name):
    """The level that is a word of a segment or colour name ("vertebrae_L1" -> "L1"; not "C10", "TL1", "Segment_1"),
    or None."""
    from spine_analysis.ct.levels import level_from_text

    return next((level for word in NAME_SEPARATORS.split(name or "") for level in [level_from_text(word)] if level),
                None)


def verseNumber(level):
    """VerSe label number of a level (L1 -> 20, T13 -> 28), or None."""
    from spine_analysis.ct.levels import VERSE_LEVEL_NAMES

    return next((number for number, name in VERSE_LEVEL_NAMES.items() if name == level), None)


def labelRemap(names):
    """How to renumber a label image into VerSe numbering, from its names {label value: name}.

    Returns ({value: VerSe number} for every value whose name holds a level, [names without a level]).
    Raises ValueError when two values name the same level (the engine would see one vertebra twice)."""
    mapping, unnamed, byLevel = {}, [], {}
    for value, name in sorted((names or {}).items()):
        level = levelInName(name)
        number = verseNumber(level) if level else None
        if number is None:
            unnamed.append(name)
            continue
        if level in byLevel:
            raise ValueError(f"'{byLevel[level]}' and '{name}' both name {level}: keep one of them.")
        byLevel[level] = name
        mapping[int(value)] = number
    return mapping, unnamed


def remapLabels(labels, mapping):
    """`labels` (integer array) with each value renumbered by `mapping`; values not in it become 0."""
    labels = np.asarray(labels)
    lookup = np.zeros(int(max([int(labels.max(initial=0))] + list(mapping))) + 1, dtype=np.uint16)
    for value, number in mapping.items():
        lookup[int(value)] = number
    return lookup[labels.astype(np.int64)]


# ---------------------------------------------------------------------- request

def centroidsFromPoints(points):
    """The request's "centroids" from a point list's (label, RAS position) pairs, in list order.

    A label that is a level is sent in capitals ("l1" -> "L1"); any other label ("vertebra 3") as typed; an empty
    one as "point <n>". Raises ValueError when two points have the same name (a row must belong to one point)."""
    from spine_analysis.ct.levels import level_from_text

    centroids, seen = [], {}
    for number, (label, position) in enumerate(points, start=1):
        text = (label or "").strip()
        name = level_from_text(text) or text or UNNAMED_POINT.format(number=number)
        key = name.casefold()
        if key in seen:
            raise ValueError(f"Points {seen[key]} and {number} are both named '{name}': rename one of them.")
        seen[key] = number
        centroids.append({"level": name, "point": [float(v) for v in position]})
    return centroids


def fractureRequest(ctPath, outDir, centroids=None, labelsPath=None, weightsPath=None):
    """The engine's fracture job. No centroids (None or empty): the engine takes the label map's vertebrae, or finds
    them itself. Points are RAS."""
    return {"job": "fracture", "ct": ctPath, "centroids": list(centroids) if centroids else None,
            "coordinate_system": "ras", "labels": labelsPath or None, "weights": weightsPath or None, "out_dir": outDir}


def checkAnswer(result):
    """Raise ValueError unless `result` looks like the fracture job's answer."""
    if not isinstance(result, dict) or any(key not in result for key in ANSWER_KEYS):
        raise ValueError("The engine's answer to the fracture job is incomplete (probability, vertebrae, patient).")
    if not isinstance(result["vertebrae"], list) or not isinstance(result["patient"], dict):
        raise ValueError("The engine's answer to the fracture job is malformed.")
    return result


# ---------------------------------------------------------------------- rows

def rowCentroidRas(row):
    """RAS centroid of an engine row, or None when it has none."""
    point = [row.get(f"centroid_lps_{axis}") for axis in "xyz"]
    if any(value is None for value in point):
        return None
    from spine_analysis.coords import flip_lps_ras

    return flip_lps_ras(point).tolist()


def tableRow(row):
    """The table row of one vertebra (COLUMNS), from an engine row."""
    ras = rowCentroidRas(row) or [None, None, None]
    grade = row.get("genant_grade")
    return {
        "level": row.get("level"),
        "probability": row.get("probability"),
        "genant_grade": None if grade is None else int(grade),
        "deformity": row.get("deformity") or (row.get("genant_label") if grade else None),
        "height_loss_pct": row.get("height_loss_pct"),
        "anterior_mm": row.get("anterior_mm"),
        "middle_mm": row.get("middle_mm"),
        "posterior_mm": row.get("posterior_mm"),
        "call": row.get("call"),
        "basis": row.get("basis"),
        "opinions_agree": row.get("opinions_agree"),
        "note": row.get("note"),
        "centroid_r": None if ras[0] is None else round(ras[0], 2),
        "centroid_a": None if ras[1] is None else round(ras[1], 2),
        "centroid_s": None if ras[2] is None else round(ras[2], 2),
    }


def centroidPoints(rows):
    """(level, RAS) of every row that has a centroid, in row order: the point list a result shows."""
    return [(str(row.get("level")), ras) for row in rows for ras in [rowCentroidRas(row)] if ras is not None]


def rowIndexForLevel(rows, level):
    """Index of the row named `level` (case and spaces ignored), or None."""
    key = (level or "").strip().casefold()
    return next((index for index, row in enumerate(rows) if str(row.get("level") or "").strip().casefold() == key),
                None) if key else None


def rowForPoint(rows, label, ras, reachMm=POINT_REACH_MM):
    """Index of the row a control point belongs to: the row named like its label; else the row whose centroid is
    nearest, if within `reachMm`; else None."""
    from spine_analysis.ct.levels import level_from_text

    named = rowIndexForLevel(rows, level_from_text(label) or label)
    if named is not None:
        return named
    best, bestDistance = None, float(reachMm)
    for index, row in enumerate(rows):
        centroid = rowCentroidRas(row)
        if centroid is None:
            continue
        distance = float(np.linalg.norm(np.asarray(centroid) - np.asarray(ras, dtype=float)))
        if distance <= bestDistance:
            best, bestDistance = index, distance
    return best


def fracturedLevels(rows):
    return [str(row.get("level")) for row in rows if row.get("call") == "fractured"]


# ---------------------------------------------------------------------- patient summary

def _probabilityText(value):
    return "n/a" if value is None else f"{float(value):.2f}"


def _levelsText(levels):
    return ", ".join(str(level) for level in levels) or "none"


def _classifierLine(classifier):
    """The classifier's opinion in a line: the levels it alone would call fractured, its highest probability and the
    fracture regions the paper reports."""
    components = classifier.get("fracture_components") or []
    threshold = classifier.get("threshold")
    line = f"Classifier: fractured {_levelsText(classifier.get('fractured_levels') or [])} (highest vertebra " \
           f"probability {_probabilityText(classifier.get('max_vertebra_probability'))}" + \
           (f", threshold {float(threshold):g})" if threshold is not None else ")")
    if components:
        volumes = ", ".join(f"{float(c.get('volume_ml', 0.0)):.1f} mL" for c in components)
        line += f"; {len(components)} fracture region{'s' if len(components) != 1 else ''} ({volumes})"
    return line + "."


def _morphometryLine(morphometry, rows):
    """The morphometric opinion in a line: how many vertebrae were graded and which are deformed, or why none was."""
    graded = [row for row in rows if row.get("genant_grade") is not None]
    count = morphometry.get("vertebrae_graded", len(graded))
    deformed = [f"{d.get('level')} grade {int(d.get('grade'))}" for d in morphometry.get("deformed") or []] if \
        "deformed" in morphometry else [f"{row.get('level')} grade {int(row['genant_grade'])}"
                                        for row in graded if row["genant_grade"] > 0]
    line = f"Morphometry (Genant): {count} vertebrae graded" + ("; " + ", ".join(deformed) if deformed else
                                                                  "; no deformity")
    if morphometry.get("note"):
        line += f"; {morphometry['note']}"
    return line + "."


def patientSummary(patient, rows=None):
    """Plain-text lines that sum up a result for the radiologist: the one call and its basis first, then each
    opinion under its own name."""
    rows = rows or []
    fractured = list(patient.get("fractured_levels") or fracturedLevels(rows))
    if patient.get("call") == "fractured":
        first = "Fracture: " + ", ".join(fractured)
    elif patient.get("call") == "normal":
        first = "No fracture found"
    else:
        first = f"Call: {patient.get('call') or 'none'}"
    assessed = patient.get("vertebrae_assessed")
    if assessed is not None:
        first += f" ({assessed} of {len(rows)} vertebrae assessed)" if rows else f" ({assessed} vertebrae assessed)"
    lines = [first + "."]
    if patient.get("basis"):
        lines.append(f"Basis: {patient['basis']}.")
    opinions = patient.get("opinions") or {}
    if opinions.get("classifier") is not None:
        lines.append(_classifierLine(opinions["classifier"]))
    if rows or opinions.get("morphometry"):
        lines.append(_morphometryLine(opinions.get("morphometry") or {}, rows))
    disagree = [str(row.get("level")) for row in rows if row.get("opinions_agree") is False]
    if disagree:
        lines.append("The two opinions disagree at " + ", ".join(disagree) + ": see the basis of each call.")
    if patient.get("level_source"):
        lines.append(f"Levels: {patient['level_source']}.")
    if patient.get("note"):
        lines.append(f"Note: {patient['note']}.")
    return lines
