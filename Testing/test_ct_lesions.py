"""Lytic and sclerotic shares count regions, not noisy voxels (phantoms with known answers)."""
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi

from spine_analysis.ct.lesions import lesion_masks
from spine_analysis.ct.vertebral_body import DensityThresholds, measure_centrum


def _phantom(spacing, marrow_sd, shape=(40, 60, 60), seed=0):
    """A centrum-sized box of marrow at 200 HU with noise of ``marrow_sd`` HU, correlated over about a
    voxel in-plane as a reconstruction kernel leaves it, and its mask."""
    rng = np.random.default_rng(seed)
    noise = ndi.gaussian_filter(rng.normal(0.0, 1.0, shape), (0, 0.7, 0.7))
    hu = (200.0 + marrow_sd * noise / noise.std()).astype(np.float32)
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(spacing)
    centrum = np.zeros(shape, bool)
    centrum[2:-2, 5:-5, 5:-5] = True
    return image, hu, centrum


@pytest.mark.parametrize("spacing, sd", [((0.7, 0.7, 3.0), 180.0), ((0.7, 0.7, 3.0), 250.0), ((1.0, 1.0, 1.0), 170.0)])
def test_noise_alone_is_no_lesion(spacing, sd):
    image, _, centrum = _phantom(spacing, sd)
    metrics = measure_centrum(image, centrum, 1, "L1", "entered")
    # counted voxel by voxel, a tenth or more of this marrow is below 0 HU
    assert np.mean(sitk.GetArrayViewFromImage(image)[centrum] < 0) > 0.1
    assert metrics.lytic_share <= 0.02 and metrics.sclerotic_share <= 0.02


@pytest.mark.parametrize("lesion_hu, sd", [(-100.0, 120.0), (-50.0, 60.0)])
def test_a_known_lytic_lesion_reports_its_volume(lesion_hu, sd):
    spacing = (0.8, 0.8, 1.0)
    image, hu, centrum = _phantom(spacing, sd, seed=1)
    z, y, x = np.indices(hu.shape)
    radius_mm = 6.0
    sphere = ((z - 20) * spacing[2]) ** 2 + ((y - 30) * spacing[1]) ** 2 + ((x - 30) * spacing[0]) ** 2 \
        <= radius_mm ** 2
    rng = np.random.default_rng(2)
    hu[sphere] = rng.normal(lesion_hu, sd, int(sphere.sum()))
    lesion = sitk.GetImageFromArray(hu)
    lesion.SetSpacing(spacing)
    lytic, sclerotic = lesion_masks(lesion, centrum, 0.0, 400.0, 0.1)
    truth_ml = 4 / 3 * np.pi * radius_mm ** 3 / 1000
    found_ml = lytic.sum() * np.prod(spacing) / 1000
    assert found_ml == pytest.approx(truth_ml, rel=0.2)
    assert (lytic & sphere).sum() / lytic.sum() > 0.9 and not sclerotic.any()
    metrics = measure_centrum(lesion, centrum, 1, "L1", "entered", DensityThresholds(min_lesion_ml=0.1))
    assert metrics.lytic_share == pytest.approx(lytic.sum() / centrum.sum())
