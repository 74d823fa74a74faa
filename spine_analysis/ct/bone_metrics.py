"""Per-label volume and CT attenuation (HU) statistics of a vertebra label map.

Volumes come from the voxel spacing, so they are in physical units whatever the image
orientation. Statistics are over every voxel of each label (cortex included); erode the
label map first for a trabecular-only density.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from ..errors import SpineAnalysisError

#: How far label-map geometry may stray from the CT's and still count as the same grid:
#: a fraction of a voxel for origin and spacing, an absolute difference for direction
#: cosines. Covers float32 round-off in NIfTI/NRRD headers, not a real misalignment.
GEOMETRY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class BoneMetrics:
    """Size and HU statistics of one label. ``hu_std`` is the sample (n - 1) standard deviation
    (0 for a single voxel); percentiles use numpy's default linear interpolation."""

    label: int
    name: str
    voxel_count: int
    volume_ml: float
    hu_mean: float
    hu_std: float
    hu_median: float
    hu_p05: float
    hu_p95: float
    hu_min: float
    hu_max: float

    def to_dict(self) -> dict:
        return asdict(self)


def _require_3d_scalar(image: sitk.Image, what: str) -> None:
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise SpineAnalysisError(
            f"the {what} must be a 3D single-component image, got a {image.GetDimension()}D image "
            f"with {image.GetNumberOfComponentsPerPixel()} component(s) per voxel")


def labels_on_ct_grid(ct: sitk.Image, labels: sitk.Image) -> sitk.Image:
    """The label map as unsigned integers carrying the CT's exact geometry.

    Raises when the grids differ beyond GEOMETRY_TOLERANCE: resampling labels silently
    would change the volumes this module reports.
    """
    if ct.GetSize() != labels.GetSize():
        raise SpineAnalysisError(
            f"the label map ({'x'.join(map(str, labels.GetSize()))} voxels) does not match the CT "
            f"({'x'.join(map(str, ct.GetSize()))} voxels); resample it onto the CT first")
    spacing = np.array(ct.GetSpacing())
    voxel_tol = GEOMETRY_TOLERANCE * spacing.min()
    checks = {
        "spacing": np.abs(np.array(labels.GetSpacing()) - spacing).max() <= voxel_tol,
        "origin": np.abs(np.array(labels.GetOrigin()) - np.array(ct.GetOrigin())).max() <= voxel_tol,
        "orientation": np.abs(np.array(labels.GetDirection()) - np.array(ct.GetDirection())).max()
        <= GEOMETRY_TOLERANCE,
    }
    mismatched = [name for name, ok in checks.items() if not ok]
    if mismatched:
        raise SpineAnalysisError(
            f"the label map's {' and '.join(mismatched)} differ from the CT's; "
            "it was made on another grid: resample it onto the CT first")

    values = sitk.GetArrayViewFromImage(labels)
    if values.size and values.min() < 0:
        raise SpineAnalysisError(
            "the label map has negative values; labels must be 0 (background) or positive")
    if np.issubdtype(values.dtype, np.floating) and not np.array_equal(values, np.round(values)):
        raise SpineAnalysisError("the label map has fractional values; expected whole-number labels")
    on_grid = sitk.Cast(labels, sitk.sitkUInt32)
    on_grid.CopyInformation(ct)
    return on_grid


def bone_metrics(ct: sitk.Image, labels: sitk.Image,
                 label_names: dict[int, str] | None = None) -> list[BoneMetrics]:
    """Volume and HU statistics of every non-zero label, sorted by label value.

    ``ct`` holds Hounsfield units; ``labels`` is a label map on the same voxel grid (within
    GEOMETRY_TOLERANCE). ``label_names`` names the labels, e.g. ``ct.levels.VERSE_LEVEL_NAMES``
    for a VerSe-numbered vertebra map; unnamed labels are called ``"label <n>"``.
    """
    _require_3d_scalar(ct, "CT")
    _require_3d_scalar(labels, "label map")
    labels = labels_on_ct_grid(ct, labels)

    shape = sitk.LabelShapeStatisticsImageFilter()
    shape.Execute(labels)
    present = sorted(int(label) for label in shape.GetLabels())
    if not present:
        raise SpineAnalysisError("the label map is empty: it has no non-zero labels")
    intensity = sitk.LabelStatisticsImageFilter()
    intensity.Execute(ct, labels)

    # SimpleITK's label median is a histogram estimate and it has no percentiles:
    # group the labelled voxels once and take exact percentiles with numpy.
    label_array = sitk.GetArrayViewFromImage(labels)
    inside = label_array != 0
    hu = sitk.GetArrayViewFromImage(ct)[inside].astype(np.float64)
    order = np.argsort(label_array[inside], kind="stable")
    hu_by_label = np.split(hu[order], np.cumsum([shape.GetNumberOfPixels(label) for label in present])[:-1])

    names = label_names or {}
    results = []
    for label, values in zip(present, hu_by_label):
        p05, median, p95 = np.percentile(values, [5, 50, 95])
        results.append(BoneMetrics(
            label=label,
            name=names.get(label, f"label {label}"),
            voxel_count=int(shape.GetNumberOfPixels(label)),
            volume_ml=shape.GetPhysicalSize(label) / 1000.0,
            hu_mean=intensity.GetMean(label),
            hu_std=intensity.GetSigma(label),
            hu_median=float(median),
            hu_p05=float(p05),
            hu_p95=float(p95),
            hu_min=intensity.GetMinimum(label),
            hu_max=intensity.GetMaximum(label),
        ))
    return results
