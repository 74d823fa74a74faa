"""Vertebrae found without centroids: the classifier's body voxels, kept only where they form a spine.

A vertebra is looked for where no one said where it is (no centroids, no label map):

1. **candidates**: connected parts of vertebral-body voxels (``FractureConfig.body_probability``) of
   ``min_body_ml`` to ``max_body_ml``, a part taller than ``max_body_height_mm`` cut at its narrowest
   slice (bodies joined across a thin disc), holding bone (a quarter of ``min_body_ml`` above
   ``min_bone_hu``, cortex included) -- body-sized bone;
2. **the spine**: the longest chain of candidates from the top down in which each step to the next is
   ``chain_step_mm`` long (one vertebra to the next), at most ``chain_max_tilt_deg`` off the patient's
   long axis, and each candidate lies within ``chain_max_offset_mm`` (left-right and front-back) of the
   straight line through its two neighbours, so the chain follows one smooth curve. Of equally long
   chains the one holding the most bone wins (a sternum or a row of ribs is a shorter or lighter chain).

Everything off the chain is not a vertebra: it is counted (``FoundVertebrae.off_spine``) for the
patient's note, never assessed. The chain is numbered "vertebra 1", "vertebra 2"... from the top:
levels are never guessed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ..errors import SpineAnalysisError
from .fracture_model.config import FractureConfig
from .fracture_model.inference import ProbabilityMaps
from .levels import Centroid


@dataclass
class FoundVertebrae:
    """The vertebrae found along the spine (top to bottom) and the body-like parts left off it (LPS)."""

    centroids: list[Centroid]
    off_spine: list[np.ndarray] = field(default_factory=list)


@dataclass
class _Candidate:
    centre: np.ndarray   # LPS mm
    bone_ml: float


def _split_tall(body: np.ndarray, max_height: int, min_voxels: int) -> list[np.ndarray]:
    """``body`` cut at its narrowest slice (a thin disc), again and again, until no part is taller
    than ``max_height`` slices; parts smaller than ``min_voxels`` are dropped."""
    rows = np.flatnonzero(body.any(axis=(1, 2)))
    if body.sum() < min_voxels:
        return []
    if rows[-1] - rows[0] + 1 <= max_height:
        return [body]
    area = body.sum(axis=(1, 2)).astype(float)
    middle = rows[len(rows) // 5: len(rows) - len(rows) // 5]
    cut = middle[np.argmin(area[middle])]
    lower, upper = body.copy(), body.copy()
    lower[cut:] = False
    upper[:cut + 1] = False
    return _split_tall(lower, max_height, min_voxels) + _split_tall(upper, max_height, min_voxels)


def spine_candidates(maps: ProbabilityMaps, config: FractureConfig) -> list[_Candidate]:
    """Body-sized bone among the classifier's body voxels (step 1 of the module's docstring)."""
    voxel_ml = config.spacing_mm ** 3 / 1000
    min_voxels = int(np.ceil(config.min_body_ml / voxel_ml))
    max_height = int(config.max_body_height_mm / config.spacing_mm)
    parts, count = ndi.label(ndi.binary_opening(maps.body > config.body_probability))
    found = []
    for k, box in enumerate(ndi.find_objects(parts), start=1):
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)   # room for the cortex around it
        corner = np.array([s.start for s in box])
        for body in _split_tall(parts[box] == k, max_height, min_voxels):
            if body.sum() * voxel_ml > config.max_body_ml:
                continue
            bone = maps.bone[box] & ndi.binary_dilation(body) if maps.bone is not None else body
            bone_ml = np.count_nonzero(bone) * voxel_ml   # bone not known (no CT values): every part holds some
            if bone_ml < config.min_body_ml / 4:   # a body has a cortex: a part with no bone is not one
                continue
            centre = np.argwhere(body & ndi.binary_dilation(bone, iterations=2)).mean(axis=0) + corner
            found.append(_Candidate(np.array(maps.grid.TransformContinuousIndexToPhysicalPoint(
                [float(v) for v in centre[::-1]])), bone_ml))
    return sorted(found, key=lambda c: -c.centre[2])   # LPS z is superior: the top first


def _steps(points: np.ndarray, config: FractureConfig) -> np.ndarray:
    """``steps[i, j]``: whether j (below i) can follow i along the spine: ``chain_step_mm`` apart and at
    most ``chain_max_tilt_deg`` off the long axis."""
    delta = points[None, :, :] - points[:, None, :]
    length = np.linalg.norm(delta, axis=2)
    down = -delta[:, :, 2]
    low, high = config.chain_step_mm
    with np.errstate(invalid="ignore", divide="ignore"):
        along = down / length
    return (down > 0) & (length >= low) & (length <= high) & (along >= np.cos(np.radians(config.chain_max_tilt_deg)))


def _smooth(above: np.ndarray, middle: np.ndarray, below: np.ndarray, limit_mm: float) -> bool:
    """Whether ``middle`` lies within ``limit_mm`` (left-right and front-back) of the line from ``above``
    to ``below``, taken at its height."""
    t = (above[2] - middle[2]) / (above[2] - below[2])
    return bool(np.linalg.norm(middle[:2] - (above[:2] + t * (below[:2] - above[:2]))) <= limit_mm)


def longest_chain(points: np.ndarray, weights: np.ndarray, config: FractureConfig) -> list[int]:
    """Indices (top to bottom; ``points`` LPS, sorted top first) of the longest smooth chain of steps
    (module docstring, step 2); ties go to the heavier chain by ``weights``."""
    n = len(points)
    if n == 0:
        return []
    steps = _steps(points, config)
    # best[(i, j)]: (length, weight, previous) of the best chain ending with the step i -> j
    best: dict[tuple[int, int], tuple[int, float, int | None]] = {}
    for j in range(n):
        for i in np.flatnonzero(steps[:, j]):
            entry = (2, float(weights[i] + weights[j]), None)
            for h in np.flatnonzero(steps[:, i]):
                previous = best.get((int(h), int(i)))
                if previous and _smooth(points[h], points[i], points[j], config.chain_max_offset_mm):
                    entry = max(entry, (previous[0] + 1, previous[1] + float(weights[j]), int(h)),
                                key=lambda e: e[:2])
            best[(int(i), j)] = entry
    if not best:
        return [int(np.argmax(weights))]
    (i, j), (_length, _weight, h) = max(best.items(), key=lambda item: item[1][:2])
    chain = [j, i]
    while h is not None:   # back up the chain: the step h -> chain[-1] knows what came before h
        chain.append(h)
        h = best[(h, chain[-2])][2]
    return chain[::-1]


def find_vertebrae(maps: ProbabilityMaps, config: FractureConfig) -> FoundVertebrae:
    """The vertebrae along the spine in the classifier's body voxels, numbered from the top, and the
    body-like parts left off it (module docstring)."""
    candidates = spine_candidates(maps, config)
    points = np.array([c.centre for c in candidates]).reshape(-1, 3)
    chain = longest_chain(points, np.array([c.bone_ml for c in candidates]), config)
    return FoundVertebrae([Centroid(f"vertebra {k + 1}", points[i]) for k, i in enumerate(chain)],
                          [points[i] for i in range(len(candidates)) if i not in chain])


def vertebrae_in_view(maps: ProbabilityMaps, config: FractureConfig) -> FoundVertebrae:
    """``find_vertebrae``, refusing a CT in which there is none: there is nothing to assess."""
    found = find_vertebrae(maps, config)
    if not found.centroids:
        raise SpineAnalysisError("no vertebral bodies found in this CT: is the spine in view, and is the "
                                 "volume in Hounsfield units?")
    return found
