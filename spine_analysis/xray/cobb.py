"""Cobb angles from vertebral corner landmarks: the AASCE challenge rule and the clinical curves.

All geometry is in image pixels (x right, y down). Angles are in degrees.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .landmarks import SpineLandmarks, vertebra_midlines

#: Names shown for the three columns of AASCE ``angles.csv``, in that file's column order. The
#: organisers' tool writes the largest (main) angle first, then the two angles its rule finds
#: beside it. The challenge labels the columns PT, MT and TL/L, but they are not the proximal
#: thoracic, main thoracic and thoracolumbar/lumbar curves (the clinical curves, which the
#: reports print beside them, carry those names), so reports and ``evaluate`` number them instead.
AASCE_NAMES = ("angle 1 (largest)", "angle 2", "angle 3")


def _pairwise_angles(vectors: np.ndarray) -> np.ndarray:
    """Angles (radians) between every pair of vectors, as the organisers' tool computes them."""
    norms = np.linalg.norm(vectors, axis=1)
    cosine = (vectors @ vectors.T) / np.outer(norms, norms)
    return np.arccos(np.clip(np.round(cosine, 8), -1.0, 1.0))


def _is_s_shaped(endplate_centres: np.ndarray) -> bool:
    """The organisers' shape test: do the centres lie on both sides of the end-to-end line?"""
    first, last = endplate_centres[0], endplate_centres[-1]
    inner = endplate_centres[:-2]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        values = ((inner[:, 1] - last[1]) / (first[1] - last[1])
                  - (inner[:, 0] - last[0]) / (first[0] - last[0]))
    values = np.nan_to_num(values)
    # Sum of pairwise products equals the sum of their absolute values iff all share one sign.
    return bool(np.any(values > 0) and np.any(values < 0))


def aasce_angles(landmarks: SpineLandmarks, image_height: float) -> np.ndarray:
    """The three AASCE angles in degrees, in ``angles.csv`` column order, by the organisers' rule.

    The order is (main, second, third) as the rule names them: see ``AASCE_NAMES``.

    ``image_height`` (pixels) enters the rule: it decides on which side of the main curve the
    third curve is sought. See ``shared/datasets/aasce16/README.md`` for the rule in words.
    """
    pts = landmarks.points
    angles = _pairwise_angles(vertebra_midlines(pts))
    last = len(pts) - 1
    # Column-wise maximum as MATLAB's max(matrix) returns it: A is the column, B its row.
    col_max = angles.max(axis=0)
    row_of_max = angles.argmax(axis=0)
    a = int(np.argmax(col_max))
    b = int(row_of_max[a])
    main = angles[b, a]
    endplate_centres = np.stack([(pts[:, 0] + pts[:, 1]) / 2, (pts[:, 2] + pts[:, 3]) / 2],
                                axis=1).reshape(-1, 2)
    if not _is_s_shaped(endplate_centres):
        second, third = angles[0, a], angles[last, b]
    else:
        c = int(np.argmax(angles[a, :a + 1]))
        second = angles[a, c]
        bottom_y = endplate_centres[2 * a + 1, 1] + endplate_centres[2 * b + 1, 1]
        if bottom_y < image_height:
            third = angles[b, b:].max()
        else:
            third = angles[c, :c + 1].max()
    return np.degrees([main, second, third])


# -- clinical mode ------------------------------------------------------------------------

#: Severity bands of the largest Cobb angle, in degrees: [lower, upper) -> name (SRS usage).
SEVERITY_BANDS = ((0.0, "none"), (10.0, "mild"), (25.0, "moderate"), (40.0, "severe"))
#: A swing of the vertebral tilt smaller than this is not taken as a curve (measurement noise).
MIN_CURVE_DEG = 5.0
#: Curve regions by apex level (Scoliosis Research Society conventions, simplified to levels):
#: proximal thoracic apex T1–T5, main thoracic T6–T11, thoracolumbar T12–L1, lumbar L2–L5.
REGIONS = (("PT", "proximal thoracic", ("T1", "T2", "T3", "T4", "T5")),
           ("MT", "main thoracic", ("T6", "T7", "T8", "T9", "T10", "T11")),
           ("TL/L", "thoracolumbar", ("T12", "L1")),
           ("TL/L", "lumbar", ("L2", "L3", "L4", "L5")))
CONVENTION = ("Convexity is given in patient terms. On a standard AP radiograph the patient "
              "faces the viewer, so the patient's right is on the image's left; pass "
              "patient_right_on_image_left=False for an image displayed the other way (PA).")


def severity(angle_deg: float) -> str:
    """Band of a Cobb angle: < 10 none, 10–25 mild, 25–40 moderate, > 40 severe
    (a value on a boundary goes to the band above it, except exactly 40, which is moderate)."""
    if angle_deg > 40.0:
        return "severe"
    name = "none"
    for lower, band in SEVERITY_BANDS[:3]:
        if angle_deg >= lower:
            name = band
    return name


#: How far a drawn endplate line reaches past each end, as a fraction of the endplate's width: the two
#: lines of a curve then run beyond the spine, where the angle between them can be seen.
ENDPLATE_LINE_EXTENSION = 1.0


def extended_endplate(endplate, extension: float = ENDPLATE_LINE_EXTENSION) -> np.ndarray:
    """The endplate segment ((x0, y0), (x1, y1)) lengthened by ``extension`` times its width at each end,
    as drawn to show a Cobb angle; (2, 2) pixels, left end first."""
    start, end = np.asarray(endplate, dtype=float).reshape(2, 2)
    reach = extension * (end - start)
    ends = np.array([start - reach, end + reach])
    return ends[np.argsort(ends[:, 0], kind="stable")]


def _line_angle(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Direction of the line start->end in degrees, folded into (-90, 90] (lines, not rays).

    Positive means the right end is lower in the image (clockwise as displayed)."""
    d = end - start
    angle = np.degrees(np.arctan2(d[..., 1], d[..., 0]))
    return (angle + 90.0) % 180.0 - 90.0


def _between_lines(a_deg: float, b_deg: float) -> float:
    diff = abs(a_deg - b_deg) % 180.0
    return min(diff, 180.0 - diff)


def _turning_points(tilt: np.ndarray, threshold: float) -> list[int]:
    """Indices where the tilt profile turns, each swing at least ``threshold`` (a zigzag).

    The ends of a curve are the most tilted vertebrae, i.e. the extrema of the tilt profile;
    the hysteresis keeps landmark noise from splitting a curve in two.
    """
    lo = hi = 0
    direction, pivots, ext = 0, [], 0
    for i in range(1, len(tilt)):
        if direction == 0:
            # Non-strict: of equally tilted vertebrae above a curve, the one nearest it ends it.
            lo = i if tilt[i] <= tilt[lo] + 1e-6 else lo
            hi = i if tilt[i] >= tilt[hi] - 1e-6 else hi
            if tilt[i] - tilt[lo] >= threshold and lo < i:
                direction, pivots, ext = 1, [lo], i
            elif tilt[hi] - tilt[i] >= threshold and hi < i:
                direction, pivots, ext = -1, [hi], i
        elif (tilt[i] - tilt[ext]) * direction > 0:
            ext = i
        elif (tilt[ext] - tilt[i]) * direction >= threshold:
            pivots.append(ext)
            direction, ext = -direction, i
    if direction:
        pivots.append(ext)
    return pivots


@dataclass(frozen=True)
class CobbCurve:
    """One curve as a clinician reports it; endplates are (2, 2) pixel segments to draw."""

    name: str
    region: str
    angle_deg: float
    upper_end: str
    lower_end: str
    apex: str
    convexity: str
    severity: str
    upper_endplate: np.ndarray = field(repr=False)
    lower_endplate: np.ndarray = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.name} {self.angle_deg:.1f}°"

    def to_dict(self) -> dict:
        return {"name": self.name, "region": self.region, "angle_deg": round(self.angle_deg, 2),
                "upper_end_vertebra": self.upper_end, "lower_end_vertebra": self.lower_end,
                "apex": self.apex, "convexity": self.convexity, "severity": self.severity,
                "upper_endplate_px": np.round(self.upper_endplate, 2).tolist(),
                "lower_endplate_px": np.round(self.lower_endplate, 2).tolist()}


@dataclass(frozen=True)
class CobbResult:
    """Clinical curves (largest first) and, when the image height is known, AASCE angles."""

    landmarks: SpineLandmarks = field(repr=False)
    curves: tuple[CobbCurve, ...]
    aasce_angles: tuple[float, float, float] | None
    patient_right_on_image_left: bool = True

    @property
    def largest(self) -> CobbCurve | None:
        return self.curves[0] if self.curves else None

    @property
    def overall_severity(self) -> str:
        return self.largest.severity if self.curves else "none"

    def to_dict(self) -> dict:
        return {
            "levels": f"{self.landmarks.levels[0]}–{self.landmarks.levels[-1]}",
            "curves": [c.to_dict() for c in self.curves],
            "largest_cobb_deg": round(self.largest.angle_deg, 2) if self.curves else 0.0,
            "overall_severity": self.overall_severity,
            "aasce_angles_deg": (dict(zip(AASCE_NAMES, np.round(self.aasce_angles, 3).tolist()))
                                 if self.aasce_angles is not None else None),
            "aasce_angles_note": ("the AASCE organisers' rule, in their angles.csv column order (their tool "
                                  "writes the largest angle first); the columns are not the clinical "
                                  "PT/MT/TL-L curves"),
            "convexity_convention": CONVENTION,
            "patient_right_on_image_left": self.patient_right_on_image_left,
            "end_vertebra_rule": END_VERTEBRA_RULE,
        }


END_VERTEBRA_RULE = (
    "Each vertebra's tilt is the mean direction of its two endplates. Curves run between the "
    f"turning points of that tilt profile (swings under {MIN_CURVE_DEG:g} degrees are noise); "
    "at each turning point the end vertebra is chosen, within one level, to maximise the angle "
    "between the superior endplate of the upper end vertebra and the inferior endplate of the "
    "lower one. The apex is the vertebra between them farthest from the line joining the end "
    "vertebrae's centres; the curve is convex towards the apex's side of that line.")


def _region(apex: str) -> tuple[str, str]:
    for name, region, levels in REGIONS:
        if apex in levels:
            return name, region
    raise AssertionError(f"level {apex} is in no region")


def clinical_curves(landmarks: SpineLandmarks, patient_right_on_image_left: bool = True,
                    min_curve_deg: float = MIN_CURVE_DEG) -> tuple[CobbCurve, ...]:
    """The curves a clinician reports, largest first (see ``END_VERTEBRA_RULE``)."""
    pts = landmarks.points
    levels = landmarks.levels
    superior = _line_angle(pts[:, 0], pts[:, 1])
    inferior = _line_angle(pts[:, 2], pts[:, 3])
    tilt = (superior + inferior) / 2
    pivots = _turning_points(tilt, min_curve_deg)
    centres = landmarks.centres
    curves = []
    n = len(pts)
    for a, b in zip(pivots[:-1], pivots[1:]):
        sign = np.sign(tilt[a] - tilt[b])
        candidates = [(upper, lower) for upper in range(max(0, a - 1), min(n, a + 2))
                      for lower in range(max(0, b - 1), min(n, b + 2)) if upper < lower]
        # Largest angle; among equal angles the shortest curve (end vertebrae nearest the apex).
        upper, lower = max(candidates, key=lambda ul: (round(sign * (superior[ul[0]] - inferior[ul[1]]), 6),
                                                       ul[0] - ul[1]))
        angle = _between_lines(superior[upper], inferior[lower])
        if angle < min_curve_deg:
            continue
        axis = centres[lower] - centres[upper]
        rel = centres[upper:lower + 1] - centres[upper]
        side = (axis[0] * rel[:, 1] - axis[1] * rel[:, 0]) / np.linalg.norm(axis)
        k = int(np.argmax(np.abs(side)))
        apex_index = upper + k
        # side > 0: the apex lies to the image's left of the downward end-to-end line.
        image_side = "left" if side[k] > 0 else "right"
        patient_side = image_side if not patient_right_on_image_left else \
            {"left": "right", "right": "left"}[image_side]
        name, region = _region(levels[apex_index])
        curves.append(CobbCurve(name, region, float(angle), levels[upper], levels[lower],
                                levels[apex_index], patient_side, severity(angle),
                                pts[upper, [0, 1]].copy(), pts[lower, [2, 3]].copy()))
    curves.sort(key=lambda c: -c.angle_deg)
    seen: dict[str, int] = {}
    named = []
    for c in curves:
        seen[c.name] = seen.get(c.name, 0) + 1
        if seen[c.name] > 1:
            c = CobbCurve(**{**c.__dict__, "name": f"{c.name} ({seen[c.name]})"})
        named.append(c)
    return tuple(named)


def analyse(landmarks: SpineLandmarks, image_height: float | None = None,
            patient_right_on_image_left: bool = True) -> CobbResult:
    """Clinical curves plus, when ``image_height`` (pixels) is given, the AASCE angles."""
    aasce = None
    if image_height is not None:
        aasce = tuple(float(a) for a in aasce_angles(landmarks, image_height))
    return CobbResult(landmarks, clinical_curves(landmarks, patient_right_on_image_left),
                      aasce, patient_right_on_image_left)
