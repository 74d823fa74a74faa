"""Cobb angles from vertebral corner landmarks: the AASCE challenge rule and the clinical curves.

All geometry is in image pixels (x right, y down). Angles are in degrees.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .landmarks import SpineLandmarks

#: Column names of AASCE ``angles.csv``. The organisers' tool writes the largest (main) angle
#: first, then the one above it, then the one below or beside it; the challenge calls the three
#: columns PT, MT and TL/L, and we keep its order and names so files compare one-to-one.
AASCE_NAMES = ("PT", "MT", "TL/L")


def _midlines(points: np.ndarray) -> np.ndarray:
    """Per vertebra the vector from its left-edge mid-point to its right-edge mid-point."""
    left = (points[:, 0] + points[:, 2]) / 2
    right = (points[:, 1] + points[:, 3]) / 2
    return right - left


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
    angles = _pairwise_angles(_midlines(pts))
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
