"""Genant's side of fracture detection: each vertebral body's heights at its centroid and its grade.

One measurement whichever input named the vertebra: the body is a given label map's (the label's
body, ``body_labels.body_from_vertebra``, its label sampled linearly onto the grid) or the body
network's at the centroid, on a 1 mm grid of ``label_patch_xyz``, and either is reduced the same way
(``body_for_heights``: thin tails and corner spurs cut off, ``FractureConfig.tail_fraction``,
``tail_radius_mm``) before ``genant.vertebral_heights`` measures it. A body is graded against the
larger of its own posterior height and its neighbours' (within ``neighbour_mm``) mean posterior
height, so a crushed body is seen too. Heights are measured only where the CT's slices allow
(spacing along the patient's long axis at most ``max_slice_mm``); otherwise none is, and the
classifier alone decides.
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
from .patches import patch_grid, patch_on_scan_region, reaches_edge, sample_patch
from .vertebral_body import body_on_patch


def slice_spacing_mm(ct: sitk.Image) -> float:
    """The CT's largest step between neighbouring voxels along the patient's long (S-I) axis, in mm: the
    slice spacing of an axial scan, whatever the voxels' order and tilt."""
    direction = np.array(ct.GetDirection()).reshape(3, 3)   # columns: the voxel axes in LPS
    return float(np.max(np.abs(direction[2]) * np.array(ct.GetSpacing())))


def body_for_heights(body: np.ndarray, config: FractureConfig) -> np.ndarray:
    """A vertebral body on a 1 mm grid as it is measured, whichever input gave it: opened by a ball of
    ``tail_fraction`` of its height (within ``tail_radius_mm``) and reduced to its largest part, so thin
    tails (a pedicle stub, a leak along a ligament) and corner spurs (osteophytes, the rim of a whole-
    vertebra label) do not set its margins, and so where its anterior and posterior heights are taken."""
    height = np.count_nonzero(body.any(axis=(1, 2)))
    return without_tails(body, int(np.clip(round(height * config.tail_fraction), *config.tail_radius_mm)))


def _as_mask(body: np.ndarray, grid: sitk.Image, ct: sitk.Image, source: sitk.Image | None = None) -> sitk.Image:
    """``body`` reduced for measuring (``body_for_heights``), as an image on ``grid``; refused when it is empty
    or cut by the edge of the scan (or of the label map ``source``)."""
    if not body.any():
        raise SpineAnalysisError("the vertebral body found is too thin to measure")
    if reaches_edge(body, grid, ct) or (source is not None and reaches_edge(body, grid, source)):
        raise SpineAnalysisError("the body is cut by the edge of the scan")
    mask = sitk.GetImageFromArray(body.astype(np.uint8))
    mask.CopyInformation(grid)
    return mask


def _body_mask_from_labels(ct: sitk.Image, label_map: sitk.Image, value: int, centroid: np.ndarray,
                           config: FractureConfig) -> sitk.Image:
    """The body of label ``value`` (a whole vertebra, or a body alone) on a 1 mm grid at the centroid, reduced
    as the network's is. The label is sampled linearly (then halved), as the network's probability is, so
    a label drawn on thick slices is not measured in its steps."""
    grid = patch_grid(centroid, config.label_patch_xyz, 1.0)
    vertebra = sample_patch(sitk.Cast(label_map == value, sitk.sitkFloat32), grid, outside=0.0) >= 0.5
    body = body_from_vertebra(vertebra)
    if body is None:
        raise SpineAnalysisError("its label holds no clear vertebral body")
    return _as_mask(body_for_heights(body, config), grid, ct, label_map)


def _body_mask_from_network(ct: sitk.Image, centroid: np.ndarray, body_model, config: FractureConfig) -> sitk.Image:
    """The body network's body at the centroid on a 1 mm grid, reduced for measuring. It passes through the
    scan's own grid, as a label drawn on it does (on 2.5 mm slices, skipping that made the network's bodies
    0.7-3 mm taller than their labels')."""
    body_grid, body = body_on_patch(ct, np.asarray(centroid, float), "unet", body_model)
    on_scan = patch_on_scan_region(body, body_grid, ct)
    grid = patch_grid(centroid, config.label_patch_xyz, 1.0)
    if on_scan is None:
        raise SpineAnalysisError("the vertebral body found lies outside the scan")
    on_scan = sitk.Cast(on_scan > 0.5, sitk.sitkFloat32)
    return _as_mask(body_for_heights(sample_patch(on_scan, grid, outside=0.0) > 0.5, config), grid, ct)


def thick_slices(ct: sitk.Image, config: FractureConfig) -> str:
    """"heights not assessed: slices N mm" when the CT's slices are too far apart for heights, else ""."""
    spacing = slice_spacing_mm(ct)
    return f"heights not assessed: slices {spacing:.1f} mm" if spacing > config.max_slice_mm else ""


def measure_heights(ct: sitk.Image, centroids: Sequence[Centroid], label_map: sitk.Image | None,
                    label_values: Sequence[int], body_model, config: FractureConfig,
                    progress: Progress) -> list[tuple[VertebralHeights | None, str]]:
    """(heights or None, note) per centroid, from the label map's bodies (where ``label_values`` names
    a label) or the body network's; none on slices too thick (``thick_slices``: the note says so)."""
    too_thick = thick_slices(ct, config)
    if too_thick:
        return [(None, too_thick)] * len(centroids)
    measured = []
    for k, centroid in enumerate(centroids):
        progress(0.75 + 0.2 * k / max(1, len(centroids)), f"measuring {centroid.level}")
        try:
            if label_map is not None and label_values[k]:
                mask = _body_mask_from_labels(ct, label_map, label_values[k], centroid.lps, config)
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
