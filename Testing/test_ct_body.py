"""Click-to-segment on CT: patches, label rules, the classical method, seed refusal, metrics, levels."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from ct_phantom import MARROW_HU, phantom_ct, reference_centrum
from spine_analysis.ct.body_labels import body_from_vertebra, centrum_from_body, largest_part
from spine_analysis.ct.body_model.evaluate import dice
from spine_analysis.ct.levels import level_from_centroids, level_from_label_map, level_from_text, read_verse_centroids
from spine_analysis.ct.patches import contains_point, patch_grid, patch_to_scan, sample_patch, to_lps
from spine_analysis.ct.vertebral_body import (DensityThresholds, density_hint, measure_centrum,
                                              segment_vertebrae, segment_vertebral_body)
from spine_analysis.errors import SpineAnalysisError


@pytest.fixture(scope="module")
def oblique_ct():
    return phantom_ct(oblique_deg=20)


def test_ras_points_flip_x_and_y():
    assert to_lps([1, 2, 3], "ras").tolist() == [-1, -2, 3]
    assert to_lps([1, 2, 3], "LPS").tolist() == [1, 2, 3]
    with pytest.raises(SpineAnalysisError, match="coordinate system"):
        to_lps([1, 2, 3], "xyz")
    with pytest.raises(SpineAnalysisError, match="three finite"):
        to_lps([1, np.nan, 3], "lps")


def test_patch_is_patient_aligned_and_centred(oblique_ct):
    grid = patch_grid(np.array([5.0, -3.0, 2.0]), (9, 7, 5), 1.0)
    assert grid.GetDirection() == (1, 0, 0, 0, 1, 0, 0, 0, 1)
    assert np.allclose(grid.TransformContinuousIndexToPhysicalPoint((4, 3, 2)), (5, -3, 2))
    patch = sample_patch(oblique_ct, patch_grid(np.zeros(3), (5, 5, 5), 1.0))
    assert patch.shape == (5, 5, 5) and abs(np.median(patch) - MARROW_HU) < 30   # inside the middle body


def test_patch_values_land_on_an_oblique_coarse_grid_with_their_volume(oblique_ct):
    grid = patch_grid(np.zeros(3), (40, 40, 40), 1.0)
    z, y, x = np.indices((40, 40, 40)) - 19.5
    sphere = (np.sqrt(x * x + y * y + z * z) <= 10).astype(np.float32)
    on_scan = patch_to_scan(sphere, grid, oblique_ct)
    assert on_scan.shape == sitk.GetArrayViewFromImage(oblique_ct).shape
    volume = on_scan.sum() * np.prod(oblique_ct.GetSpacing())
    assert volume == pytest.approx(4 / 3 * np.pi * 1000, rel=0.05)


def test_points_inside_the_volume(oblique_ct):
    assert contains_point(oblique_ct, np.zeros(3))
    assert not contains_point(oblique_ct, np.array([0.0, 0.0, 400.0]))


def test_centrum_rule_removes_a_shell_of_three_millimetres():
    body = np.zeros((30, 30, 30), dtype=bool)
    body[5:25, 5:25, 5:25] = True
    centrum = centrum_from_body(body)
    assert centrum.sum() == 14 ** 3 and centrum[8:22, 8:22, 8:22].all()


def test_body_is_cut_from_a_vertebra_in_front_of_its_arch():
    z, y, x = np.indices((50, 90, 80))
    body = ((x - 40) / 20.0) ** 2 + ((y - 25) / 15.0) ** 2 <= 1
    body &= np.abs(z - 25) <= 12
    ring = np.hypot(x - 40, y - 52) - 9
    arch = (ring > 0) & (ring < 4) & (np.abs(z - 25) <= 8) & (y > 38)
    derived = body_from_vertebra(body | arch)
    assert derived is not None and dice(derived, body) > 0.95


@pytest.mark.parametrize("seed", [[0, 0, 0], [6, -5, 6], [-8, 8, -8]])
def test_classical_method_finds_the_clicked_centrum_on_an_oblique_grid(oblique_ct, seed):
    result = segment_vertebral_body(oblique_ct, seed, "lps", "classical")
    assert result.centrum.shape == sitk.GetArrayViewFromImage(oblique_ct).shape
    assert dice(result.centrum, reference_centrum(oblique_ct)) > 0.8
    assert not (result.centrum & ~result.body).any()


def test_ras_seed_gives_the_same_vertebra(oblique_ct):
    lps = segment_vertebral_body(oblique_ct, [4, -3, 2], "lps", "classical")
    ras = segment_vertebral_body(oblique_ct, [-4, 3, 2], "ras", "classical")
    assert np.array_equal(lps.centrum, ras.centrum)


@pytest.mark.parametrize("seed, message", [
    ([0, 0, 400], "outside the CT volume"),
    ([0, -200, 0], "outside the CT volume"),
    ([0, 0, 16], "not inside a vertebral body"),      # the disc below the middle body
    ([0, -40, 0], "not inside a vertebral body"),     # soft tissue in front of the spine
])
def test_seeds_off_a_body_are_refused(oblique_ct, seed, message):
    with pytest.raises(SpineAnalysisError, match=message):
        segment_vertebral_body(oblique_ct, seed, "lps", "classical")


def test_seed_in_air_and_far_from_bone_are_refused():
    ct = phantom_ct(size=(200, 110, 56))
    with pytest.raises(SpineAnalysisError, match="in air"):
        segment_vertebral_body(ct, [-75, 0, 0], "lps", "classical")
    tissue = sitk.Image([60, 60, 20], sitk.sitkInt16) + 40
    with pytest.raises(SpineAnalysisError, match="no bone"):
        segment_vertebral_body(tissue, tissue.TransformIndexToPhysicalPoint((30, 30, 10)), "lps", "classical")


def test_non_ct_volumes_are_refused():
    with pytest.raises(SpineAnalysisError, match="8-bit"):
        segment_vertebral_body(sitk.Image([20, 20, 20], sitk.sitkUInt8), [0, 0, 0], "lps", "classical")
    with pytest.raises(SpineAnalysisError, match="components"):
        segment_vertebral_body(sitk.Image([20, 20, 20], sitk.sitkVectorFloat32, 3), [0, 0, 0], "lps", "classical")
    with pytest.raises(SpineAnalysisError, match="method"):
        segment_vertebral_body(phantom_ct(), [0, 0, 0], "lps", "watershed")


def test_the_unet_method_needs_a_loaded_body_model():
    with pytest.raises(ValueError, match="needs a loaded body model"):
        segment_vertebral_body(phantom_ct(), [0, 0, 0], "lps", "unet")


def test_several_seeds_one_label_each_and_the_same_vertebra_twice_is_refused():
    ct = phantom_ct(size=(120, 110, 60))
    labels, bodies, metrics = segment_vertebrae(ct, [[0, 0, 0], [0, 0, 32]], "lps", "classical",
                                                levels=["L3", "L2"])
    assert set(np.unique(labels)) == {0, 1, 2} and set(np.unique(bodies)) == {0, 1, 2}
    assert bodies[labels == 1].min() == 1 and (bodies == 1).sum() > 1.5 * (labels == 1).sum()
    assert [m.level for m in metrics] == ["L3", "L2"] and metrics[0].level_from == "entered"
    assert metrics[0].hu_mean == pytest.approx(MARROW_HU, abs=15)
    assert np.argwhere(labels == 2)[:, 0].mean() > np.argwhere(labels == 1)[:, 0].mean()   # z grows upwards
    with pytest.raises(SpineAnalysisError, match="seeds 1 and 2 are in the same vertebra"):
        segment_vertebrae(ct, [[0, 0, 0], [3, 2, 1]], "lps", "classical")
    with pytest.raises(SpineAnalysisError, match="seed 2: .*outside"):
        segment_vertebrae(ct, [[0, 0, 0], [0, 0, 900]], "lps", "classical")


def test_levels_come_from_a_label_map_and_disagreement_is_refused():
    ct = phantom_ct(size=(120, 110, 60))
    reference = reference_centrum(ct)
    label_map = sitk.GetImageFromArray(np.where(reference, 22, 0).astype(np.uint8))
    label_map.CopyInformation(ct)
    _, _, metrics = segment_vertebrae(ct, [[0, 0, 0]], "lps", "classical", label_map=label_map)
    assert (metrics[0].level, metrics[0].level_from) == ("L3", "label map")
    with pytest.raises(SpineAnalysisError, match="label map says this vertebra is L3 but L4 was entered"):
        segment_vertebrae(ct, [[0, 0, 0]], "lps", "classical", levels=["L4"], label_map=label_map)
    _, _, metrics = segment_vertebrae(ct, [[0, 0, 0]], "lps", "classical")
    assert (metrics[0].level, metrics[0].level_from) == ("unnamed", "not given")


def test_metrics_of_a_known_centrum():
    values = np.full((10, 10, 10), 150, dtype=np.int16)
    values[:, :, :3], values[:, :, 7:] = -50, 500    # a lytic and a sclerotic slab, 0.15 ml each
    ct = sitk.GetImageFromArray(values)
    ct.SetSpacing((0.5, 0.5, 2.0))
    mask = np.ones((10, 10, 10), dtype=bool)
    metrics = measure_centrum(ct, mask, 1, "L1", "entered", DensityThresholds(0.0, 400.0))
    assert metrics.volume_ml == pytest.approx(0.5) and metrics.slice_mm == 2.0
    assert metrics.hu_mean == pytest.approx(195) and metrics.hu_median == pytest.approx(150)
    assert metrics.lytic_share == pytest.approx(0.3) and metrics.sclerotic_share == pytest.approx(0.3)
    smaller = measure_centrum(ct, mask, 1, "L1", "entered", DensityThresholds(0.0, 400.0, min_lesion_ml=0.2))
    assert smaller.lytic_share == 0 and smaller.sclerotic_share == 0   # regions under the minimum are not lesions
    assert "likely normal" in metrics.density_hint and "set on L1" not in metrics.density_hint
    with pytest.raises(SpineAnalysisError, match="empty"):
        measure_centrum(ct, ~mask, 2, "L2", "entered")


@pytest.mark.parametrize("hu, level, words", [
    (90, "L1", "osteoporosis likely"), (110, "L1", "osteoporosis likely"),
    (130, "L1", "indeterminate"), (161, "L2", "likely normal"), (161, "L2", "set on L1")])
def test_density_hint_uses_the_published_l1_thresholds(hu, level, words):
    hint = density_hint(hu, level)
    assert words in hint and hint.startswith("screening hint, not a diagnosis")


def test_verse_centroids_are_placed_in_lps(tmp_path):
    ct = sitk.Image([50, 60, 70], sitk.sitkInt16)
    ct.SetSpacing((1.0, 2.0, 3.0))
    ct.SetOrigin((10.0, 20.0, 30.0))
    path = tmp_path / "ctd.json"
    path.write_text(json.dumps([{"direction": ["L", "P", "S"]}, {"label": 20, "X": 1, "Y": 2, "Z": 3}]))
    centroids = read_verse_centroids(path, ct)
    assert np.allclose(centroids["L1"], (11, 24, 39))
    assert level_from_centroids(centroids, np.array([12.0, 25.0, 40.0])) == "L1"
    assert level_from_centroids(centroids, np.array([100.0, 25.0, 40.0])) is None
    path.write_text("[]")
    with pytest.raises(SpineAnalysisError, match="not a VerSe centroid file"):
        read_verse_centroids(path, ct)


def test_level_from_label_map_needs_half_of_the_segment():
    labels = sitk.GetImageFromArray(np.array([[[0, 0, 21, 21]]], dtype=np.uint8))
    assert level_from_label_map(labels, np.array([[[False, True, True, True]]])) == "L2"
    assert level_from_label_map(labels, np.array([[[True, True, True, False]]])) is None


@pytest.mark.parametrize("text, level", [
    ("L1", "L1"), (" t12 ", "T12"), ("c7", "C7"), ("T13", "T13"), ("L6", "L6"),
    ("Seeds-3", None), ("C8", None), ("L7", None), ("T0", None), ("L1 centrum", None), ("", None), (None, None),
])
def test_a_typed_text_is_a_level_only_when_it_names_one(text, level):
    assert level_from_text(text) == level


def _cylinder(shape, centre_zyx, radius, half_height):
    z, y, x = np.indices(shape)
    return (np.hypot(y - centre_zyx[1], x - centre_zyx[2]) <= radius) & (np.abs(z - centre_zyx[0]) <= half_height)


def test_a_body_with_holes_becomes_one_solid_and_its_centrum_one_piece():
    """Low-density marrow leaves the network's body in pieces with holes; the body is made solid and
    the centrum (body less the shell) is one piece, wherever inside the click falls (even in a hole)."""
    from scipy import ndimage as ndi

    from spine_analysis.ct.body_model.config import BodyConfig
    from spine_analysis.ct.vertebral_body import _one_body

    shape, centre = (64, 96, 96), (32, 48, 48)
    body = _cylinder(shape, centre, 18, 11)
    rng = np.random.default_rng(0)
    holey = body.copy()
    for zyx in rng.integers([24, 40, 40], [41, 57, 57], (25, 3)):   # marrow holes up to 8 mm wide, inside
        holey &= ~_cylinder(shape, zyx, rng.integers(2, 5), 3)      # the cortex
    holey &= ~(_cylinder(shape, centre, 30, 0) & ~_cylinder(shape, centre, 16, 0))   # a 2 mm notch all round
    assert ndi.label(centrum_from_body(holey, 3.0))[1] > 1 or not holey[centre]
    hole = tuple(np.argwhere(body & ~holey & (np.abs(np.indices(shape)[0] - 32) < 6))[0])
    for seed in (centre, hole):
        solid = _one_body(holey, seed, BodyConfig())
        assert dice(solid, body) > 0.97
        assert ndi.label(centrum_from_body(solid, 3.0))[1] == 1


def test_a_thin_bridge_through_the_disc_does_not_join_the_neighbour():
    from spine_analysis.ct.body_model.config import BodyConfig
    from spine_analysis.ct.vertebral_body import _one_body

    shape, centre = (64, 96, 96), (20, 48, 48)
    own, neighbour = _cylinder(shape, centre, 16, 8), _cylinder(shape, (50, 48, 48), 16, 8)
    bridge = _cylinder(shape, (35, 48, 60), 2, 8)                     # 4 mm wide, across the disc
    solid = _one_body(own | neighbour | bridge, centre, BodyConfig())
    assert dice(solid, own) > 0.97 and not (solid & neighbour).any()


def test_a_broad_bridge_through_the_whole_disc_is_cut_at_its_waist_and_a_waisted_body_is_not():
    """A body that runs through a whole disc into its neighbour (too broad for the opening) narrows in
    the disc: with ``waist_ratio`` it is cut there, on the click's side; a vertebral body's own
    concave waist (about 0.9 of its end-plate area) is not a disc and stays whole."""
    from spine_analysis.ct.body_model.config import BodyConfig
    from spine_analysis.ct.vertebral_body import _cut_at_waist, _one_body

    shape, centre = (64, 96, 96), (18, 48, 48)
    own, neighbour = _cylinder(shape, centre, 16, 8), _cylinder(shape, (46, 48, 48), 16, 8)
    bridge = _cylinder(shape, (32, 48, 48), 11, 7)                   # area 0.47 of the bodies', 13 mm of disc
    joined = _one_body(own | neighbour | bridge, centre, BodyConfig())
    assert dice(joined, own | neighbour | bridge) > 0.97
    assert _cut_at_waist(joined, centre, 0.0) is joined
    cut = _cut_at_waist(joined, centre, 0.75)
    assert dice(cut, own) > 0.9 and not (cut & neighbour).any()
    from_above = _cut_at_waist(joined, (46, 48, 48), 0.75)
    assert dice(from_above, neighbour) > 0.9 and not (from_above & own).any()
    waisted = _cylinder(shape, (32, 48, 48), 16, 12) & ~(_cylinder(shape, (32, 48, 48), 30, 4)
                                                          & ~_cylinder(shape, (32, 48, 48), 15, 4))
    assert _cut_at_waist(waisted, (32, 48, 48), 0.75).sum() == waisted.sum()


def test_largest_part_keeps_the_larger_of_two_pieces_joined_only_at_a_corner():
    """A centrum resampled onto a coarse grid can keep a fragment joined by an edge or a corner: one piece stays."""
    mask = np.zeros((10, 10, 10), bool)
    mask[1:5, 1:5, 1:5] = True        # 64 voxels
    mask[5:7, 5:7, 5:7] = True        # 8 voxels, touching the first only at a corner
    kept = largest_part(mask)
    assert kept.sum() == 64 and kept[1:5, 1:5, 1:5].all()
    assert not largest_part(np.zeros((3, 3, 3), bool)).any()


def test_opening_and_dilation_on_the_bounding_box_equal_scipys_on_the_whole_array():
    """``open_by_ball`` and ``dilate_by_ball`` work on the mask's box only: the answer must not change, even where
    the mask touches the array's edge."""
    from scipy import ndimage as ndi

    from spine_analysis.ct.body_labels import ball, dilate_by_ball, open_by_ball

    rng = np.random.default_rng(3)
    mask = ndi.gaussian_filter(rng.random((50, 60, 56)), 3) > 0.52
    mask[:, :, :4] = False
    mask[20:30, 0:8, 10:20] = True   # at the edge of the array
    for radius in (1, 3, 5):
        assert np.array_equal(open_by_ball(mask, radius), ndi.binary_opening(mask, ball(radius)))
        assert np.array_equal(dilate_by_ball(mask, radius), ndi.binary_dilation(mask, ball(radius)))
    assert not open_by_ball(np.zeros((5, 5, 5), bool), 2).any()


def test_recentring_that_goes_round_a_cycle_ends_in_the_same_body_from_either_click(monkeypatch):
    """Two bodies whose centres point at each other (the network's answer moves with its seed): clicks
    entering the cycle at either body end in one of them, the same for both, not in whichever the last
    pass happened to reach."""
    from spine_analysis.ct import vertebral_body as vb
    from spine_analysis.ct.body_model.config import BodyConfig

    ct = sitk.Image([64, 64, 64], sitk.sitkFloat32)
    a, b = np.array([28.0, 32.0, 32.0]), np.array([36.0, 32.0, 32.0])
    config = BodyConfig(patch_xyz=(33, 33, 33), recentre_passes=8, recentre_tolerance_mm=0.3)

    def body_at(ct, seed, method, model, config):
        """A cube around the other point of the pair: its centre is that point."""
        grid = patch_grid(np.asarray(seed, float), config.patch_xyz, config.spacing_mm)
        other = b if np.linalg.norm(seed - a) < np.linalg.norm(seed - b) else a
        centre = np.round(grid.TransformPhysicalPointToContinuousIndex([float(v) for v in other])).astype(int)[::-1]
        body = np.zeros(grid.GetSize()[::-1], bool)
        body[tuple(slice(c - 4, c + 5) for c in centre)] = True
        return grid, body

    monkeypatch.setattr(vb, "_body_at", body_at)
    ends = []
    for click in (a + [1.0, 2.0, 0.0], a + [2.0, 0.0, 0.0], b + [-1.0, 1.0, 1.0]):
        grid, body, _ = vb._recentred(ct, body_at(ct, click, "unet", None, config), "unet", None, config, 0.0)
        ends.append((grid.GetOrigin(), np.argwhere(body).mean(axis=0).round(3).tolist()))
    assert ends[0] == ends[1] == ends[2]
    assert np.allclose(np.array(ends[0][0]) + 16, a)            # the cycle's seed that sorts first
