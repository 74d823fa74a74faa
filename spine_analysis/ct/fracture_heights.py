"""Genant's side of fracture detection: each vertebral body's heights at its centroid and its grade.

The body is a given label map's (the label's body, ``body_labels.body_from_vertebra``) or the body
network's at the centroid, cleaned of thin tails (``FractureConfig.tail_fraction``,
``tail_radius_mm``), on a 1 mm grid of ``label_patch_xyz``. It is measured with
``genant.vertebral_heights`` and graded against the larger of its own posterior height and its
neighbours' (within ``neighbour_mm``) mean posterior height, so a crushed body is seen too.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from ..errors import SpineAnalysisError
from .body_labels import body_from_vertebra, without_tails
from .fracture_model.config import FractureConfig
from .fracture_model.inference import Progress
from .genant import GenantResult, VertebralHeights, genant_grade, vertebral_heights
from .levels import Centroid
from .patches import patch_grid, reaches_edge, sample_patch
from .vertebral_body import segment_vertebral_body


def _body_mask_from_labels(ct: sitk.Image, label_map: sitk.Image, value: int, centroid: np.ndarray,
                           config: FractureConfig) -> sitk.Image | None:
    """The body of label ``value`` (a whole vertebra, or a body alone) on a 1 mm grid at the centroid."""
    grid = patch_grid(centroid, config.label_patch_xyz, 1.0)
    vertebra = sample_patch(label_map, grid, labels=True) == value
    body = body_from_vertebra(vertebra)
    if body is None:
        return None
    if reaches_edge(body, grid, ct) or reaches_edge(body, grid, label_map):
        raise SpineAnalysisError("the body is cut by the edge of the scan")
    image = sitk.GetImageFromArray(body.astype(np.uint8))
    image.CopyInformation(grid)
    return image


def _body_mask_from_network(ct: sitk.Image, centroid: np.ndarray, body_model, config: FractureConfig) -> sitk.Image:
    """The body network's body at the centroid, on a 1 mm grid, without thin tails."""
    body = segment_vertebral_body(ct, centroid, "lps", "unet", body_model).body
    image = sitk.GetImageFromArray(body.astype(np.float32))
    image.CopyInformation(ct)
    grid = patch_grid(centroid, config.label_patch_xyz, 1.0)
    raw = sample_patch(image, grid, outside=0.0) > 0.5
    height = np.count_nonzero(raw.any(axis=(1, 2)))
    cleaned = without_tails(raw, int(np.clip(round(height * config.tail_fraction), *config.tail_radius_mm)))
    if not cleaned.any():
        raise SpineAnalysisError("the vertebral body found is too thin to measure")
    if reaches_edge(cleaned, grid, ct):
        raise SpineAnalysisError("the body is cut by the edge of the scan")
    mask = sitk.GetImageFromArray(cleaned.astype(np.uint8))
    mask.CopyInformation(grid)
    return mask


def measure_heights(ct: sitk.Image, centroids: Sequence[Centroid], label_map: sitk.Image | None,
                    label_values: Sequence[int], body_model, config: FractureConfig,
                    progress: Progress) -> list[tuple[VertebralHeights | None, str]]:
    """(heights or None, note) per centroid, from the label map's bodies (where ``label_values`` names
    a label) or the body network's."""
    measured = []
    for k, centroid in enumerate(centroids):
        progress(0.75 + 0.2 * k / max(1, len(centroids)), f"measuring {centroid.level}")
        try:
            if label_map is not None and label_values[k]:
                mask = _body_mask_from_labels(ct, label_map, label_values[k], centroid.lps, config)
                if mask is None:
                    raise SpineAnalysisError("its label holds no clear vertebral body")
            else:
                mask = _body_mask_from_network(ct, centroid.lps, body_model, config)
            measured.append((vertebral_heights(mask), ""))
        except SpineAnalysisError as error:
            measured.append((None, f"heights not measured: {error}"))
    return measured


def grade_heights(centroids: Sequence[Centroid], measured: list,
                  config: FractureConfig) -> list[GenantResult | None]:
    """Genant grade of each measured vertebra against max(own posterior, neighbours' mean posterior)."""
    grades = []
    for k, (heights, _note) in enumerate(measured):
        if heights is None:
            grades.append(None)
            continue
        neighbours = [measured[j][0].posterior_mm for j in (k - 1, k + 1)
                      if 0 <= j < len(measured) and measured[j][0] is not None
                      and np.linalg.norm(centroids[j].lps - centroids[k].lps) <= config.neighbour_mm]
        reference = max([heights.posterior_mm] + ([float(np.mean(neighbours))] if neighbours else []))
        grades.append(genant_grade(*heights, reference_mm=reference))
    return grades
