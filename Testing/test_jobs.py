"""The JSON-lines entry point the Slicer modules run the engine through (spine_analysis.jobs)."""
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from spine_analysis import jobs
from spine_analysis.jobs import serve
from spine_analysis.ct.fracture_model import SHIPPED_DIR as FRACTURE_DIR
from spine_analysis.xray.landmark_model import SHIPPED_DIR
from spine_analysis.xray.cobb import analyse
from spine_analysis.xray.landmarks import LEVELS, SpineLandmarks
from spine_analysis.xray.report import OUTPUT_FILES
from spine_analysis.xray.synthetic import example_case

REPO = Path(__file__).resolve().parents[1]
needs_model = pytest.mark.skipif(not (SHIPPED_DIR / "landmarks.pt").exists(), reason="no shipped weights")


def _answers(*requests: str) -> list[dict]:
    out = io.StringIO()
    serve(io.StringIO("".join(line + "\n" for line in requests)), out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture(scope="module")
def radiograph(tmp_path_factory):
    """The synthetic example saved as Slicer saves a radiograph for the job (pixel = IJK), with its truth."""
    pixels, truth, _ = example_case()
    path = tmp_path_factory.mktemp("job") / "input.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(pixels.astype(np.float32)), str(path))
    return path, truth


def test_bad_requests_get_one_error_line_each():
    answers = _answers("not json", '{"job": "paint"}', "[1, 2]", '{"job": "cobb"}',
                       '{"image": "/no/such/file.png"}')
    assert [a["status"] for a in answers if a["status"] != "progress"] == ["error"] * 5
    messages = [a["message"] for a in answers if a["status"] == "error"]
    assert "one line of JSON" in messages[0] and "unknown job 'paint'" in messages[1]
    assert "JSON object" in messages[2] and "'image'" in messages[3] and "file not found" in messages[4]


@needs_model
def test_cobb_job_reports_progress_then_the_measurement_and_keeps_the_model(radiograph):
    """A request with an image and no job is a Cobb measurement; the second one reuses the loaded model."""
    path, truth = radiograph
    request = json.dumps({"image": str(path)})
    answers = _answers(request, request)
    finals = [i for i, a in enumerate(answers) if a["status"] != "progress"]
    assert len(finals) == 2 and all(answers[i]["status"] == "done" for i in finals)
    progress = [a["fraction"] for a in answers[:finals[0]]]
    assert progress == sorted(progress) and len(progress) >= 3
    first, second = answers[finals[0]], answers[finals[1]]
    landmarks = SpineLandmarks.from_dict(first["landmarks"])
    assert landmarks.levels == LEVELS and first["flags"] == first["quality_flags"] == []
    spacing = np.median(np.linalg.norm(np.diff(truth.centres, axis=0), axis=1))
    assert np.linalg.norm(landmarks.centres - truth.centres, axis=1).max() < 0.1 * spacing
    expected = analyse(truth, 2300).largest
    assert first["curves"][0]["upper_end_vertebra"] == expected.upper_end
    assert abs(first["curves"][0]["angle_deg"] - expected.angle_deg) < 5
    assert first["spine_check"]["passed"] and not first["forced"] and first["outputs"] == {}
    assert first["timings_s"]["model_load"] > 0 and second["timings_s"]["model_load"] == 0
    assert second["landmarks"] == first["landmarks"] and "settings" in first["landmarks_from"]


@needs_model
def test_cobb_job_refuses_noise_unless_forced_and_then_states_no_severity(tmp_path):
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1200, 500), dtype=np.uint8)).save(noise)
    out = tmp_path / "out"
    answers = _answers(json.dumps({"image": str(noise), "out_dir": str(out)}),
                       json.dumps({"image": str(noise), "force": True, "out_dir": str(out)}))
    refused, forced = [a for a in answers if a["status"] != "progress"]
    assert refused["status"] == "error" and refused["code"] == "not_spine"
    assert "does not look like an AP spine radiograph" in refused["message"]
    assert forced["status"] == "done" and forced["forced"] and not forced["spine_check"]["passed"]
    assert forced["overall_severity"].startswith("not stated")
    assert all(c["severity"].startswith("not stated") for c in forced["curves"])
    assert sorted(Path(p).name for p in forced["outputs"].values()) == sorted(OUTPUT_FILES)
    assert json.loads((out / "report.json").read_text())["forced"]


@needs_model
def test_the_server_prints_nothing_but_json_lines_and_ends_with_its_input(radiograph):
    path, _ = radiograph
    requests = json.dumps({"image": str(path)}) + "\n" + '{"job": "paint"}\n'
    for command in (["-m", "spine_analysis.jobs"], ["-m", "spine_analysis", "serve"]):
        done = subprocess.run([sys.executable, *command], input=requests, text=True,
                              capture_output=True, cwd=REPO, timeout=300)
        assert done.returncode == 0
        answers = [json.loads(line) for line in done.stdout.splitlines()]
        assert [a["status"] for a in answers if a["status"] != "progress"] == ["done", "error"]


def test_an_internal_error_is_answered_and_the_runner_keeps_serving(monkeypatch):
    """A bug in a job (not a user's error) still gets one error line, and the next request runs."""
    def broken(self, request, emit):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(jobs.JobRunner, "_cobb", broken)
    answers = _answers('{"image": "x"}', '{"job": "paint"}')
    assert [a["status"] for a in answers] == ["error", "error"]
    assert "internal error (ZeroDivisionError" in answers[0]["message"] and "unknown job" in answers[1]["message"]


def test_vertebral_body_job_writes_the_mask_and_measure_centra_re_measures_it(tmp_path):
    from ct_phantom import MARROW_HU, phantom_ct

    ct_path, out = tmp_path / "ct.nrrd", tmp_path / "mask.nrrd"
    sitk.WriteImage(phantom_ct(oblique_deg=10), str(ct_path))
    request = {"job": "vertebral_body", "ct": str(ct_path), "seeds": [[0, 0, 0]], "coordinate_system": "ras",
               "method": "classical", "levels": ["L3"], "out": str(out)}
    runner, answers = jobs.JobRunner(), []
    runner.handle(request, answers.append)
    assert answers[0]["status"] == "progress" and answers[-1]["status"] == "done", answers[-1]
    vertebra = answers[-1]["vertebrae"][0]
    assert vertebra["level"] == "L3" and abs(vertebra["hu_mean"] - MARROW_HU) < 15
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert set(np.unique(mask)) == {0, 1} and answers[-1]["model"] == "classical"

    answers.clear()
    runner.handle({"job": "measure_centra", "ct": str(ct_path), "labels": str(out), "names": {"1": "L3"}},
                  answers.append)
    measured = answers[-1]["vertebrae"][0]
    assert measured["level"] == "L3" and measured["volume_ml"] == pytest.approx(vertebra["volume_ml"])

    answers.clear()
    runner.handle({**request, "seeds": [[0, 0, 900]], "out": str(tmp_path / "other.nrrd")}, answers.append)
    assert answers[-1]["status"] == "error" and "outside the CT volume" in answers[-1]["message"]
    assert not (tmp_path / "other.nrrd").exists()

    answers.clear()   # the Slicer module's shell setting: a thinner shell leaves a larger centrum
    runner.handle({**request, "shell_mm": 2.0, "out": str(tmp_path / "thin.nrrd")}, answers.append)
    thin = answers[-1]["vertebrae"][0]
    assert thin["shell_mm"] == 2.0 and thin["volume_ml"] > 1.1 * vertebra["volume_ml"]
    assert answers[-1]["slice_thickness_mm"] == pytest.approx(2.0) and answers[-1]["warnings"] == []
    answers.clear()
    runner.handle({**request, "shell_mm": "thick", "out": str(tmp_path / "bad.nrrd")}, answers.append)
    assert answers[-1]["status"] == "error" and "give a number of mm" in answers[-1]["message"]


@pytest.mark.skipif(not (FRACTURE_DIR / "fracture.pt").exists(), reason="no shipped fracture model")
def test_fracture_job_writes_its_outputs_and_moved_centroids_reuse_the_classifier(tmp_path, monkeypatch):
    from spine_analysis.ct import fracture
    from test_cli_fracture import _fractured_phantom

    ct_path, labels_path = _fractured_phantom(tmp_path)
    request = {"job": "fracture", "ct": str(ct_path), "labels": str(labels_path), "out_dir": str(tmp_path / "o")}
    runner, answers = jobs.JobRunner(), []
    runner.handle(request, answers.append)
    assert answers[-1]["status"] == "done", answers[-1]
    result = answers[-1]
    assert [r["level"] for r in result["vertebrae"]] == ["L2", "L3", "L4"]
    assert result["vertebrae"][1]["genant_grade"] == 3 and Path(result["probability"]).is_file()
    assert [key for key in result["patient"] if "call" in key] == ["call"]   # one call; the opinions by name
    assert result["patient"]["basis"] and set(result["patient"]["opinions"]) == {"classifier", "morphometry"}

    calls = []
    monkeypatch.setattr(fracture, "fracture_probabilities", lambda *a, **k: calls.append(a))
    answers.clear()
    moved = [{"level": "L3", "point": [0, 0, 2]}, {"level": "L2", "point": [0, 0, 32]}]   # RAS
    runner.handle({**request, "labels": None, "centroids": moved, "coordinate_system": "ras"}, answers.append)
    assert answers[-1]["status"] == "done", answers[-1]
    assert calls == [] and [r["level"] for r in answers[-1]["vertebrae"]] == ["L2", "L3"]
    answers.clear()
    runner.handle({**request, "labels": None, "centroids": [{"level": "L1", "point": [0, 0, 900]}]}, answers.append)
    assert answers[-1]["status"] == "error" and "outside the CT volume" in answers[-1]["message"]


@pytest.mark.parametrize("job", ["vertebral_body", "fracture"])
def test_a_ct_job_sending_frame_is_told_to_send_coordinate_system(tmp_path, job):
    """"frame" is the cobb job's frame number; the CT jobs' points say their "coordinate_system"."""
    request = {"job": job, "ct": str(tmp_path / "ct.nrrd"), "seeds": [[0, 0, 0]], "frame": "ras",
               "out": str(tmp_path / "m.nrrd"), "out_dir": str(tmp_path / "o")}
    answers = _answers(json.dumps(request))
    assert len(answers) == 1 and answers[0]["status"] == "error"
    assert "'coordinate_system'" in answers[0]["message"] and "\n" not in answers[0]["message"]
    assert list(tmp_path.iterdir()) == []
