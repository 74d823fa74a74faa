"""Accuracy measures of spine_analysis.xray.evaluation on tiny arrays whose answers are worked out by hand."""
import numpy as np
import pytest

from spine_analysis.xray.cobb import AASCE_NAMES
from spine_analysis.xray.evaluation import AngleEvaluation, evaluate_angles, landmark_nmse, smape

# Three images of three angles each. Worked out by hand:
#   image 0: |err| = (2, 2, 0), sum 4;   sum(pred + truth) = 22 + 38 + 60 = 120  -> 4/120
#   image 1: all angles 0 in both (0/0 counts as exact)                          -> 0
#   image 2: |err| = (5, 0, 6), sum 11;  sum(pred + truth) = 5 + 0 + 6 = 11      -> 11/11
PRED = np.array([[10.0, 20.0, 30.0],
                 [0.0, 0.0, 0.0],
                 [0.0, 0.0, 6.0]])
TRUTH = np.array([[12.0, 18.0, 30.0],
                  [0.0, 0.0, 0.0],
                  [5.0, 0.0, 0.0]])
SMAPE = 100 * (4 / 120 + 0 + 1) / 3
# Per angle, the mean over images of |p - t| / (p + t), 0/0 = 0:
#   angle 1: 2/22, 0, 5/5      angle 2: 2/38, 0, 0/0      angle 3: 0/60, 0, 6/6
SMAPE_PER_ANGLE = (100 * (2 / 22 + 0 + 1) / 3, 100 * (2 / 38) / 3, 100 * (0 + 0 + 1) / 3)
MAE = ((2 + 0 + 5) / 3, (2 + 0 + 0) / 3, (0 + 0 + 6) / 3)
# All nine absolute errors: 2, 2, 0, 0, 0, 0, 5, 0, 6 -> sorted 0,0,0,0,0,2,2,5,6 -> median 0.
MEDIAN = 0.0
# Largest error per image: 2, 0, 6 -> two of three images within 5 degrees.
SHARE_5 = 2 / 3


# --------------------------------------------------------------------------- SMAPE

def test_smape_single_image_by_hand():
    assert smape([[10, 20, 30]], [[12, 18, 30]]) == pytest.approx(100 * 4 / 120)


def test_smape_exact_prediction_is_zero():
    assert smape(TRUTH, TRUTH) == 0.0


def test_smape_zero_over_zero_image_counts_as_exact():
    """An image whose predicted and true angles are all 0 has error 0, not NaN."""
    value = smape([[0, 0, 0]], [[0, 0, 0]])
    assert value == 0.0
    assert np.isfinite(value)
    # ... and it still counts as an image in the mean.
    assert smape([[0, 0, 0], [0, 0, 10]], [[0, 0, 0], [0, 0, 0]]) == pytest.approx(50.0)


def test_smape_over_several_images_by_hand():
    assert smape(PRED, TRUTH) == pytest.approx(SMAPE)


def test_smape_is_symmetric_and_bounded():
    assert smape(PRED, TRUTH) == pytest.approx(smape(TRUTH, PRED))
    # Predicting 0 everywhere for a non-zero truth is the worst case: 100 %.
    assert smape(np.zeros((2, 3)), [[10, 5, 1], [40, 0, 3]]) == pytest.approx(100.0)


def test_smape_sums_angles_before_dividing():
    """The challenge divides per image (sum of errors / sum of angles), not per angle."""
    pred, truth = [[1.0, 50.0, 0.0]], [[3.0, 50.0, 0.0]]
    assert smape(pred, truth) == pytest.approx(100 * 2 / 104)
    assert smape(pred, truth) != pytest.approx(100 * np.mean([2 / 4, 0, 0]))


# --------------------------------------------------------------------------- evaluate_angles

def test_evaluate_angles_all_measures_by_hand():
    result = evaluate_angles(PRED, TRUTH)
    assert isinstance(result, AngleEvaluation)
    assert result.images == 3
    assert result.smape == pytest.approx(SMAPE)
    assert result.smape_per_angle == pytest.approx(SMAPE_PER_ANGLE)
    assert result.mae_deg == pytest.approx(MAE)
    assert result.median_abs_error_deg == pytest.approx(MEDIAN)
    assert result.share_within_5deg == pytest.approx(SHARE_5)
    assert result.landmark_nmse is None


def test_per_angle_smape_zero_over_zero_is_exact():
    result = evaluate_angles([[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]])
    assert result.smape_per_angle == (0.0, 0.0, 0.0)
    assert result.smape == 0.0
    assert result.share_within_5deg == 1.0


def test_share_within_5deg_includes_exactly_5():
    truth = np.array([[20.0, 10.0, 5.0], [20.0, 10.0, 5.0], [20.0, 10.0, 5.0]])
    pred = truth + np.array([[5.0, 0, 0], [0, -5.0, 0], [0, 0, 5.01]])
    assert evaluate_angles(pred, truth).share_within_5deg == pytest.approx(2 / 3)


def test_mae_is_absolute():
    """Over- and under-estimates do not cancel."""
    result = evaluate_angles([[12.0, 8.0, 0.0], [8.0, 12.0, 0.0]], [[10.0, 10.0, 0.0], [10.0, 10.0, 0.0]])
    assert result.mae_deg == pytest.approx((2.0, 2.0, 0.0))


def test_evaluate_angles_with_landmarks_gives_nmse():
    pred_rows = np.array([[0.1, 0.2, 0.3, 0.4]])
    truth_rows = np.array([[0.1, 0.5, 0.3, 0.0]])
    result = evaluate_angles([[10.0, 5.0, 1.0]], [[10.0, 5.0, 1.0]], pred_rows, truth_rows)
    assert result.landmark_nmse == pytest.approx(0.125)
    # Only one set of rows: no landmark figure.
    assert evaluate_angles([[10.0, 5.0, 1.0]], [[10.0, 5.0, 1.0]], pred_rows, None).landmark_nmse is None


def test_to_dict_and_lines():
    result = evaluate_angles(PRED, TRUTH, np.zeros((3, 4)), np.full((3, 4), 0.1))
    d = result.to_dict()
    assert d["images"] == 3
    assert d["smape_percent"] == pytest.approx(round(SMAPE, 3))
    assert list(d["smape_percent_per_angle"]) == list(AASCE_NAMES) == ["angle 1 (largest)", "angle 2", "angle 3"]
    assert d["smape_percent_per_angle"]["angle 1 (largest)"] == pytest.approx(round(SMAPE_PER_ANGLE[0], 3))
    assert d["mean_abs_error_deg"]["angle 3"] == pytest.approx(2.0)
    assert d["share_images_max_error_within_5deg"] == pytest.approx(round(SHARE_5, 4))
    assert d["landmark_nmse"] == pytest.approx(0.02)
    lines = result.lines()
    assert lines[0] == "images: 3"
    assert lines[1] == (f"SMAPE: {SMAPE:.2f} % (per angles.csv column: angle 1 (largest) {SMAPE_PER_ANGLE[0]:.2f}, "
                        f"angle 2 {SMAPE_PER_ANGLE[1]:.2f}, angle 3 {SMAPE_PER_ANGLE[2]:.2f})")
    assert lines[2].startswith("mean absolute error: angle 1 (largest) 2.33°, angle 2 0.67°, angle 3 2.00°")
    # The clinical curve names are not used for the AASCE columns.
    assert not any(name in line for line in lines for name in ("PT", "MT", "TL/L"))
    assert any(line.startswith("landmark NMSE:") for line in lines)
    assert not any("NMSE" in line for line in evaluate_angles(PRED, TRUTH).lines())


# --------------------------------------------------------------------------- landmark NMSE

def test_landmark_nmse_by_hand():
    # Two landmarks: x = (0.1, 0.2), y = (0.3, 0.4) against x = (0.1, 0.5), y = (0.3, 0.0).
    # Squared distances 0 and 0.3² + 0.4² = 0.25 -> mean 0.125.
    assert landmark_nmse([[0.1, 0.2, 0.3, 0.4]], [[0.1, 0.5, 0.3, 0.0]]) == pytest.approx(0.125)


def test_landmark_nmse_pairs_x_with_its_own_y():
    """Rows are all x then all y: a shift in x of landmark 0 and in y of landmark 1 are two landmarks."""
    truth = np.zeros((1, 4))
    pred = np.array([[0.3, 0.0, 0.0, 0.4]])   # landmark 0 moves 0.3 in x, landmark 1 moves 0.4 in y
    assert landmark_nmse(pred, truth) == pytest.approx((0.09 + 0.16) / 2)


def test_landmark_nmse_averages_over_images():
    truth = np.zeros((2, 4))
    pred = np.array([[0.0, 0.0, 0.0, 0.0], [0.2, 0.2, 0.0, 0.0]])
    # image 0: 0, 0; image 1: 0.04, 0.04 -> mean over 4 landmarks 0.02
    assert landmark_nmse(pred, truth) == pytest.approx(0.02)
    assert landmark_nmse(truth, truth) == 0.0


def test_landmark_nmse_of_aasce_sized_rows():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1, (3, 136))
    pred = truth.copy()
    pred[:, :68] += 0.01     # every landmark 0.01 to the right
    assert landmark_nmse(pred, truth) == pytest.approx(1e-4)


# --------------------------------------------------------------------------- shape errors

@pytest.mark.parametrize("pred, truth", [
    (np.zeros((2, 3)), np.zeros((3, 3))),     # different numbers of images
    (np.zeros((2, 2)), np.zeros((2, 2))),     # two angles per image
    (np.zeros((2, 4)), np.zeros((2, 4))),     # four angles per image
    (np.zeros(3), np.zeros(3)),               # one image as a flat vector
    (np.zeros((1, 2, 3)), np.zeros((1, 2, 3))),
])
def test_evaluate_angles_rejects_bad_shapes(pred, truth):
    with pytest.raises(ValueError, match="must have the same"):
        evaluate_angles(pred, truth)


def test_landmark_nmse_rejects_different_column_counts():
    with pytest.raises(ValueError):
        landmark_nmse(np.zeros((1, 136)), np.zeros((1, 134)))


def test_landmark_nmse_rejects_different_image_counts_above_one():
    with pytest.raises(ValueError):
        landmark_nmse(np.zeros((2, 136)), np.zeros((3, 136)))


def test_smape_rejects_one_row_against_many():
    with pytest.raises(ValueError):
        smape([[10.0, 20.0, 30.0]], [[10.0, 20.0, 30.0], [1.0, 2.0, 3.0]])


def test_landmark_nmse_rejects_one_row_against_many():
    with pytest.raises(ValueError):
        landmark_nmse(np.zeros((1, 136)), np.zeros((3, 136)))
