"""Cobb geometry against hand-built spines with known angles, and the AASCE rule on real labels."""
import numpy as np
import pytest
from conftest import aasce_dir, requires_aasce

from spine_analysis.xray.cobb import aasce_angles, analyse, clinical_curves, extended_endplate, severity
from spine_analysis.errors import LandmarkError
from spine_analysis.io.aasce import read_aasce_folder
from spine_analysis.xray.landmarks import SpineLandmarks
from spine_analysis.xray.synthetic import build_spine, mirror, scoliotic_tilts

SIZE = (900, 2300)


def tilted_pair(upper_deg: float, lower_deg: float) -> SpineLandmarks:
    """Two rectangular vertebrae whose endplates are tilted by the given angles (image frame,
    positive = right end lower)."""
    quads = []
    for centre_y, angle in ((100.0, upper_deg), (200.0, lower_deg)):
        a = np.radians(angle)
        across, down = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        c = np.array([300.0, centre_y])
        quads.append([c - 60 * across - 30 * down, c + 60 * across - 30 * down,
                      c - 60 * across + 30 * down, c + 60 * across + 30 * down])
    return SpineLandmarks(np.array(quads))


def test_straight_spine_has_no_curve_and_zero_angles():
    spine = build_spine(image_size=SIZE)
    result = analyse(spine, SIZE[1])
    assert result.curves == ()
    assert result.overall_severity == "none"
    np.testing.assert_allclose(result.aasce_angles, 0.0, atol=1e-6)


@pytest.mark.parametrize("upper, lower", [(10.0, -10.0), (-7.5, 15.0), (3.0, -30.0)])
def test_one_tilted_pair_gives_that_angle(upper, lower):
    result = analyse(tilted_pair(upper, lower), 400)
    assert len(result.curves) == 1
    curve = result.curves[0]
    assert curve.angle_deg == pytest.approx(abs(upper - lower), abs=1e-9)
    assert (curve.upper_end, curve.lower_end) == ("T1", "T2")
    assert result.aasce_angles[0] == pytest.approx(abs(upper - lower), abs=1e-5)


def test_s_curve_end_vertebrae_apex_convexity_and_severity():
    tilts = scoliotic_tilts([(4, 11, 35.0), (11, 15, -25.0)])
    spine = build_spine(tilts, image_size=SIZE)
    curves = {c.name: c for c in clinical_curves(spine)}
    mt, lumbar = curves["MT"], curves["TL/L"]
    assert mt.angle_deg == pytest.approx(35.0, abs=1e-6)
    assert (mt.upper_end, mt.lower_end) == ("T5", "T12")
    assert mt.apex in ("T8", "T9")
    # Convex to the image right = the patient's left on a standard AP view.
    assert mt.convexity == "left"
    assert mt.severity == "moderate"
    assert lumbar.angle_deg == pytest.approx(25.0, abs=1e-6)
    assert (lumbar.upper_end, lumbar.lower_end) == ("T12", "L4")
    assert lumbar.convexity == "right"
    assert lumbar.region == "lumbar"
    # The drawn endplates are the superior one of the upper and the inferior one of the lower EV.
    np.testing.assert_allclose(mt.upper_endplate, spine.points[4, [0, 1]])
    np.testing.assert_allclose(mt.lower_endplate, spine.points[11, [2, 3]])


def test_mirrored_spine_same_angles_opposite_convexity():
    tilts = scoliotic_tilts([(0, 4, 12.0), (4, 11, -40.0), (11, 16, 30.0)])
    spine = build_spine(tilts, image_size=SIZE)
    flipped = mirror(spine, SIZE[0])
    a, b = analyse(spine, SIZE[1]), analyse(flipped, SIZE[1])
    assert [c.angle_deg for c in a.curves] == pytest.approx([c.angle_deg for c in b.curves], abs=1e-9)
    assert [c.convexity for c in a.curves] == [{"left": "right", "right": "left"}[c.convexity]
                                               for c in b.curves]
    np.testing.assert_allclose(a.aasce_angles, b.aasce_angles, atol=1e-6)


def test_patient_right_on_image_right_swaps_convexity():
    spine = build_spine(scoliotic_tilts([(4, 11, 30.0)]), image_size=SIZE)
    assert analyse(spine, SIZE[1]).curves[0].convexity == "left"
    assert analyse(spine, SIZE[1], patient_right_on_image_left=False).curves[0].convexity == "right"


def test_cropped_spine_names_the_levels_it_covers():
    tilts = scoliotic_tilts([(2, 8, 28.0)], n=12)
    spine = build_spine(tilts, first_level="T3", image_size=SIZE)
    assert spine.levels[0] == "T3" and spine.levels[-1] == "L2"
    curve = analyse(spine, SIZE[1]).curves[0]
    assert (curve.upper_end, curve.lower_end) == ("T5", "T11")
    assert curve.angle_deg == pytest.approx(28.0, abs=1e-6)
    assert len(aasce_angles(spine, SIZE[1])) == 3


def test_small_wiggles_are_not_curves():
    tilts = np.array([0, 2, -1, 2.5, 0, -2, 1, 0, 2, -1, 0, 1, -2, 0, 1, 0, -1], float)
    assert clinical_curves(build_spine(tilts, image_size=SIZE)) == ()


@pytest.mark.parametrize("angle, band", [(0, "none"), (9.99, "none"), (10, "mild"), (24.9, "mild"),
                                         (25, "moderate"), (40, "moderate"), (40.01, "severe")])
def test_severity_bands(angle, band):
    assert severity(angle) == band


def test_endplate_lines_are_drawn_past_both_ends_left_end_first():
    # An endplate 40 px wide tilted down to the left: drawn its own width further at each end.
    np.testing.assert_allclose(extended_endplate([(140, 210), (100, 220)]), [(60, 230), (180, 200)])
    np.testing.assert_allclose(extended_endplate([(0, 0), (10, 0)], extension=0.5), [(-5, 0), (15, 0)])


def test_malformed_landmarks_raise_clear_value_errors():
    good = build_spine(image_size=SIZE).points
    with pytest.raises(LandmarkError, match="multiple of 4"):
        SpineLandmarks(good.reshape(-1, 2)[:-1])
    with pytest.raises(LandmarkError, match="NaN"):
        bad = good.copy()
        bad[3, 1, 0] = np.nan
        SpineLandmarks(bad)
    with pytest.raises(LandmarkError, match="T2 is degenerate"):
        bad = good.copy()
        bad[1, :] = bad[1, 0]
        SpineLandmarks(bad)
    with pytest.raises(LandmarkError, match="past L5"):
        SpineLandmarks(good, first_level="T3")
    with pytest.raises(ValueError):
        SpineLandmarks(good[:1])


@requires_aasce
def test_aasce_rule_reproduces_all_481_training_angles():
    folder = read_aasce_folder(aasce_dir())
    errors = []
    for i in range(len(folder)):
        _, height = folder.image_size(i)
        errors.append(np.abs(aasce_angles(folder.landmarks_px(i), height) - folder.angles[i]))
    errors = np.array(errors)
    assert len(errors) == 481
    assert errors.max() <= 0.05, f"worst image {errors.max(1).argmax()}: {errors.max():.4f}°"
