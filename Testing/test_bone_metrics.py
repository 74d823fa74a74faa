"""bone_metrics: exact answers on synthetic label maps, agreement with TotalSegmentator's spine report."""
import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage


from spine_analysis.ct.bone_metrics import BoneMetrics, bone_metrics  # noqa: E402
from spine_analysis.ct.levels import VERSE_LEVEL_NAMES  # noqa: E402
from spine_analysis.datasets import ct_dir  # noqa: E402
from spine_analysis.errors import SpineAnalysisError  # noqa: E402

SPACING = (0.5, 0.7, 2.0)  # mm, x y z: anisotropic so a swapped axis would show
VOXEL_ML = 0.5 * 0.7 * 2.0 / 1000


def _image(array: np.ndarray, spacing=SPACING) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-20.0, 15.5, 300.0))
    return image


@pytest.fixture
def phantom():
    """CT of air with a 10 x 8 x 5 voxel box of 250 HU (label 1) and a 100-voxel ramp of
    0..99 HU (label 3): known volumes and statistics."""
    ct = np.full((12, 20, 30), -1000, dtype=np.int16)  # indexed z, y, x
    labels = np.zeros(ct.shape, dtype=np.uint8)
    ct[1:6, 2:10, 3:13] = 250
    labels[1:6, 2:10, 3:13] = 1
    ct[7:11, 12:17, 20:25] = np.arange(100).reshape(4, 5, 5)
    labels[7:11, 12:17, 20:25] = 3
    return _image(ct), _image(labels)


def test_box_and_ramp_statistics(phantom):
    box, ramp = bone_metrics(*phantom)

    assert (box.label, box.name, box.voxel_count) == (1, "label 1", 400)
    assert box.volume_ml == pytest.approx(400 * VOXEL_ML)
    for value in (box.hu_mean, box.hu_median, box.hu_p05, box.hu_p95, box.hu_min, box.hu_max):
        assert value == pytest.approx(250)
    assert box.hu_std == pytest.approx(0)

    assert (ramp.label, ramp.voxel_count) == (3, 100)
    assert ramp.volume_ml == pytest.approx(100 * VOXEL_ML)
    assert ramp.hu_mean == pytest.approx(49.5)
    assert ramp.hu_std == pytest.approx(np.sqrt(100 * 101 / 12))  # sample std of 0..99
    assert ramp.hu_median == pytest.approx(49.5)
    assert ramp.hu_p05 == pytest.approx(0.05 * 99)  # linear interpolation between ranks
    assert ramp.hu_p95 == pytest.approx(0.95 * 99)
    assert (ramp.hu_min, ramp.hu_max) == (0, 99)


def test_names_and_dict(phantom):
    box, ramp = bone_metrics(*phantom, label_names={3: "L3"})
    assert (box.name, ramp.name) == ("label 1", "L3")
    assert ramp.to_dict()["name"] == "L3"
    assert set(box.to_dict()) == set(BoneMetrics.__dataclass_fields__)
    json.dumps(box.to_dict())  # plain numbers only


def test_verse_level_names():
    expected = {1: "C1", 7: "C7", 8: "T1", 19: "T12", 20: "L1", 24: "L5", 25: "L6", 26: "sacrum", 28: "T13"}
    assert {k: VERSE_LEVEL_NAMES[k] for k in expected} == expected
    assert 27 not in VERSE_LEVEL_NAMES and len(VERSE_LEVEL_NAMES) == 27


def test_float_label_map_with_whole_values(phantom):
    ct, labels = phantom
    as_float = bone_metrics(ct, sitk.Cast(labels, sitk.sitkFloat32))
    assert as_float == bone_metrics(ct, labels)


def test_label_map_within_tolerance_is_accepted(phantom):
    ct, labels = phantom
    labels.SetOrigin(tuple(np.array(labels.GetOrigin()) + 1e-5))  # float32 header round-off
    labels.SetSpacing(tuple(np.array(labels.GetSpacing()) * (1 + 1e-6)))
    assert [m.voxel_count for m in bone_metrics(ct, labels)] == [400, 100]


@pytest.mark.parametrize("change, message", [
    (lambda im: sitk.Image([30, 20, 11], sitk.sitkUInt8), "voxels"),
    (lambda im: im.SetOrigin(tuple(np.array(im.GetOrigin()) + (0.25, 0, 0))), "origin"),
    (lambda im: im.SetSpacing((0.5, 0.7, 2.5)), "spacing"),
    (lambda im: im.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1)), "orientation"),
])
def test_mismatched_geometry_is_rejected(phantom, change, message):
    ct, labels = phantom
    labels = change(labels) or labels
    with pytest.raises(SpineAnalysisError, match=message):
        bone_metrics(ct, labels)


@pytest.mark.parametrize("labels, message", [
    (np.zeros((12, 20, 30), np.uint8), "empty"),
    (np.full((12, 20, 30), -1, np.int16), "negative"),
    (np.full((12, 20, 30), 1.5, np.float32), "fractional"),
])
def test_bad_label_maps_are_rejected(phantom, labels, message):
    with pytest.raises(SpineAnalysisError, match=message):
        bone_metrics(phantom[0], _image(labels))


def test_non_3d_input_is_rejected(phantom):
    ct, labels = phantom
    with pytest.raises(SpineAnalysisError, match="3D"):
        bone_metrics(ct[:, :, 2], labels[:, :, 2])


# --- real CT -----------------------------------------------------------------------------

DATA_DIR = ct_dir()
ABDOMEN = DATA_DIR / "totalseg-abdomen"


def _trabecular_as_in_report(labels: sitk.Image) -> sitk.Image:
    """Each label eroded as TotalSegmentator's spine report does before its HU statistics:
    an ellipsoid of 4 mm radii in voxel units (at 3 mm voxels a lopsided 8-voxel element),
    applied per label with scipy."""
    array = sitk.GetArrayFromImage(labels)
    radii = [4.0 / s for s in labels.GetSpacing()[::-1]]
    grid = np.ogrid[tuple(slice(-r, r + 1) for r in radii)]
    element = sum(g * g / (r * r) for g, r in zip(grid, radii)) <= 1
    eroded = np.zeros_like(array)
    for label in np.unique(array[array > 0]):
        eroded[ndimage.binary_erosion(array == label, structure=element)] = label
    result = sitk.GetImageFromArray(eroded)
    result.CopyInformation(labels)
    return result


@pytest.mark.skipif(not ABDOMEN.is_dir(), reason=f"real CT data not found at {ABDOMEN} (set SPINE_CT_DIR)")
def test_agrees_with_totalsegmentator_spine_report():
    """The report (TotalSegmentator's spine report on its own test CT) lists body volume and
    mean/median HU per lumbar vertebra. Its labels are TotalSegmentator predictions, not
    manual: this checks our arithmetic against an independent implementation, not accuracy."""
    ct = sitk.ReadImage(str(ABDOMEN / "example_ct.nii.gz"))
    labels = sitk.ReadImage(str(ABDOMEN / "totalseg_vertebrae_pp_refined.nii.gz"))
    report = json.loads((ABDOMEN / "spine_report.json").read_text())["results"]
    whole = {m.name: m for m in bone_metrics(ct, labels, VERSE_LEVEL_NAMES)}
    trabecular = {m.name: m for m in bone_metrics(ct, _trabecular_as_in_report(labels), VERSE_LEVEL_NAMES)}

    rounding = 0.005 + 1e-9  # the report rounds to 2 decimals
    # T12 touches the scan's edge, so the report leaves it out; L1-L5 are compared.
    compared = [name for name in whole if f"vertebrae_{name}_volume_ml" in report]
    assert compared == ["L1", "L2", "L3", "L4", "L5"]
    for name in compared:
        key = f"vertebrae_{name}"
        # Same voxels, same 27 mm^3 each: equal up to the report's rounding to 0.01 ml.
        assert whole[name].volume_ml == pytest.approx(report[f"{key}_volume_ml"], abs=rounding)
        # On the same eroded voxels the HU mean and median agree up to the report's rounding.
        assert trabecular[name].hu_mean == pytest.approx(report[f"{key}_intensity"], abs=rounding)
        assert trabecular[name].hu_median == pytest.approx(report[f"{key}_intensity_median"], abs=rounding)
        # Over the whole body the dense cortical shell raises the mean, measured 15-35 HU here.
        assert 0 < whole[name].hu_mean - report[f"{key}_intensity"] < 50
