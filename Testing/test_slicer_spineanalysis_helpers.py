"""The Slicer-free helpers of the SpineAnalysis module (SpineAnalysis/SpineAnalysisLib/seeds.py)."""
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SpineAnalysis"))
from SpineAnalysisLib import seeds  # noqa: E402


@pytest.mark.parametrize("text, level", [
    ("L1", "L1"), (" t12 ", "T12"), ("C7", "C7"), ("T13", "T13"), ("L6", "L6"),
    ("Seeds-3", None), ("C8", None), ("L7", None), ("T0", None), ("L1 centrum", None), ("", None), (None, None),
])
def test_only_a_typed_level_names_a_seed(text, level):
    from spine_analysis.ct.levels import level_from_text  # what the module reads a seed's label with

    assert level_from_text(text) == level


def test_segment_names_and_their_levels():
    assert seeds.segmentName("L1", 3) == "L1 centrum"
    assert seeds.segmentName(None, 3) == "vertebra 3 centrum"
    assert seeds.segmentName("unnamed", 3) == "vertebra 3 centrum"
    assert seeds.levelFromSegmentName("L1 centrum") == "L1"
    assert seeds.levelFromSegmentName("t12") == "T12"
    assert seeds.levelFromSegmentName("vertebra 3 centrum") is None
    assert seeds.levelFromSegmentName("Segment_1") is None
    assert seeds.freeNumber(["vertebra 1 centrum", "L1 centrum", "vertebra 3 centrum"]) == 2


def test_crop_box_is_about_128_mm_and_clipped_to_the_volume():
    # 64 mm is 128 voxels along i, 80 along j, 32 along k
    start, stop = seeds.cropBox([300.2, 50.0, 40.0], spacing=(0.5, 0.8, 2.0), size=(512, 512, 60))
    assert start == [300 - 128, 0, 40 - 32]
    assert stop == [300 + 128 + 1, 50 + 80 + 1, 60]
    with pytest.raises(ValueError, match="outside"):
        seeds.cropBox([-1.0, 5.0, 5.0], spacing=(1, 1, 1), size=(10, 10, 10))


def test_cropped_image_keeps_its_physical_geometry():
    image = sitk.GetImageFromArray(np.arange(10 * 12 * 14, dtype=np.int16).reshape(10, 12, 14))
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    seedIndex = (7, 6, 5)
    seedPoint = image.TransformIndexToPhysicalPoint(seedIndex)
    start, stop = seeds.cropBox(seedIndex, image.GetSpacing(), image.GetSize(), halfWidthMm=2.0)
    crop = image[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]]
    inCrop = crop.TransformPhysicalPointToIndex(seedPoint)
    assert crop[inCrop] == image[seedIndex]


def test_label_box_bounds_the_labels():
    labels = np.zeros((6, 7, 8), dtype=np.uint8)  # (k, j, i)
    assert seeds.labelBox(labels) is None
    labels[2:4, 1, 5:7] = 3
    assert seeds.labelBox(labels) == ([5, 1, 2], [7, 2, 4])


def test_metrics_row_shows_percent_and_how_it_was_made():
    metrics = {"index": 1, "level": "L1", "level_from": "entered", "volume_ml": 12.5, "hu_mean": 150.0,
               "hu_median": 148.0, "hu_std": 30.0, "lytic_share": 0.02, "sclerotic_share": 0.0,
               "density_hint": "screening hint", "method": "unet"}
    row = seeds.metricsRow("L1 centrum", metrics)
    assert list(row) == seeds.COLUMNS
    assert row["lytic_percent"] == pytest.approx(2.0)
    assert row["method"] == "U-Net"
    assert seeds.metricsRow("L1 centrum", dict(metrics, remeasured=True))["method"] == "U-Net, re-measured"
    assert seeds.metricsRow("x", dict(metrics, method="", remeasured=True))["method"] == "re-measured"


def test_an_engine_refusal_of_the_only_seed_loses_the_engine_s_seed_number():
    from spine_analysis.ct.vertebral_body import segment_vertebrae
    from spine_analysis.errors import SpineAnalysisError

    air = sitk.GetImageFromArray(np.full((20, 20, 20), -1000, dtype=np.int16))
    with pytest.raises(SpineAnalysisError) as refused:  # the module sends each seed alone, as here
        segment_vertebrae(air, [[10.0, 10.0, 10.0]], "lps", "classical")
    message = seeds.oneSeedMessage(str(refused.value))
    assert str(refused.value).startswith("seed 1: ") and message.startswith("The seed is in air")
    assert seeds.oneSeedMessage("seeds 1 and 2 are in the same vertebra") == "Seeds 1 and 2 are in the same vertebra"
    assert seeds.oneSeedMessage("") == ""


def test_a_users_labels_are_named_by_verse_numbers_else_by_their_names():
    assert seeds.labelNames([20, 21, 26, 50]) == {20: ("L1", "L1"), 21: ("L2", "L2"), 26: ("sacrum", "sacrum"),
                                                  50: ("label 50", None)}
    named = seeds.labelNames([1, 2, 3], {1: "L1 centrum", 2: "my vertebra"})
    assert named == {1: ("L1 centrum", "L1"), 2: ("my vertebra", None), 3: ("label 3", None)}


def test_rows_of_a_users_labels_are_centrum_rows_in_label_order():
    def measured(index, level, levelFrom):
        return {"index": index, "level": level, "level_from": levelFrom, "volume_ml": 1.5, "hu_mean": 150.0,
                "hu_median": 140.0, "hu_std": 20.0, "lytic_share": 0.25, "sclerotic_share": 0.0,
                "density_hint": "hint", "method": ""}

    named = {20: ("L1", "L1"), 50: ("label 50", None)}
    rows = seeds.labelRows([measured(50, "unnamed", "not given"), measured(20, "L1", "entered")], named,
                           "label map", seedLabel=50)
    assert [list(row) for row in rows] == [seeds.COLUMNS + [seeds.AT_SEED_COLUMN]] * 2
    assert [(row["segment"], row["level"], row["level_from"], row["at_seed"]) for row in rows] == \
        [("L1", "L1", "label map", False), ("label 50", "unnamed", "not given", True)]
    assert rows[0]["lytic_percent"] == 25.0 and rows[0]["method"] == ""
    assert seeds.AT_SEED_COLUMN not in seeds.labelRows([measured(20, "L1", "entered")], named, "label map")[0]
    assert set(seeds.TITLES) == set(seeds.COLUMNS) | {seeds.AT_SEED_COLUMN}
