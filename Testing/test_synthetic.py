"""Synthetic spines must have exactly the angles they were built with, and their radiographs
must look enough like X-rays (bright bone, dark discs and air) for the landmark model and demos."""

import numpy as np
import pytest


from spine_analysis.xray.cobb import aasce_angles  # noqa: E402
from spine_analysis.xray.landmarks import LEVELS  # noqa: E402
from spine_analysis.xray.synthetic import (EXAMPLE_SIZE, build_spine, example_case, mirror,  # noqa: E402
                                      render_radiograph, scoliotic_tilts)

WIDTH, HEIGHT = EXAMPLE_SIZE


def endplate_angle(upper_edge: np.ndarray, lower_edge: np.ndarray) -> float:
    """Angle in degrees between two endplates given as (left corner, right corner)."""
    a, b = upper_edge[1] - upper_edge[0], lower_edge[1] - lower_edge[0]
    return float(np.degrees(np.arctan2(a[0] * b[1] - a[1] * b[0], a @ b)))


def test_straight_spine_has_horizontal_endplates_on_one_vertical():
    spine = build_spine()
    pts = spine.points
    assert spine.levels == LEVELS
    np.testing.assert_allclose(pts[:, 0, 1], pts[:, 1, 1], atol=1e-9)   # superior endplates
    np.testing.assert_allclose(pts[:, 2, 1], pts[:, 3, 1], atol=1e-9)   # inferior endplates
    np.testing.assert_allclose(spine.centres[:, 0], WIDTH / 2, atol=1e-9)
    np.testing.assert_allclose(aasce_angles(spine, HEIGHT), 0, atol=1e-6)


def test_straight_spine_is_sized_like_the_aasce_data():
    pts = build_spine().points
    widths = np.linalg.norm(pts[:, 1] - pts[:, 0], axis=1)
    heights = np.linalg.norm(pts[:, 2] - pts[:, 0], axis=1)
    assert 100 <= widths.min() and widths.max() <= 200
    assert 55 <= heights.min() and heights.max() <= 115
    assert np.all(np.diff(widths) > 0) and np.all(np.diff(heights) > 0)   # growing towards L5
    assert np.all(pts[1:, 0, 1] > pts[:-1, 2, 1])                        # a disc below each vertebra
    assert pts[0, 0, 1] == pytest.approx(0.03 * HEIGHT)
    assert pts[-1, 2, 1] == pytest.approx(0.80 * HEIGHT)


@pytest.mark.parametrize("upper, lower, cobb", [(3, 10, 25.0), (5, 12, 40.0), (8, 15, -60.0), (0, 16, 33.0)])
def test_single_curve_has_the_requested_cobb_angle(upper, lower, cobb):
    spine = build_spine(scoliotic_tilts([(upper, lower, cobb)]))
    pts = spine.points
    assert aasce_angles(spine, HEIGHT)[0] == pytest.approx(abs(cobb), abs=1e-6)
    # Superior endplate of the upper end vertebra against the inferior endplate of the lower one.
    assert abs(endplate_angle(pts[upper, :2], pts[lower, 2:])) == pytest.approx(abs(cobb), abs=1e-9)


@pytest.mark.parametrize("cobb, convex_side", [(30.0, 1), (-30.0, -1)])
def test_positive_cobb_is_convex_to_the_image_right(cobb, convex_side):
    upper, lower = 4, 12
    centres = build_spine(scoliotic_tilts([(upper, lower, cobb)])).centres
    chord_x = np.interp(centres[upper:lower + 1, 1], centres[[upper, lower], 1], centres[[upper, lower], 0])
    offsets = centres[upper:lower + 1, 0] - chord_x
    assert np.sign(offsets[np.argmax(np.abs(offsets))]) == convex_side
    assert np.abs(offsets).max() > 20   # the column visibly bends


def test_positive_tilt_raises_the_right_end_of_the_vertebra():
    tilts = np.zeros(17)
    tilts[5] = 10.0
    quad = build_spine(tilts).points[5]
    assert quad[1, 1] < quad[0, 1]
    assert endplate_angle(np.array([[0.0, 0.0], [1.0, 0.0]]), quad[:2]) == pytest.approx(-10.0)


def test_s_curve_shares_its_end_vertebra():
    tilts = scoliotic_tilts([(4, 11, -35.0), (11, 15, 25.0)])
    assert tilts[4] - tilts[11] == pytest.approx(-35.0)
    assert tilts[11] - tilts[15] == pytest.approx(25.0)
    assert tilts.mean() == pytest.approx(0.0, abs=1e-12)   # balanced: the column ends above its start
    assert aasce_angles(build_spine(tilts), HEIGHT)[0] == pytest.approx(35.0, abs=1e-6)


@pytest.mark.parametrize("curves", [[(4, 11, 30.0), (9, 15, 20.0)], [(5, 5, 10.0)], [(10, 17, 10.0)]])
def test_scoliotic_tilts_rejects_impossible_curves(curves):
    with pytest.raises(ValueError):
        scoliotic_tilts(curves)


def test_build_spine_rejects_a_spine_that_leaves_the_image():
    with pytest.raises(ValueError, match="leaves"):
        build_spine(scoliotic_tilts([(0, 16, 80.0)]), image_size=(400, 2300))


def test_build_spine_names_a_cropped_spine():
    spine = build_spine(scoliotic_tilts([(1, 7, 20.0)], n=10), first_level="T3")
    assert spine.levels == LEVELS[2:12]
    with pytest.raises(ValueError):
        build_spine([0.0] * 5, n_vertebrae=6)


def test_mirror_keeps_angles_and_corner_order():
    spine = build_spine(scoliotic_tilts([(4, 11, -35.0), (11, 15, 25.0)]))
    flipped = mirror(spine, WIDTH)
    assert np.all(flipped.points[:, 1, 0] > flipped.points[:, 0, 0])   # still TL, TR, BL, BR
    np.testing.assert_allclose(aasce_angles(flipped, HEIGHT), aasce_angles(spine, HEIGHT), atol=1e-6)
    np.testing.assert_allclose(flipped.centres[:, 0], WIDTH - 1 - spine.centres[:, 0])
    np.testing.assert_allclose(mirror(flipped, WIDTH).points, spine.points)


@pytest.fixture(scope="module")
def example():
    return example_case(seed=3)


def test_render_is_a_deterministic_float_image(example):
    image, spine, _ = example
    assert image.shape == (HEIGHT, WIDTH) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1
    np.testing.assert_array_equal(render_radiograph(spine, EXAMPLE_SIZE, seed=3), image)
    assert not np.array_equal(render_radiograph(spine, EXAMPLE_SIZE, seed=4), image)


def window_mean(image, centre, half_size):
    (x, y), (hx, hy) = np.round(centre).astype(int), np.maximum(np.round(half_size).astype(int), 1)
    return float(image[y - hy:y + hy + 1, x - hx:x + hx + 1].mean())


def test_vertebral_bodies_are_brighter_than_discs_and_background(example):
    image, spine, _ = example
    pts = spine.points
    widths = np.linalg.norm(pts[:, 1] - pts[:, 0], axis=1)
    heights = np.linalg.norm(pts[:, 2] - pts[:, 0], axis=1)
    bodies = np.array([window_mean(image, c, (0.3 * w, 0.25 * h)) for c, w, h in zip(spine.centres, widths, heights)])
    for i in range(len(pts) - 1):
        below = (pts[i, 2] + pts[i, 3]) / 2
        above = (pts[i + 1, 0] + pts[i + 1, 1]) / 2
        gap = np.linalg.norm(above - below)
        disc = window_mean(image, (below + above) / 2, (0.2 * widths[i], 0.15 * gap))
        assert disc < min(bodies[i], bodies[i + 1]), f"disc below {spine.levels[i]}"
    beside = [window_mean(image, c + (side * 1.5 * w, 0), (0.2 * w, 0.2 * h))
              for c, w, h in zip(spine.centres, widths, heights) for side in (-1, 1)]
    assert bodies.mean() > np.mean(beside) + 0.1
    waist = int(spine.centres[LEVELS.index("L3"), 1])
    assert image[waist - 20:waist + 20, :40].mean() < 0.1   # air beside the waist is dark


def test_render_handles_a_cropped_mirrored_spine():
    spine = mirror(build_spine(scoliotic_tilts([(1, 7, 20.0)], n=10), first_level="T3",
                               image_size=(700, 1800)), 700)
    image = render_radiograph(spine, (700, 1800), seed=1)
    assert image.shape == (1800, 700)
    assert np.isfinite(image).all()


def test_example_case_is_an_aasce_sized_s_curve(example):
    image, spine, description = example
    assert 700 <= image.shape[1] <= 1100 and 2000 <= image.shape[0] <= 2600
    assert spine.levels == LEVELS
    assert 0 <= spine.flat[:, 0].min() and spine.flat[:, 0].max() < image.shape[1]
    # Framed like an AASCE radiograph: T1 near the top, L5 near the bottom, the pelvis cut off.
    assert 0.03 < spine.centres[0, 1] / HEIGHT < 0.08 and 0.86 < spine.centres[-1, 1] / HEIGHT < 0.93
    assert spine.flat[:, 1].max() < HEIGHT - 1
    assert aasce_angles(spine, image.shape[0])[0] == pytest.approx(35.0, abs=1e-6)
    assert "35°" in description and "25°" in description
