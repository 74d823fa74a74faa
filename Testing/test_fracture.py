"""Fracture detection: simulated deformities, aggregation of voxel probabilities, centroids, calls."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from ct_phantom import BODY_HEIGHT_MM, phantom_ct, phantom_labels
from spine_analysis.ct.deformity import Deformity, compress
from spine_analysis.ct.fracture import (
    Centroid,
    ProbabilityMaps,
    _call,
    fracture_components,
    vertebra_probability,
)
from spine_analysis.ct.fracture_heights import grade_heights
from spine_analysis.ct.fracture_model.config import FractureConfig
from spine_analysis.ct.genant import VertebralHeights, genant_grade, vertebral_heights
from spine_analysis.ct.levels import read_centroids
from spine_analysis.ct.patches import ct_grid
from spine_analysis.ct.spine_chain import find_vertebrae
from spine_analysis.errors import SpineAnalysisError


def _iso_phantom():
    """The phantom on a 1 mm grid aligned with LPS, so array z is the patient's z."""
    return phantom_ct(spacing=(1.0, 1.0, 1.0), size=(70, 60, 110), noise_hu=0.0)


def _middle_body(ct):
    return sitk.GetArrayFromImage(phantom_labels(ct)) == 22


def _heights(mask: np.ndarray, like: sitk.Image) -> VertebralHeights:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(like)
    return vertebral_heights(image)


@pytest.mark.parametrize("shape, loss, grade", [
    ("wedge", 0.3, 2), ("wedge", 0.5, 3), ("biconcave", 0.3, 2), ("biconcave", 0.5, 3),
    ("crush", 0.3, 2), ("crush", 0.5, 3), ("wedge", 0.1, 0)])
def test_a_simulated_deformity_is_graded_as_asked_by_genants_heights(shape, loss, grade):
    ct = _iso_phantom()
    body = _middle_body(ct)
    before = _heights(body, ct)
    hu, (after_mask,) = compress(sitk.GetArrayFromImage(ct).astype(np.float32), body, Deformity(shape, loss), (body,))
    after = _heights(after_mask, ct)
    result = genant_grade(*after, reference_mm=before.posterior_mm)
    assert result.grade == grade
    if grade:
        assert result.deformity == shape
        assert result.height_loss_pct == pytest.approx(100 * loss, abs=5)
    # the image moved with the mask: the bright body is where the mask now is
    bone = hu > 150
    assert (bone & after_mask).sum() / after_mask.sum() > 0.95
    # the neighbours stay where they were
    others = sitk.GetArrayFromImage(phantom_labels(ct)) > 0
    others &= ~body
    assert np.array_equal(hu[others] > 150, sitk.GetArrayFromImage(ct)[others] > 150)


def test_a_crushed_body_has_lost_height_evenly_and_its_neighbours_reveal_it():
    ct = _iso_phantom()
    body = _middle_body(ct)
    _, (after,) = compress(np.zeros(body.shape, np.float32), body, Deformity("crush", 0.4), (body,))
    heights = _heights(after, ct)
    assert max(heights) - min(heights) < 2.0
    assert heights.middle_mm == pytest.approx(0.6 * BODY_HEIGHT_MM, abs=1.5)
    assert genant_grade(*heights).grade == 0   # alone, a crush looks normal
    normal = _heights(body, ct)
    centroids = [Centroid(name, np.array([0.0, 0.0, z])) for name, z in zip(("L2", "L3", "L4"), (32.0, 0.0, -32.0))]
    grades = grade_heights(centroids, [(normal, ""), (heights, ""), (normal, "")], FractureConfig())
    assert [g.grade for g in grades] == [0, 3, 0] and grades[1].deformity == "crush"


def test_heights_without_a_label_need_the_body_model_passed_in():
    from types import SimpleNamespace

    from spine_analysis.ct.fracture import detect_fractures

    fracture_model = SimpleNamespace(config=FractureConfig())   # refused before the classifier runs
    with pytest.raises(ValueError, match="needs the body model"):
        detect_fractures(phantom_ct(), fracture_model, [Centroid("L3", np.zeros(3))])


def test_deformity_rejects_what_it_cannot_do():
    with pytest.raises(SpineAnalysisError, match="unknown deformity shape"):
        Deformity("burst", 0.3)
    with pytest.raises(SpineAnalysisError, match="height loss"):
        Deformity("wedge", 1.2)
    with pytest.raises(SpineAnalysisError, match="no vertebral body"):
        compress(np.zeros((4, 4, 4), np.float32), np.zeros((4, 4, 4), bool), Deformity("wedge", 0.3))


def test_the_1mm_grid_covers_an_oblique_anisotropic_ct():
    ct = phantom_ct(oblique_deg=20)
    grid = ct_grid(ct, 1.0)
    assert grid.GetSpacing() == (1.0, 1.0, 1.0) and grid.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    size = np.array(ct.GetSize())
    for corner in np.array(np.meshgrid(*[(0, n - 1) for n in size])).reshape(3, -1).T:
        point = ct.TransformIndexToPhysicalPoint([int(v) for v in corner])
        index = np.array(grid.TransformPhysicalPointToContinuousIndex(point))
        assert np.all(index >= -0.5) and np.all(index <= np.array(grid.GetSize()) - 0.5)


def _maps(boxes, fractured_boxes=(), shape=(120, 60, 60)):
    """Probability maps on a 1 mm grid (origin 0): body probability 1 in ``boxes`` (z0, z1), fracture
    probability 0.8 in ``fractured_boxes``, with a body cross-section of 30 x 30 voxels."""
    body = np.zeros(shape, np.float32)
    fractured = np.zeros(shape, np.float32)
    for z0, z1 in boxes:
        body[z0:z1, 15:45, 15:45] = 1.0
    for z0, z1 in fractured_boxes:
        fractured[z0:z1, 15:45, 15:45] = 0.8
    grid = sitk.Image([shape[2], shape[1], shape[0]], sitk.sitkUInt8)
    return ProbabilityMaps(grid, body, fractured, 0.0)


def test_vertebra_probability_is_the_fractured_share_of_body_near_the_centroid():
    config = FractureConfig()
    maps = _maps([(5, 30), (40, 65), (75, 100)], fractured_boxes=[(40, 65)])
    centre = lambda z: np.array([29.5, 29.5, z])   # noqa: E731 - x, y, z in mm on the grid
    assert vertebra_probability(maps, centre(52), config) == pytest.approx(0.8, abs=0.01)
    assert vertebra_probability(maps, centre(17), config) == pytest.approx(0.0, abs=0.01)
    # a centroid 5 mm off the body's centre, in the body still, gives the same answer
    assert vertebra_probability(maps, centre(52) + [5, 0, 0], config) == pytest.approx(0.8, abs=0.01)
    # no body near: no answer rather than "normal"
    assert vertebra_probability(maps, np.array([29.5, 29.5, 119.0]), _config_with(cube_half_mm=4)) is None


def _config_with(**changes):
    return FractureConfig(**{**FractureConfig().to_dict(), **changes})


def test_vertebrae_found_from_body_voxels_top_to_bottom_and_joined_bodies_split():
    config = FractureConfig()
    maps = _maps([(5, 30), (40, 65), (75, 100)])
    found = find_vertebrae(maps, config).centroids
    assert [c.level for c in found] == ["vertebra 1", "vertebra 2", "vertebra 3"]
    assert [round(c.lps[2]) for c in found] == [87, 52, 17]     # LPS z is up: the top first
    joined = _maps([(5, 30), (40, 100)])                       # two bodies joined across a thin bridge
    joined.body[68:72, 15:45, 15:45] = 0
    joined.body[68:72, 28:32, 28:32] = 1
    assert [c.lps[2] for c in find_vertebrae(joined, config).centroids] == pytest.approx([85, 53.5, 17], abs=1)
    assert find_vertebrae(_maps([]), config).centroids == []
    boneless = _maps([(5, 30), (40, 65)])
    boneless.bone = np.zeros(boneless.body.shape, bool)          # "bodies" in soft tissue are not vertebrae
    assert find_vertebrae(boneless, config).centroids == []
    boneless.bone[40:65, 15:45, 15:17] = True                      # a cortex on one side: that one is
    assert [round(c.lps[2]) for c in find_vertebrae(boneless, config).centroids] == [52]


def test_patient_level_components_drop_specks():
    maps = _maps([(40, 65)], fractured_boxes=[(40, 65)])
    maps.fractured[100:105, 2:6, 2:6] = 0.9                     # 0.08 ml: noise
    components = fracture_components(maps, FractureConfig())
    assert len(components) == 1
    assert components[0]["volume_ml"] == pytest.approx(25 * 30 * 30 / 1000)


@pytest.mark.parametrize("probability, grade, call, agree, basis", [
    (0.9, 3, "fractured", True, "agree"),
    (0.1, 0, "normal", True, "agree"),
    (0.9, 0, "fractured", False, "classifier"),
    (0.1, 2, "fractured", False, "morphometry"),
    (0.1, 1, "normal", True, "agree"),                  # mild alone does not call a fracture
    (None, None, "not assessed", None, "no vertebral body"),
    (0.7, None, "fractured", None, "classifier alone"),
])
def test_the_call_says_which_opinion_drove_it(probability, grade, call, agree, basis):
    heights = {0: (25, 25, 25), 1: (19.5, 25, 25), 2: (17, 25, 25), 3: (12, 25, 25)}
    genant = None if grade is None else genant_grade(*heights[grade])
    assert genant is None or genant.grade == grade
    assert _call(probability, genant, FractureConfig())[0] == call
    assert _call(probability, genant, FractureConfig())[2] == agree
    assert basis in _call(probability, genant, FractureConfig())[1]


def test_centroids_from_a_slicer_point_list_a_csv_and_bad_files(tmp_path):
    ct = _iso_phantom()
    markups = {"markups": [{"type": "Fiducial", "coordinateSystem": "RAS",
                            "controlPoints": [{"label": "L1", "position": [1.0, 2.0, 3.0]}]}]}
    (tmp_path / "points.mrk.json").write_text(json.dumps(markups))
    assert np.allclose(read_centroids(tmp_path / "points.mrk.json", ct)["L1"], [-1, -2, 3])
    (tmp_path / "c.csv").write_text("level,x,y,z\nL2,1,2,3\n")
    assert np.allclose(read_centroids(tmp_path / "c.csv", ct)["L2"], [1, 2, 3])
    (tmp_path / "bad.csv").write_text("level,x\nL2,1\n")
    with pytest.raises(SpineAnalysisError, match="level,x,y,z"):
        read_centroids(tmp_path / "bad.csv", ct)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpineAnalysisError, match="centroid file"):
        read_centroids(tmp_path / "bad.json", ct)



def test_a_thin_tail_on_a_segmented_body_no_longer_sets_its_posterior_height(tmp_path):
    from spine_analysis.ct.body_labels import without_tails

    ct = _iso_phantom()
    body = _middle_body(ct)
    tailed = body.copy()
    z, y, x = np.nonzero(body)
    tailed[z.min() + 8: z.min() + 12, y.max():y.max() + 15, x.mean().astype(int) - 2: x.mean().astype(int) + 3] = True
    assert _heights(tailed, ct).posterior_mm < 15                  # the stub is what gets measured
    cleaned = without_tails(tailed, 4)
    assert _heights(cleaned, ct).posterior_mm == pytest.approx(_heights(body, ct).posterior_mm, abs=1.5)
    assert (cleaned & ~body).sum() < 0.1 * (tailed & ~body).sum()     # the tail is gone but for its root


def test_vertebrae_cut_by_the_scans_edge_are_told_apart_from_whole_ones():
    from spine_analysis.ct.fracture import _cut_by_edge
    from spine_analysis.ct.patches import sample_patch

    ct = phantom_ct(spacing=(1.0, 1.0, 1.0), size=(70, 60, 80), noise_hu=0.0)   # z from -39.5 to 39.5 mm:
    grid = ct_grid(ct, 1.0)                                                       # the top and bottom bodies are cut
    body = (sample_patch(phantom_labels(ct), grid, labels=True) > 0).astype(np.float32)
    maps = ProbabilityMaps(grid, body, np.zeros_like(body), 0.0)
    centroids = [Centroid(name, np.array([0.0, 0.0, z])) for name, z in (("L2", 30.0), ("L3", 0.0), ("L4", -30.0))]
    assert _cut_by_edge(maps, ct, centroids, FractureConfig()) == [True, False, True]


def _whole_vertebrae(ct):
    """The phantom's label map with each body's arch (a ring round the canal) and spinous process in its label,
    as VerSe labels a whole vertebra: their centroid lies behind the body."""
    from ct_phantom import CENTRES_Z_MM, voxel_points

    labels = sitk.GetArrayFromImage(phantom_labels(ct))
    x, y, z = voxel_points(ct.GetSize(), ct.GetSpacing(), ct.GetOrigin(), ct.GetDirection()).T
    ring = np.hypot(x, y - 30)
    for level, cz in zip((21, 22, 23), sorted(CENTRES_Z_MM, reverse=True)):
        arch = (ring >= 9) & (ring <= 16) & (np.abs(z - cz) <= 12)
        spinous = (np.abs(x) <= 3) & (y >= 44) & (y <= 58) & (np.abs(z - cz) <= 10)
        labels[(arch | spinous).reshape(labels.shape) & (labels == 0)] = level
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    return image


def test_label_map_centroids_are_the_bodies_and_named_points_keep_their_vertebra():
    from ct_phantom import CENTRES_Z_MM
    from spine_analysis.ct.levels import centroids_from_label_map, labels_of_centroids

    ct = phantom_ct(spacing=(1.0, 1.0, 1.0), size=(70, 130, 110), noise_hu=0.0)
    labels = _whole_vertebrae(ct)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    assert stats.GetCentroid(22)[1] > 8.0   # the whole vertebra's centroid: behind the middle of the body

    centroids, values = centroids_from_label_map(labels)
    assert [c.level for c in centroids] == ["L2", "L3", "L4"] and values == [21, 22, 23]
    for centroid, cz in zip(centroids, sorted(CENTRES_Z_MM, reverse=True)):
        np.testing.assert_allclose(centroid.lps, [0.0, 0.0, cz], atol=2.0)  # the arch's roots pull a little

    # Points sent back (a re-run) belong to the vertebra they are named by, wherever they are; others to the
    # label under them.
    canal = Centroid("l3", np.array([0.0, 30.0, 0.0]))   # in the spinal canal: no label there
    in_l2 = Centroid("vertebra 1", np.array([0.0, 0.0, 32.0]))
    nowhere = Centroid("vertebra 9", np.array([0.0, -40.0, 0.0]))
    not_in_map = Centroid("T12", np.array([0.0, 0.0, -32.0]))   # no T12 label: the one under it (L4)
    assert labels_of_centroids(labels, [canal, in_l2, nowhere, not_in_map]) == [22, 21, 0, 23]


def test_a_calibrated_model_reports_the_platt_scaled_share():
    maps = _maps([(40, 65)], fractured_boxes=[(40, 65)])
    centre = np.array([29.5, 29.5, 52.0])
    raw = vertebra_probability(maps, centre, FractureConfig())
    scaled = vertebra_probability(maps, centre, _config_with(calibration=(0.5, -1.0)))
    assert scaled == pytest.approx(1 / (1 + np.exp(-(0.5 * np.log(raw / (1 - raw)) - 1.0))), abs=1e-6)
