"""Calibration of a classifier's scores (spine_analysis.ml.calibration) and a model folder's settings
changed after training (ml.bundle.update_settings)."""
import json

import numpy as np
import pytest
import torch
from scipy.special import expit, logit

from spine_analysis.ml.bundle import load_bundle, save_bundle, update_settings
from spine_analysis.ml.calibration import (brier_score, calibrate, expected_calibration_error, fit_platt,
                                           reliability_table)


def _scores_with_known_calibration(slope, intercept, n=20000, seed=0):
    """Raw scores whose true probability is sigmoid(slope * logit(score) + intercept), and outcomes drawn from it."""
    rng = np.random.default_rng(seed)
    scores = expit(rng.normal(-1.5, 1.2, n))
    truth = expit(slope * logit(scores) + intercept)
    return scores, rng.random(n) < truth


def test_platt_scaling_recovers_the_slope_and_intercept_the_outcomes_were_drawn_with():
    scores, outcomes = _scores_with_known_calibration(2.0, 1.5)
    slope, intercept = fit_platt(scores, outcomes)
    assert (slope, intercept) == pytest.approx((2.0, 1.5), abs=0.1)
    calibrated = calibrate(scores, slope, intercept)
    # the raw scores are too low for what happens; calibrated, the reliability table's columns agree
    assert expected_calibration_error(scores, outcomes) > 0.1
    assert expected_calibration_error(calibrated, outcomes) < 0.02
    assert brier_score(calibrated, outcomes) < brier_score(scores, outcomes)


def test_a_calibrated_score_keeps_its_rank_and_identity_scaling_keeps_it():
    scores = np.array([0.01, 0.2, 0.5, 0.9])
    assert calibrate(scores, 1.0, 0.0) == pytest.approx(scores, abs=1e-6)
    assert np.all(np.diff(calibrate(scores, 0.4, -1.0)) > 0)
    with pytest.raises(ValueError, match="both outcomes"):
        fit_platt(scores, [False] * 4)


def test_the_reliability_table_bins_cases_by_probability_and_counts_what_happened():
    rows = reliability_table([0.05, 0.05, 0.15, 0.6, 1.0], [False, True, False, True, True], edges=(0, 0.1, 0.5, 1))
    assert [(r.count, r.observed_rate) for r in rows] == [(2, 0.5), (1, 0.0), (2, 1.0)]
    assert rows[2].mean_probability == pytest.approx(0.8)


def test_settings_changed_after_training_renew_the_digest_and_say_why(tmp_path):
    save_bundle(tmp_path, {"threshold": 0.5}, {"w": torch.ones(2)}, {"trained": "today"}, "net.pt")
    update_settings(tmp_path, {"calibration": [0.8, -1.0], "threshold": 0.3}, "fitted on held-out folds")
    bundle = load_bundle(tmp_path, "net.pt", "test model")   # its digest matches: it loads
    assert bundle.config == {"threshold": 0.3, "calibration": [0.8, -1.0]}
    change, = json.loads((tmp_path / "metadata.json").read_text())["settings_changes"]
    assert change["note"] == "fitted on held-out folds" and change["digest"] == bundle.digest
