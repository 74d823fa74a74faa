"""Vertebral corner landmarks of an AP spine radiograph, with their level names.

Points are image pixels as (x, y) = (column, row), origin at the top-left pixel centre,
y growing downwards. Per vertebra the corners are ordered as in the AASCE data:
top-left, top-right, bottom-left, bottom-right ("left" as seen in the image).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LandmarkError

#: The 17 levels the AASCE data and the landmark model cover, top to bottom.
LEVELS = tuple([f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)])
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
#: Anatomical corner names on a standard AP view (the image's top is superior).
CORNER_LABELS = ("superior-left", "superior-right", "inferior-left", "inferior-right")


def point_labels(levels) -> list[str]:
    """Labels such as ``"T7 superior-left"``, one per corner, in landmark order."""
    return [f"{level} {corner}" for level in levels for corner in CORNER_LABELS]


def quad_area(quad: np.ndarray) -> float:
    """Signed area of the outline TL, TR, BR, BL (shoelace formula), in pixels².

    Positive for a well-ordered vertebra in image coordinates (y down); zero or negative
    when corners coincide or cross."""
    ring = quad[[0, 1, 3, 2]]
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def vertebra_midlines(points: np.ndarray) -> np.ndarray:
    """Per vertebra (n, 4, 2) the vector from its left-edge mid-point to its right-edge mid-point."""
    points = np.asarray(points, dtype=float)
    return (points[:, 1] + points[:, 3]) / 2 - (points[:, 0] + points[:, 2]) / 2


def midline_tilt_deg(points: np.ndarray) -> np.ndarray:
    """Each vertebra's tilt in degrees: the direction of its mid-line (positive: right end lower)."""
    mid = vertebra_midlines(points)
    return np.degrees(np.arctan2(mid[:, 1], mid[:, 0]))


def smooth_tilts(points: np.ndarray, strength: float) -> np.ndarray:
    """Corners (n, 4, 2) with each vertebra turned about its centre so that the tilts follow a
    Whittaker smoother (penalty ``strength`` on their second differences) of the found tilts.

    A Cobb angle is a maximum over pairs of tilts, so independent errors of a degree or two
    per vertebra inflate small curves most; the spine bends smoothly, so damping the tilt's
    jitter between neighbours (not its trend) takes most of that error out. ``strength`` 0
    returns the corners unchanged."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    if strength <= 0 or n < 3:
        return points
    tilt = np.degrees(np.unwrap(np.radians(midline_tilt_deg(points))))   # no jump at ±180° (corners mirrored)
    second = np.diff(np.eye(n), 2, axis=0)
    smooth = np.linalg.solve(np.eye(n) + strength * second.T @ second, tilt)
    turn = np.radians(smooth - tilt)[:, None]
    centre = points.mean(axis=1, keepdims=True)
    dx, dy = (points - centre)[..., 0], (points - centre)[..., 1]
    return centre + np.stack([dx * np.cos(turn) - dy * np.sin(turn),
                              dx * np.sin(turn) + dy * np.cos(turn)], axis=-1)


def neighbour_turns_deg(points: np.ndarray) -> np.ndarray:
    """How far each vertebra's tilt differs from the next one's, (n - 1,) degrees in [0, 180]."""
    tilt = midline_tilt_deg(points)
    return np.abs((np.diff(tilt) + 180) % 360 - 180)


@dataclass(frozen=True)
class SpineLandmarks:
    """Corners of consecutive vertebrae, ``points`` shaped (n_vertebrae, 4, 2) in pixels.

    ``first_level`` names the top vertebra, so a radiograph cropped at either end
    (say T3 to L2) keeps the right names.
    """

    points: np.ndarray
    first_level: str = "T1"

    def __post_init__(self):
        pts = np.asarray(self.points, dtype=float)
        if pts.ndim == 2 and pts.shape[1] == 2:
            if pts.shape[0] % 4:
                raise LandmarkError(
                    f"expected 4 corners per vertebra, got {pts.shape[0]} points "
                    "(not a multiple of 4)")
            pts = pts.reshape(-1, 4, 2)
        if pts.ndim != 3 or pts.shape[1:] != (4, 2):
            raise LandmarkError(f"landmarks must be (n, 4, 2) or (4n, 2) points, got shape {pts.shape}")
        if self.first_level not in LEVELS:
            raise LandmarkError(f"unknown first level {self.first_level!r}; expected one of T1..L5")
        n = pts.shape[0]
        start = LEVELS.index(self.first_level)
        if n < 2:
            raise LandmarkError(f"at least 2 vertebrae are needed for an angle, got {n}")
        if start + n > len(LEVELS):
            raise LandmarkError(
                f"{n} vertebrae starting at {self.first_level} run past L5 "
                f"(at most {len(LEVELS) - start} fit)")
        if not np.all(np.isfinite(pts)):
            bad = sorted({LEVELS[start + i] for i in np.argwhere(~np.isfinite(pts))[:, 0]})
            raise LandmarkError(f"landmarks contain NaN or infinite values at {', '.join(bad)}")
        for i, quad in enumerate(pts):
            widths = (np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[3] - quad[2]))
            if min(widths) <= 1e-6 or abs(quad_area(quad)) <= 1e-6:
                raise LandmarkError(
                    f"vertebra {LEVELS[start + i]} is degenerate (corners coincide or are collinear)")
        object.__setattr__(self, "points", pts)

    @property
    def levels(self) -> tuple[str, ...]:
        """The level name of each vertebra, top to bottom."""
        start = LEVELS.index(self.first_level)
        return LEVELS[start:start + len(self.points)]

    @property
    def flat(self) -> np.ndarray:
        """The corners as a (4n, 2) array in AASCE order."""
        return self.points.reshape(-1, 2)

    @property
    def centres(self) -> np.ndarray:
        """Vertebra centres (mean of the 4 corners), (n, 2) pixels."""
        return self.points.mean(axis=1)

    def labels(self) -> list[str]:
        return point_labels(self.levels)

    def to_dict(self) -> dict:
        return {
            "coordinates": "image pixels (x = column, y = row, origin top-left)",
            "first_level": self.first_level,
            "levels": list(self.levels),
            "corners": list(CORNER_LABELS),
            "points": self.points.round(3).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SpineLandmarks":
        """Inverse of ``to_dict``; a malformed dict raises ``LandmarkError``."""
        try:
            return cls(np.asarray(data["points"], dtype=float), data.get("first_level", "T1"))
        except (KeyError, TypeError) as exc:
            raise LandmarkError(f"landmark JSON lacks a valid 'points' entry ({exc})") from None

    @classmethod
    def from_aasce_row(cls, row, width: float, height: float) -> "SpineLandmarks":
        """From one AASCE ``landmarks.csv`` row: 68 normalised x, then 68 normalised y."""
        row = np.asarray(row, dtype=float)
        if row.size % 2:
            raise LandmarkError(f"an AASCE landmark row needs x then y values, got {row.size} numbers")
        n = row.size // 2
        pts = np.stack([row[:n] * width, row[n:] * height], axis=1)
        return cls(pts)

    def to_aasce_row(self, width: float, height: float) -> np.ndarray:
        """One AASCE ``landmarks.csv`` row (all x then all y, as fractions of the image size)."""
        flat = self.flat
        return np.concatenate([flat[:, 0] / width, flat[:, 1] / height])
