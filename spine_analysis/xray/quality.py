"""Anatomical plausibility checks on detected landmarks (priors after Yang's anatomy-aware
HRNet notes): top-to-bottom order, spacing and alignment of neighbours, how much neighbours'
tilts differ, and corner geometry.

A flag does not change the measurement; it tells the reader where to look before trusting it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .landmarks import SpineLandmarks, neighbour_turns_deg, quad_area

#: Neighbour spacing outside [low, high] x the median spacing is implausible.
SPACING_RANGE = (0.4, 2.0)
#: A centre farther than this share of the spacing from its neighbours' mid-point breaks alignment.
ALIGNMENT_LIMIT = 0.5
#: A vertebra smaller than this share of the median vertebra area is degenerate.
MIN_AREA_SHARE = 0.25
#: Neighbouring vertebrae whose tilts differ by more than this (degrees) are implausible:
#: even severe curves turn a few degrees per level.
MAX_NEIGHBOUR_TILT_DEG = 25.0


@dataclass(frozen=True)
class QualityFlag:
    code: str          # outside | order | spacing | alignment | tilt | crossed | degenerate | framing (detector)
    levels: tuple[str, ...]
    message: str

    def to_dict(self) -> dict:
        return {"code": self.code, "levels": list(self.levels), "message": self.message}


def quality_flags(landmarks: SpineLandmarks, image_size: tuple[int, int] | None = None) -> list[QualityFlag]:
    """Every implausibility found, in top-to-bottom order of the levels involved.

    With ``image_size`` (width, height) vertebrae with a corner outside the image are flagged
    too: the model (or a hand edit) put them where nothing can be seen, as the shape model
    does for a vertebra it did not find."""
    pts, levels = landmarks.points, landmarks.levels
    centres = landmarks.centres
    flags: list[QualityFlag] = []
    if image_size is not None:
        width, height = image_size
        outside = ((pts[..., 0] < 0) | (pts[..., 0] > width - 1)
                   | (pts[..., 1] < 0) | (pts[..., 1] > height - 1)).any(axis=1)
        if outside.any():
            names = tuple(level for level, out in zip(levels, outside) if out)
            one = len(names) == 1
            flags.append(QualityFlag("outside", names, f"{', '.join(names)} {'reaches' if one else 'reach'} outside "
                                     f"the image: placed where nothing can be seen, check {'it' if one else 'them'}"))
    for i in range(len(pts) - 1):
        if centres[i + 1, 1] <= centres[i, 1]:
            flags.append(QualityFlag("order", (levels[i], levels[i + 1]),
                                     f"{levels[i + 1]} is not below {levels[i]}"))
    gaps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    median_gap = float(np.median(gaps)) if len(gaps) else 0.0
    for i, gap in enumerate(gaps):
        ratio = gap / median_gap if median_gap else 1.0
        if not SPACING_RANGE[0] <= ratio <= SPACING_RANGE[1]:
            flags.append(QualityFlag("spacing", (levels[i], levels[i + 1]),
                                     f"spacing {levels[i]}–{levels[i + 1]} is {ratio:.2f} x the median"))
    for i in range(1, len(pts) - 1):
        local = (gaps[i - 1] + gaps[i]) / 2
        off = np.linalg.norm(centres[i] - (centres[i - 1] + centres[i + 1]) / 2)
        if local and off / local > ALIGNMENT_LIMIT:
            flags.append(QualityFlag("alignment", (levels[i],),
                                     f"{levels[i]} lies {off / local:.2f} spacings off its neighbours' line"))
    for i, turn in enumerate(neighbour_turns_deg(pts)):
        if turn > MAX_NEIGHBOUR_TILT_DEG:
            flags.append(QualityFlag("tilt", (levels[i], levels[i + 1]),
                                     f"{levels[i]} and {levels[i + 1]} differ in tilt by {turn:.0f}°"))
    areas = np.array([quad_area(q) for q in pts])
    median_area = float(np.median(np.abs(areas)))
    for i, quad in enumerate(pts):
        crossed = (quad[1, 0] <= quad[0, 0] or quad[3, 0] <= quad[2, 0]
                   or quad[2, 1] <= quad[0, 1] or quad[3, 1] <= quad[1, 1] or areas[i] <= 0)
        if crossed:
            flags.append(QualityFlag("crossed", (levels[i],), f"{levels[i]} has crossed corners"))
        elif median_area and abs(areas[i]) < MIN_AREA_SHARE * median_area:
            flags.append(QualityFlag("degenerate", (levels[i],),
                                     f"{levels[i]} is {abs(areas[i]) / median_area:.2f} x the median vertebra area"))
    return flags
