"""Quality flags on hand-built spines with one planted implausibility each."""
import numpy as np
import pytest

from spine_analysis.xray.landmarks import SpineLandmarks
from spine_analysis.xray.quality import quality_flags
from spine_analysis.xray.synthetic import build_spine, scoliotic_tilts

SIZE = (900, 2300)


@pytest.fixture
def spine() -> np.ndarray:
    return build_spine(scoliotic_tilts([(4, 11, 45.0), (11, 16, -30.0)]), image_size=SIZE).points.copy()


def codes(points, level=None):
    flags = quality_flags(SpineLandmarks(points))
    return {f.code for f in flags if level is None or level in f.levels}


def rotate(quad: np.ndarray, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = quad.mean(axis=0)
    return (quad - centre) @ r.T + centre


def test_a_plausible_scoliotic_spine_has_no_flags(spine):
    assert quality_flags(SpineLandmarks(spine)) == []


def test_vertebrae_reaching_outside_the_image_are_named_when_the_size_is_known(spine):
    assert quality_flags(SpineLandmarks(spine), SIZE) == []
    spine[16] += np.array([0.0, SIZE[1] - spine[16, :, 1].min() - 10])    # L5 pushed over the bottom edge
    flags = quality_flags(SpineLandmarks(spine), SIZE)
    assert [(f.code, f.levels) for f in flags if f.code == "outside"] == [("outside", ("L5",))]
    assert "outside" not in codes(spine)                                    # size unknown: not judged


def test_vertebrae_out_of_order(spine):
    spine[[6, 7]] = spine[[7, 6]]
    assert "order" in codes(spine, "T7")


def test_implausible_spacing(spine):
    spine[12:] += np.array([0.0, 300.0])           # a gap of several vertebrae below T12
    assert "spacing" in codes(spine, "T12")


def test_vertebra_off_the_column(spine):
    spine[8] += np.array([120.0, 0.0])
    assert "alignment" in codes(spine, "T9")


def test_vertebra_turned_against_its_neighbours(spine):
    spine[0] = rotate(spine[0], 45.0)
    assert "tilt" in codes(spine, "T1")


def test_crossed_and_degenerate_corners(spine):
    crossed = spine.copy()
    crossed[3] = crossed[3][[1, 0, 3, 2]]           # left and right corners swapped
    assert "crossed" in codes(crossed, "T4")
    small = spine.copy()
    small[10] = small[10].mean(axis=0) + (small[10] - small[10].mean(axis=0)) * 0.3
    assert "degenerate" in codes(small, "T11")


def test_tilt_helpers_read_the_drawn_tilts_and_turns():
    """One tilt rule for the Cobb rule, the quality flags and the model's correction."""
    from spine_analysis.xray.landmarks import midline_tilt_deg, neighbour_turns_deg, vertebra_midlines

    tilts = scoliotic_tilts([(2, 9, 30.0)])
    spine = build_spine(tilts)
    # The synthetic spine's tilt is positive with the right end up; the midline tilt with it down.
    np.testing.assert_allclose(midline_tilt_deg(spine.points), -tilts, atol=1e-9)
    np.testing.assert_allclose(neighbour_turns_deg(spine.points), np.abs(np.diff(tilts)), atol=1e-9)
    assert vertebra_midlines(spine.points).shape == (17, 2)
    square = np.array([[[0, 0], [10, 0], [0, 10], [10, 10]]], float)
    turned = np.array([[[10, 10], [0, 10], [10, 0], [0, 0]]], float)     # the same square upside down
    assert neighbour_turns_deg(np.concatenate([square, turned])) == pytest.approx([180.0])


def test_tilt_smoothing_takes_jitter_out_of_a_small_curve_and_keeps_a_straight_trend():
    """A 10° curve with ±2° of alternating per-vertebra error reads 14°; smoothed, most of the
    excess goes while the centres stay where they were; clean curves keep their angles."""
    from spine_analysis.xray.cobb import aasce_angles
    from spine_analysis.xray.landmarks import midline_tilt_deg, smooth_tilts

    truth = scoliotic_tilts([(3, 12, 10.0)])
    jitter = 2.0 * (-1.0) ** np.arange(17)
    noisy = build_spine(truth + jitter, image_size=SIZE).points
    largest = lambda points: aasce_angles(SpineLandmarks(points), SIZE[1])[0]   # noqa: E731
    assert largest(noisy) == pytest.approx(14.0, abs=0.01)
    smoothed = smooth_tilts(noisy, 0.1)
    assert 10.0 < largest(smoothed) < 12.6      # the alternating jitter kept at 1/(1 + 16 x 0.1)
    for curves in ([(3, 12, 10.0)], [(4, 11, 45.0), (11, 16, -30.0)]):
        clean = build_spine(scoliotic_tilts(curves), image_size=SIZE).points
        np.testing.assert_allclose(aasce_angles(SpineLandmarks(smooth_tilts(clean, 0.1)), SIZE[1]),
                                   aasce_angles(SpineLandmarks(clean), SIZE[1]), atol=0.25)
    np.testing.assert_allclose(smoothed.mean(axis=1), noisy.mean(axis=1), atol=1e-9)
    # A tilt changing linearly along the spine is no jitter: left as it is; strength 0 changes nothing.
    trend = build_spine(np.linspace(-8.0, 8.0, 17), image_size=SIZE).points
    np.testing.assert_allclose(midline_tilt_deg(smooth_tilts(trend, 0.1)), midline_tilt_deg(trend), atol=1e-9)
    assert np.array_equal(smooth_tilts(noisy, 0.0), noisy)
    # Corners given right before left (tilts near ±180°) are smoothed as the same spine, not turned over.
    mirrored = clean[:, [1, 0, 3, 2]]
    np.testing.assert_allclose(smooth_tilts(mirrored, 0.1)[:, [1, 0, 3, 2]], smooth_tilts(clean, 0.1), atol=1e-9)
