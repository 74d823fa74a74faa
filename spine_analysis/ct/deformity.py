"""Simulated compression deformities of a real vertebral body, in the image and its masks together.

Real fractured CTs are scarce here; the fracture network learns from real normal vertebrae made
to look fractured. On a 1 mm grid aligned with the patient's axes (``patches``; array axes z
superior, y posterior, x left), every (y, x) column through the body is squeezed along z towards
the body's mid-height by a factor ``1 - loss * weight(y, x)``, and the discs above and below
stretch to fill the gap, so the neighbours stay where they are. The weight sets Genant's shape:

- ``wedge``: 1 in front (up to 15 % of the depth), falling to 0 at 85 %: anterior height lost;
- ``biconcave``: 1 in the middle third of depth and width, 0 at the margins: endplates cave in;
- ``crush``: 1 everywhere: the whole body loses height.

The weights are laid out so that ``genant.vertebral_heights`` (heights at 15, 50 and 85 % of the
depth) measures the loss that was asked for: a 30 % wedge grades as a 30 % anterior loss.
Limits: the squeeze is along the patient's z axis, not the body's own axis (tilted bodies are
squeezed slightly obliquely); bone is not compacted (no denser band), the cortex is not broken
and the posterior wall never bulges into the canal.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..errors import SpineAnalysisError

SHAPES = ("wedge", "biconcave", "crush")
#: Height of the disc space above and below the body that stretches to fill the lost height (mm).
DISC_MM = 8.0
#: Smoothing of the weight across columns (mm), so neighbouring columns never tear apart.
WEIGHT_SMOOTHING_MM = 1.5


@dataclass(frozen=True)
class Deformity:
    """A compression of ``loss`` (0-1, the height lost where it is greatest) of a given shape."""

    shape: str
    loss: float

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise SpineAnalysisError(f"unknown deformity shape {self.shape!r}: use one of {', '.join(SHAPES)}")
        if not 0.0 <= self.loss < 0.9:
            raise SpineAnalysisError(f"a height loss must lie in [0, 0.9), got {self.loss}")


def _ramp(fraction: np.ndarray, full: float, none: float) -> np.ndarray:
    """1 where ``fraction`` is at or beyond ``full``, 0 from ``none`` on, linear in between."""
    return np.clip((fraction - none) / (full - none), 0.0, 1.0)


def _column_weight(body: np.ndarray, shape: str) -> np.ndarray:
    """The (y, x) weight of each column, 0 outside the body's footprint."""
    footprint = body.any(axis=0)
    ys, xs = np.nonzero(footprint)
    depth = (np.arange(body.shape[1]) + 0.5 - ys.min()) / (ys.max() + 1 - ys.min())   # 0 anterior, 1 posterior
    width = (np.arange(body.shape[2]) + 0.5 - xs.min()) / (xs.max() + 1 - xs.min())
    if shape == "crush":
        weight = np.ones(footprint.shape)
    elif shape == "wedge":
        weight = np.repeat(_ramp(-depth, -0.15, -0.85)[:, None], body.shape[2], axis=1)
    else:
        middle = _ramp(-np.abs(depth - 0.5), -0.15, -0.35)[:, None] * _ramp(-np.abs(width - 0.5), -0.15, -0.35)[None]
        weight = middle
    weight = np.where(footprint, weight, 0.0)
    return np.where(footprint, ndi.gaussian_filter(weight, WEIGHT_SMOOTHING_MM), 0.0)


def source_z(body: np.ndarray, deformity: Deformity) -> np.ndarray:
    """For every output voxel (z, y, x), the z it is taken from: the backward map of the squeeze."""
    depth, rows, cols = body.shape
    z_out = np.arange(depth, dtype=float)[:, None, None] * np.ones((1, rows, cols))
    inside = body.any(axis=0)
    if not inside.any():
        return z_out
    top = np.where(inside, depth - 1 - np.argmax(body[::-1], axis=0), 0).astype(float) + 0.5
    bottom = np.where(inside, np.argmax(body, axis=0), 0).astype(float) - 0.5
    middle = (top + bottom) / 2
    scale = 1.0 - deformity.loss * _column_weight(body, deformity.shape)
    new_top = middle + scale * (top - middle)
    new_bottom = middle - scale * (middle - bottom)
    upper, lower = top + DISC_MM, bottom - DISC_MM
    z = z_out
    source = z.copy()
    # inside the squeezed body: stretch back out by 1 / scale about the middle
    in_body = (z >= new_bottom) & (z <= new_top)
    source = np.where(in_body, middle + (z - middle) / scale, source)
    # the disc above: [new_top, upper] comes from [top, upper]
    above = (z > new_top) & (z < upper)
    source = np.where(above, top + (z - new_top) * (upper - top) / np.maximum(upper - new_top, 1e-6), source)
    below = (z < new_bottom) & (z > lower)
    source = np.where(below, bottom - (new_bottom - z) * (bottom - lower) / np.maximum(new_bottom - lower, 1e-6),
                      source)
    return np.where(inside[None], source, z)


def compress(hu: np.ndarray, body: np.ndarray, deformity: Deformity,
             labels: tuple[np.ndarray, ...] = ()) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """``hu`` (float, linear) and each of ``labels`` (integer or boolean, nearest) with ``body`` compressed.

    ``body`` is the vertebral body to deform (boolean, same shape); return it among ``labels`` to
    get its deformed mask. Arrays are (z, y, x) on a 1 mm LPS-aligned grid."""
    if hu.shape != body.shape or any(label.shape != body.shape for label in labels):
        raise SpineAnalysisError("the image and its masks must have the same shape to be deformed together")
    if not body.any():
        raise SpineAnalysisError("there is no vertebral body to deform")
    z = source_z(body, deformity)
    y, x = np.meshgrid(np.arange(body.shape[1]), np.arange(body.shape[2]), indexing="ij")
    coordinates = np.stack([z, np.broadcast_to(y, z.shape), np.broadcast_to(x, z.shape)])
    image = ndi.map_coordinates(hu, coordinates, order=1, mode="nearest").astype(hu.dtype, copy=False)
    warped = tuple(ndi.map_coordinates(label.astype(np.int32), coordinates, order=0, mode="nearest")
                   .astype(label.dtype) for label in labels)
    return image, warped
