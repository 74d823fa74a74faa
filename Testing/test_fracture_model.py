"""The fracture network's data, training samples, training command and shipped model."""
import json

import numpy as np
import pytest

from spine_analysis.ct.fracture_model.config import FractureConfig
from spine_analysis.ct.fracture_model.data import load_graded_scans, read_grades
from spine_analysis.ct.fracture_model.model import FRACTURED, NORMAL
from spine_analysis.ct.fracture_model.train import TrainSettings, training_sample
from spine_analysis.errors import SpineAnalysisError
from test_body_model import _verse_case
from test_cli import assert_ok, assert_one_error_line, run


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("verse")
    _verse_case(folder, "sub-a", 0)
    _verse_case(folder, "sub-b", 15)
    grades = folder / "grades.json"
    grades.write_text(json.dumps({"train": {"sub-a_22": 3, "sub-a_21": 0}, "test": {"sub-b_22": 0}}))
    return folder, grades


def test_grades_are_read_flat_or_grouped_and_bad_ones_refused(tmp_path, data):
    _, grades = data
    assert read_grades(grades) == {"sub-a_22": 3, "sub-a_21": 0, "sub-b_22": 0}
    (tmp_path / "flat.json").write_text('{"sub-x_20": 2}')
    assert read_grades(tmp_path / "flat.json") == {"sub-x_20": 2}
    (tmp_path / "bad.json").write_text('{"sub-x_20": 7}')
    with pytest.raises(SpineAnalysisError, match="grades are 0, 1, 2 or 3"):
        read_grades(tmp_path / "bad.json")


def test_samples_label_graded_fractures_and_simulated_ones_and_nothing_else(data):
    folder, grades = data
    cases = {c.scan.name: c for c in load_graded_scans(folder, grades, log=lambda line: None)}
    case = cases["sub-a"]
    assert [v.level for v in case.scan.vertebrae] == ["L2", "L3", "L4"] and case.grades == [0, 3, None]
    config, rng = FractureConfig(), np.random.default_rng(0)
    quiet = TrainSettings(fracture_chance=0.0, variation_chance=0.0, centre_jitter_mm=0.0, rotation_deg=0.0,
                          scale_range=(1.0, 1.0), coarse_chance=0.0)
    inputs, target = training_sample(case, 0, rng, config, quiet)       # L2 normal; its neighbour L3 graded 3
    assert inputs.shape == (1, *reversed(quiet.crop_xyz)) and target.shape == inputs.shape[1:]
    centre = target[:, target.shape[1] // 2, target.shape[2] // 2]      # the z column through the bodies
    assert NORMAL in centre and FRACTURED in centre
    heights = {label: int((centre == label).sum()) for label in (NORMAL, FRACTURED)}
    _, target = training_sample(cases["sub-b"], 1, rng, config, quiet)
    assert FRACTURED not in target
    always = TrainSettings(**{**quiet.__dict__, "fracture_chance": 1.0, "loss_range": (0.45, 0.45)})
    _, target = training_sample(cases["sub-b"], 1, rng, config, always)
    column = target[:, target.shape[1] // 2, target.shape[2] // 2]
    squeezed = int((column == FRACTURED).sum())
    assert 0 < squeezed < 0.75 * heights[NORMAL]                          # the simulated body lost height


def test_train_fracture_writes_a_loadable_model_and_folds(tmp_path, data):
    folder, grades = data
    out = tmp_path / "model"
    proc = run(tmp_path, "train-fracture", "--data", folder, "--grades", grades, "--out", out, "--epochs", "1",
               "--batches", "1", "--threads", "1", "--folds", "2", timeout=600)
    assert_ok(proc)
    assert {"config.json", "fracture.pt", "metadata.json"} <= {p.name for p in out.iterdir()}
    metadata = json.loads((out / "metadata.json").read_text())
    assert {(v["scan"], v["level"], v["grade"]) for v in metadata["training_vertebrae"]} >= {("sub-a", "L3", 3)}
    held = [json.loads((out / "folds" / f"fold{k}" / "held_out.json").read_text())["held_out_scans"] for k in (1, 2)]
    assert sorted(sum(held, [])) == ["sub-a", "sub-b"]
    from spine_analysis.ct.fracture_model.weights_io import load_model
    assert load_model(out / "folds" / "fold1")[0].config == FractureConfig()


def test_train_fracture_refuses_bad_folds_and_grades(tmp_path, data):
    folder, grades = data
    proc = run(tmp_path, "train-fracture", "--data", folder, "--out", tmp_path / "m", "--folds", "1")
    assert_one_error_line(proc, "--folds")
    (tmp_path / "g.json").write_text("[1, 2]")
    proc = run(tmp_path, "train-fracture", "--data", folder, "--grades", tmp_path / "g.json", "--out", tmp_path / "m")
    assert_one_error_line(proc, "grades JSON")
