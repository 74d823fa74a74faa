"""End-to-end tests of the ``spine-analysis`` command line, run as ``python -m spine_analysis``.

Inputs are synthetic spines with known angles (``spine_analysis.xray.synthetic``) laid out like the
AASCE data; the landmark model is a tiny untrained network (the point is the plumbing, not the
accuracy). The real AASCE training folder, when present, checks that ``angles`` reproduces the
organisers' angles.csv.
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from spine_analysis import cli
from spine_analysis.xray import synthetic
from spine_analysis.xray.cobb import aasce_angles
from spine_analysis.io.landmark_files import read_landmarks, write_landmarks_csv, write_landmarks_json
from spine_analysis.datasets import aasce_dir
from spine_analysis.xray.report import SEVERITY_NOT_STATED
from spine_analysis.xray.landmarks import SpineLandmarks

REPO = Path(__file__).resolve().parents[1]
AASCE_DIR = aasce_dir()
HAS_AASCE = all((AASCE_DIR / name).is_file() for name in ("filenames.csv", "landmarks.csv", "angles.csv"))

SIZE = (400, 1000)     # (width, height) of the synthetic radiographs
ERROR_PREFIX = "spine-analysis: error:"


def _example_spine() -> SpineLandmarks:
    curves = [curve[:3] for curve in synthetic._EXAMPLE_CURVES]
    return synthetic.build_spine(synthetic.scoliotic_tilts(curves), image_size=SIZE)


# (file name, landmarks, AASCE angles (main, second, third), clinical PT/MT/TL-L), in filenames.csv
# order, which is deliberately not alphabetical; names carry spaces as the AASCE ones do.
CASES = [
    ("sunhl case 01 A AP.png", _example_spine(), (35.0, 10.0, 25.0), (10.0, 35.0, 25.0)),
    ("b single curve 02.png", synthetic.build_spine(synthetic.scoliotic_tilts([(2, 8, 20.0)]), image_size=SIZE),
     (20.0, 0.0, 0.0), (0.0, 20.0, 0.0)),
    ("c mirrored 03.png", synthetic.mirror(_example_spine(), SIZE[0]), (35.0, 10.0, 25.0), (10.0, 35.0, 25.0)),
    ("a straight 04.png", synthetic.build_spine(None, image_size=SIZE), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
]


# --------------------------------------------------------------------------- helpers

def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("SPINE_ANALYSIS_LANDMARK_WEIGHTS", None)   # only --weights decides which model runs
    env["OMP_NUM_THREADS"] = "1"                        # share the machine with other jobs
    return env


def run(cwd, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spine_analysis", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=_env(), timeout=timeout)


def assert_ok(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr


def assert_one_error_line(proc, *fragments) -> str:
    """Non-zero exit, no traceback and exactly one line on stderr: the error."""
    assert proc.returncode != 0, f"unexpected success:\n{proc.stdout}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1 and lines == errors, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def save_png(pixels: np.ndarray, path: Path) -> Path:
    Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path)
    return path


def make_aasce_folder(root: Path, cases=CASES, angles=True) -> Path:
    """images/, filenames.csv (CRLF, as the AASCE files), landmarks.csv (normalised) and angles.csv."""
    (root / "images").mkdir(parents=True)
    for seed, (name, landmarks, _, _) in enumerate(cases):
        save_png(synthetic.render_radiograph(landmarks, SIZE, seed=seed), root / "images" / name)
    (root / "filenames.csv").write_bytes("".join(f"{c[0]}\r\n" for c in cases).encode())
    rows = np.array([c[1].to_aasce_row(*SIZE) for c in cases])
    np.savetxt(root / "landmarks.csv", rows, fmt="%.10g", delimiter=",")
    if angles:
        np.savetxt(root / "angles.csv", [aasce_angles(c[1], SIZE[1]) for c in cases], fmt="%.6g", delimiter=",")
    return root


def load_rows(path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", ndmin=2)


@pytest.fixture(scope="module")
def aasce(tmp_path_factory) -> Path:
    return make_aasce_folder(tmp_path_factory.mktemp("aasce") / "train set")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny untrained landmark model. Its U-Nets are random; only its PCA shape models and level
    prior are fitted (to hand-built spines), so that the fallback shape is a spine rather than 17 points at (0, 0),
    which would end every run with "vertebra T1 is degenerate" before any file is written."""
    import torch

    from spine_analysis.xray.landmark_model.model import LandmarkConfig, LandmarkModel, local_frames, to_local
    from spine_analysis.xray.landmark_model.weights_io import save_model

    torch.manual_seed(0)
    config = LandmarkConfig(centre_features=(4, 4, 8, 8, 16, 4), corner_features=(4, 4, 8, 8, 16, 4))
    model = LandmarkModel(config)
    spines = [synthetic.build_spine(synthetic.scoliotic_tilts([(2 + i % 3, 9 + i % 4, float(cobb))]),
                                    image_size=SIZE).points
              for i, cobb in enumerate((10, -20, 30, -15, 25, 0, 5, -35, 18, -8, 12, 22, -28, 3))]
    scale = config.working_height / SIZE[1]
    gt = torch.tensor(np.array(spines) * scale, dtype=torch.float32)
    widths = torch.full((len(gt),), SIZE[0] * scale)
    centres = gt.mean(dim=2)
    model.centre_shape.fit((centres / widths[:, None, None]).reshape(len(gt), -1))
    normalised = centres / torch.tensor([SIZE[0] * scale, config.working_height])
    model.centre_prior.copy_(torch.stack([normalised.mean(0), normalised.std(0)]))
    model.corner_shape.fit(to_local(gt, centres, *local_frames(centres)).reshape(-1, 8))
    folder = tmp_path_factory.mktemp("model") / "tiny model"
    save_model(model, folder, {"trained": "test"})
    return folder


# --------------------------------------------------------------------------- help

def test_help_lists_commands(tmp_path):
    proc = run(tmp_path, "--help")
    assert_ok(proc)
    for command in ("cobb", "angles", "predict", "evaluate", "train-landmarks"):
        assert command in proc.stdout


def test_version(tmp_path):
    proc = run(tmp_path, "--version")
    assert_ok(proc)
    assert proc.stdout.strip() == "spine-analysis 0.1.0"


def test_the_command_line_package_runs_as_a_module_and_keeps_its_entry_points(tmp_path):
    """``python -m spine_analysis.cli`` works, and the console script's ``spine_analysis.cli:main`` is there."""
    from spine_analysis.cli import build_parser, main

    proc = subprocess.run([sys.executable, "-m", "spine_analysis.cli", "--version"], capture_output=True, text=True,
                          cwd=tmp_path, env=_env(), timeout=60)
    assert_ok(proc)
    assert proc.stdout.strip() == "spine-analysis 0.1.0"
    assert callable(main) and build_parser().prog == "spine-analysis"


@pytest.mark.parametrize("argv, seed", [
    (["--seed", "-17.9,195.0,-76.9"], [-17.9, 195.0, -76.9]),
    (["--seed=-17.9,195.0,-76.9"], [-17.9, 195.0, -76.9]),
    (["--see", "-17.9,195.0,-76.9"], [-17.9, 195.0, -76.9]),
    (["--seed", "-.5,1e2,-3"], [-0.5, 100.0, -3.0]),
])
def test_negative_seeds_are_values_in_every_form(argv, seed):
    """argparse alone takes "-17.9,..." after --seed for an option ("expected one argument")."""
    args = cli.build_parser().parse_args(["segment", "ct.nii.gz", *argv, "--out", "m.nii.gz"])
    assert args.seed == [seed]


def test_a_negative_option_like_word_is_still_refused(tmp_path):
    proc = run(tmp_path, "segment", "ct.nii.gz", "--seed", "0,0,0", "--out", "m.nii.gz", "-x")
    assert proc.returncode == 2 and "unrecognized arguments: -x" in proc.stderr


@pytest.mark.parametrize("command, options", [
    ("cobb", ["IMAGE", "--out-dir", "--weights", "--json", "--image-right-is-patient-right"]),
    ("angles", ["--aasce", "--out", "--mode", "aasce", "clinical", "--landmarks", "--image", "--json"]),
    ("predict", ["--aasce", "--out-dir", "--weights"]),
    ("evaluate", ["--aasce", "--pred", "--json"]),
    ("train-landmarks", ["--aasce", "--out", "--holdout", "--centre-epochs", "--corner-epochs", "--seed",
                         "--threads", "--max-images", "--shape-loss", "--reframe", "--end-epochs"]),
    ("train-landmark-ends", ["MODEL_DIR", "--aasce", "--out", "--epochs", "--seed", "--threads"]),
])
def test_subcommand_help(tmp_path, command, options):
    proc = run(tmp_path, command, "--help")
    assert_ok(proc)
    assert proc.stdout.startswith(f"usage: spine-analysis {command}")
    for option in options:
        assert option in proc.stdout, option


def test_angles_help_says_which_inputs_and_the_default_mode(tmp_path):
    proc = run(tmp_path, "angles", "--help")
    assert_ok(proc)
    text = " ".join(proc.stdout.split())                 # argparse wraps lines to the terminal width
    assert "[--aasce DIR | --landmarks FILE]" in text   # one or the other, in the usage line
    assert "Give exactly one of --aasce DIR (with --out FILE.csv)" in text
    assert "or --landmarks FILE (with --image IMAGE)" in text
    assert "where a region has no curve). Default: aasce." in text


def test_angles_refuses_both_inputs(tmp_path):
    proc = run(tmp_path, "angles", "--aasce", "folder", "--out", "a.csv", "--landmarks", "lm.csv", "--image", "x.png")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("argument --landmarks: not allowed with argument --aasce")
    assert not (tmp_path / "a.csv").exists()


@pytest.mark.parametrize("value, message", [("1.5", "1.5 is not between 0 and 1"), ("half", "'half' is not a number")])
def test_a_reframe_chance_outside_0_to_1_is_a_usage_error(tmp_path, value, message):
    proc = run(tmp_path, "train-landmarks", "--aasce", tmp_path, "--out", tmp_path / "model", "--reframe", value)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(f"argument --reframe: {message}")
    assert "Traceback" not in proc.stderr and not (tmp_path / "model").exists()


def test_an_end_network_for_a_folder_without_a_model_is_one_line(tmp_path):
    proc = run(tmp_path, "train-landmark-ends", tmp_path / "nothing", "--aasce", tmp_path, "--out", tmp_path / "new")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "no landmark model" in proc.stderr
    assert not (tmp_path / "new").exists()


def test_no_command_is_a_usage_error(tmp_path):
    proc = run(tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- angles

def test_angles_aasce_folder(tmp_path, aasce):
    out = tmp_path / "angles out.csv"
    proc = run(tmp_path, "angles", "--aasce", aasce, "--out", out)
    assert_ok(proc)
    assert f"{len(CASES)} images" in proc.stdout
    got = load_rows(out)
    assert got.shape == (len(CASES), 3)
    # One row per image in filenames.csv order, as cobb.aasce_angles gives from the labelled rows ...
    rows = load_rows(aasce / "landmarks.csv")
    expected = [aasce_angles(SpineLandmarks.from_aasce_row(row, *SIZE), SIZE[1]) for row in rows]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # ... and those are the angles the spines were built with.
    np.testing.assert_allclose(got, [c[2] for c in CASES], atol=0.01)


def test_angles_aasce_clinical_mode(tmp_path, aasce):
    out = tmp_path / "clinical.csv"
    proc = run(tmp_path, "angles", "--aasce", aasce, "--out", out, "--mode", "clinical")
    assert_ok(proc)
    assert "clinical" in proc.stdout
    got = load_rows(out)
    assert got.shape == (len(CASES), 3)
    np.testing.assert_allclose(got, [c[3] for c in CASES], atol=0.01)
    assert got[0, 1] == pytest.approx(35.0, abs=0.01)      # the main thoracic curve


@pytest.mark.parametrize("writer, suffix", [(write_landmarks_csv, ".csv"), (write_landmarks_json, ".json")])
def test_angles_one_case_json(tmp_path, writer, suffix):
    name, landmarks, aasce_expected, _ = CASES[0]
    image = save_png(synthetic.render_radiograph(landmarks, SIZE), tmp_path / "my radiograph.png")
    landmark_file = tmp_path / f"my landmarks{suffix}"
    writer(landmarks, landmark_file)
    proc = run(tmp_path, "angles", "--landmarks", landmark_file, "--image", image, "--json")
    assert_ok(proc)
    report = json.loads(proc.stdout)
    assert report["image_size_px"] == list(SIZE)
    assert report["landmarks_from"] == "provided landmarks"
    curves = {c["name"]: c for c in report["curves"]}
    assert set(curves) == {"MT", "TL/L", "PT"}
    assert curves["MT"]["angle_deg"] == pytest.approx(35.0, abs=0.01)
    assert (curves["MT"]["upper_end_vertebra"], curves["MT"]["lower_end_vertebra"]) == ("T5", "T12")
    assert curves["TL/L"]["angle_deg"] == pytest.approx(25.0, abs=0.01)
    assert curves["PT"]["angle_deg"] == pytest.approx(10.0, abs=0.01)
    assert list(report["aasce_angles_deg"].values()) == pytest.approx(aasce_expected, abs=0.01)
    assert not any(p.name.endswith("-cobb") for p in tmp_path.iterdir())   # angles writes no files


def test_angles_one_case_summary(tmp_path):
    name, landmarks, _, _ = CASES[0]
    save_png(synthetic.render_radiograph(landmarks, SIZE), tmp_path / "x.png")
    write_landmarks_csv(landmarks, tmp_path / "lm.csv")
    proc = run(tmp_path, "angles", "--landmarks", "lm.csv", "--image", "x.png")
    assert_ok(proc)
    assert proc.stdout.startswith("x.png: T1–L5")
    assert re.search(r"MT\s+35\.0°", proc.stdout)


# --------------------------------------------------------------------------- bad inputs

@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> Path:
    """A folder of inputs the command line must refuse, each with one error line."""
    root = tmp_path_factory.mktemp("bad")
    landmarks = CASES[0][1]
    save_png(synthetic.render_radiograph(landmarks, SIZE), root / "good.png")
    write_landmarks_csv(landmarks, root / "good.csv")
    (root / "notes.png").write_text("this is a text file, not a radiograph\n")
    (root / "notes.txt").write_text("this is a text file, not a radiograph\n")
    Image.fromarray(np.full((300, 200), 128, np.uint8)).save(root / "constant.png")
    volume = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 1000, (5, 100, 100)).astype(np.int16))
    sitk.WriteImage(volume, str(root / "volume.nrrd"))
    lines = (root / "good.csv").read_text().splitlines()
    level, corner, x, y = lines[5].split(",")
    (root / "nan.csv").write_text("\n".join(lines[:5] + [f"{level},{corner},nan,{y}"] + lines[6:]) + "\n")
    (root / "missing row.csv").write_text("\n".join(lines[:10] + lines[11:]) + "\n")
    (root / "extra column.csv").write_text("\n".join(lines[:7] + [lines[7] + ",1"] + lines[8:]) + "\n")
    (root / "twice.csv").write_text("\n".join(lines[:29] + [lines[25]] + lines[30:]) + "\n")   # T7 sup.-left again
    points = landmarks.points.reshape(-1, 2).tolist()
    (root / "67 points.json").write_text(json.dumps({"points": points[:-1]}))
    no_names = make_aasce_folder(root / "no filenames")
    (no_names / "filenames.csv").unlink()
    short = make_aasce_folder(root / "short labels", cases=CASES[:2])
    rows = load_rows(short / "landmarks.csv")
    np.savetxt(short / "landmarks.csv", rows[:1], fmt="%.10g", delimiter=",")
    missing_image = make_aasce_folder(root / "missing image", cases=CASES[:2])
    (missing_image / "images" / CASES[1][0]).unlink()
    return root


@pytest.mark.parametrize("args, fragments", [
    (["--landmarks", "good.csv", "--image", "does not exist.png"], ["does not exist.png", "not found"]),
    (["--landmarks", "does not exist.csv", "--image", "good.png"], ["does not exist.csv", "not found"]),
    (["--landmarks", "good.csv", "--image", "notes.png"], ["notes.png", "not a readable image"]),
    (["--landmarks", "good.csv", "--image", "notes.txt"], ["notes.txt", "not a readable image"]),
    (["--landmarks", "good.csv", "--image", "constant.png"], ["constant.png", "empty"]),
    (["--landmarks", "good.csv", "--image", "volume.nrrd"], ["volume.nrrd", "5 slices"]),
    (["--landmarks", "nan.csv", "--image", "good.png"], ["NaN"]),
    (["--landmarks", "missing row.csv", "--image", "good.png"], ["misses corners"]),
    (["--landmarks", "extra column.csv", "--image", "good.png"],
     ["extra column.csv line 8 has 5 columns, expected 4 (level,corner,x_px,y_px)"]),
    (["--landmarks", "twice.csv", "--image", "good.png"], ["T7 superior-left is given twice (lines 26 and 30)"]),
    (["--landmarks", "67 points.json", "--image", "good.png"], ["not a multiple of 4"]),
    (["--landmarks", "good.csv"], ["--landmarks FILE --image IMAGE"]),
    ([], ["give either --aasce DIR --out FILE, or --landmarks FILE --image IMAGE"]),
    (["--aasce", "no filenames", "--out", "a.csv"], ["no filenames.csv"]),
    (["--aasce", "not a folder", "--out", "a.csv"], ["not found"]),
    (["--aasce", "short labels", "--out", "a.csv"], ["landmarks.csv has 1 rows", "2 images"]),
    (["--aasce", "missing image", "--out", "a.csv"], [CASES[1][0], "not found"]),
    (["--aasce", "short labels"], ["--out"]),
])
def test_angles_bad_input_gives_one_error_line(bad_inputs, args, fragments):
    proc = run(bad_inputs, "angles", *args)
    assert_one_error_line(proc, *fragments)
    assert not (bad_inputs / "a.csv").exists()


# --------------------------------------------------------------------------- cobb with a model

def test_cobb_refuses_what_its_model_cannot_see_a_spine_in(tmp_path, model_dir):
    """The untrained tiny model sees no vertebra anywhere: the image is refused, nothing written."""
    image = save_png(synthetic.render_radiograph(CASES[0][1], SIZE), tmp_path / "patient image.png")
    proc = run(tmp_path, "cobb", image.name, "--weights", model_dir, "--out-dir", "out dir")
    assert_one_error_line(proc, "patient image.png", "does not look like an AP spine radiograph", "--force")
    assert not (tmp_path / "out dir").exists()


def test_cobb_checks_the_output_folder_before_detecting(tmp_path, monkeypatch, capsys):
    from spine_analysis.io import atomic

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    def detector(weights):
        raise AssertionError("the model was loaded before the output folder was checked")

    image = save_png(synthetic.render_radiograph(CASES[0][1], SIZE), tmp_path / "scan.png")
    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(cli.xray, "_detector", detector)
    assert cli.main(["cobb", str(image), "--out-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.strip() == f"spine-analysis: error: cannot write into {tmp_path} (permission denied): " \
                            "choose another --out-dir"


def test_cobb_with_tiny_model(tmp_path, model_dir):
    """--force measures anyway; the report says the image did not pass and states no severity."""
    name, landmarks, _, _ = CASES[0]
    image = save_png(synthetic.render_radiograph(landmarks, SIZE), tmp_path / "patient image.png")
    before = image.read_bytes()
    proc = run(tmp_path, "cobb", image.name, "--weights", model_dir, "--out-dir", "out dir", "--json",
               "--progress", "--force")
    assert_ok(proc)
    progress = proc.stderr.splitlines()
    assert [line[:5] for line in progress] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    report = json.loads(proc.stdout)
    assert report["image_size_px"] == list(SIZE)
    assert report["source"] == "patient image.png"
    assert "trained test" in report["landmarks_from"]
    assert report["levels"] == "T1–L5"
    assert set(report["timings_s"]) >= {"model_load", "detection", "total"}
    assert len(report["aasce_angles_deg"]) == 3
    assert report["forced"] and not report["spine_check"]["passed"]
    assert report["overall_severity"] == SEVERITY_NOT_STATED

    out = tmp_path / "out dir"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.json", "report.csv", "landmarks.csv", "landmarks.json", "overlay.png"])
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["source"] == "patient image.png"
    detected = read_landmarks(out / "landmarks.json")
    assert detected.points.shape == (17, 4, 2)
    np.testing.assert_allclose(read_landmarks(out / "landmarks.csv").points, detected.points, atol=1e-3)
    with open(out / "landmarks.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f))) == 1 + 68
    with Image.open(out / "overlay.png") as overlay:
        assert overlay.size[0] == SIZE[0] and overlay.size[1] > SIZE[1]   # picture under a title banner
    assert image.read_bytes() == before


def test_cobb_refuses_to_overwrite_its_input(tmp_path, model_dir):
    folder = tmp_path / "input folder"
    folder.mkdir()
    image = save_png(synthetic.render_radiograph(CASES[0][1], SIZE), folder / "overlay.png")
    before = image.read_bytes()
    proc = run(tmp_path, "cobb", image, "--weights", model_dir, "--out-dir", folder)
    assert_one_error_line(proc, "refusing to overwrite")
    assert image.read_bytes() == before
    assert [p.name for p in folder.iterdir()] == ["overlay.png"]     # nothing else written or left


def test_cobb_missing_weights(tmp_path):
    save_png(synthetic.render_radiograph(CASES[3][1], SIZE), tmp_path / "scan.png")
    proc = run(tmp_path, "cobb", "scan.png", "--weights", "/nonexistent")
    assert_one_error_line(proc, "/nonexistent")
    assert not (tmp_path / "scan-cobb").exists()


@pytest.mark.parametrize("image, fragments", [
    ("missing.png", ["missing.png", "not found"]),
    ("notes.txt", ["notes.txt", "not a readable image"]),
    ("volume.nrrd", ["volume.nrrd", "3D volume"]),
])
def test_cobb_bad_image(bad_inputs, image, fragments):
    proc = run(bad_inputs, "cobb", image, "--weights", "/nonexistent")
    assert_one_error_line(proc, *fragments)
    assert not any(p.name.endswith("-cobb") for p in bad_inputs.iterdir())


# --------------------------------------------------------------------------- predict and evaluate

@pytest.fixture(scope="module")
def predictions(tmp_path_factory, aasce, model_dir) -> Path:
    out = tmp_path_factory.mktemp("pred") / "pred out"
    proc = run(out.parent, "predict", "--aasce", aasce, "--out-dir", out, "--weights", model_dir)
    assert_ok(proc)
    assert f"{len(CASES)} images" in proc.stdout
    return out


def test_predict_writes_aasce_layout(predictions):
    landmarks = load_rows(predictions / "landmarks.csv")
    angles = load_rows(predictions / "angles.csv")
    assert landmarks.shape == (len(CASES), 136)
    assert angles.shape == (len(CASES), 3)
    assert np.all(np.isfinite(landmarks)) and np.all(np.isfinite(angles))
    assert np.all(angles >= 0) and np.all(angles <= 180)
    # The written angles are the AASCE rule applied to the written landmarks.
    for row, got in zip(landmarks, angles):
        np.testing.assert_allclose(got, aasce_angles(SpineLandmarks.from_aasce_row(row, *SIZE), SIZE[1]),
                                   atol=1e-3)


def test_evaluate_prints_smape(aasce, predictions):
    proc = run(predictions, "evaluate", "--aasce", aasce, "--pred", predictions)
    assert_ok(proc)
    assert f"images: {len(CASES)}" in proc.stdout
    assert re.search(r"^SMAPE: \d+\.\d\d %", proc.stdout, re.M)
    assert "landmark NMSE:" in proc.stdout

    proc = run(predictions, "evaluate", "--aasce", aasce, "--pred", predictions, "--json")
    assert_ok(proc)
    figures = json.loads(proc.stdout)
    assert figures["images"] == len(CASES)
    assert 0 <= figures["smape_percent"] <= 100
    assert figures["landmark_nmse"] >= 0


def test_evaluate_perfect_predictions(tmp_path, aasce):
    pred = tmp_path / "perfect"
    pred.mkdir()
    shutil.copy(aasce / "angles.csv", pred / "angles.csv")
    shutil.copy(aasce / "landmarks.csv", pred / "landmarks.csv")
    proc = run(tmp_path, "evaluate", "--aasce", aasce, "--pred", pred, "--json")
    assert_ok(proc)
    figures = json.loads(proc.stdout)
    assert figures["smape_percent"] == 0.0
    assert figures["landmark_nmse"] == 0.0
    assert figures["share_images_max_error_within_5deg"] == 1.0


@pytest.fixture
def pred_folder(tmp_path, aasce):
    pred = tmp_path / "pred"
    pred.mkdir()
    shutil.copy(aasce / "angles.csv", pred / "angles.csv")
    return pred


def test_evaluate_without_predicted_angles(tmp_path, aasce):
    (tmp_path / "empty").mkdir()
    assert_one_error_line(run(tmp_path, "evaluate", "--aasce", aasce, "--pred", "empty"), "angles.csv")


def test_evaluate_with_too_few_predicted_rows(tmp_path, aasce, pred_folder):
    np.savetxt(pred_folder / "angles.csv", load_rows(aasce / "angles.csv")[:2], delimiter=",")
    proc = run(tmp_path, "evaluate", "--aasce", aasce, "--pred", pred_folder)
    assert_one_error_line(proc, "2 rows", f"{len(CASES)} images")


def test_evaluate_with_wrong_columns(tmp_path, aasce, pred_folder):
    np.savetxt(pred_folder / "angles.csv", load_rows(aasce / "angles.csv")[:, :2], delimiter=",")
    proc = run(tmp_path, "evaluate", "--aasce", aasce, "--pred", pred_folder)
    assert_one_error_line(proc, "2 columns, expected 3")


def test_evaluate_against_unlabelled_folder(tmp_path):
    unlabelled = make_aasce_folder(tmp_path / "unlabelled", cases=CASES[:1], angles=False)
    (tmp_path / "pred").mkdir()
    np.savetxt(tmp_path / "pred" / "angles.csv", [[1.0, 2.0, 3.0]], delimiter=",")
    proc = run(tmp_path, "evaluate", "--aasce", unlabelled, "--pred", "pred")
    assert_one_error_line(proc, "no angles.csv")


def test_evaluate_with_wrong_number_of_predicted_landmark_rows(tmp_path, aasce, pred_folder):
    np.savetxt(pred_folder / "landmarks.csv", load_rows(aasce / "landmarks.csv")[:2], delimiter=",")
    proc = run(tmp_path, "evaluate", "--aasce", aasce, "--pred", pred_folder)
    assert_one_error_line(proc, "landmarks.csv")


def test_predict_does_not_overwrite_the_labels(tmp_path, aasce, monkeypatch, capsys):
    folder = shutil.copytree(aasce, tmp_path / "labelled")
    before = {name: (folder / name).read_bytes() for name in ("landmarks.csv", "angles.csv")}

    class FakeDetector:     # no torch needed: the point is what predict writes where
        def detect(self, pixels):
            return SimpleNamespace(landmarks=synthetic.build_spine(None, image_size=SIZE), seconds=0.0)

    monkeypatch.setattr(cli.xray, "_detector", lambda weights: FakeDetector())
    code = cli.main(["predict", "--aasce", str(folder), "--out-dir", str(folder)])
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert code != 0


# --------------------------------------------------------------------------- the real AASCE data

@pytest.mark.skipif(not HAS_AASCE, reason=f"AASCE data not found at {AASCE_DIR} "
                                          "(set SPINE_AASCE_DIR to a folder with filenames.csv, "
                                          "landmarks.csv and angles.csv)")
def test_angles_reproduce_the_aasce_angles_csv(tmp_path):
    """Acceptance criterion: the AASCE rule from the labelled landmarks gives the organisers'
    angles.csv within 0.05° on every image."""
    out = tmp_path / "angles.csv"
    proc = run(tmp_path, "angles", "--aasce", AASCE_DIR, "--out", out)
    assert_ok(proc)
    got, truth = load_rows(out), load_rows(AASCE_DIR / "angles.csv")
    names = [line for line in (AASCE_DIR / "filenames.csv").read_text(encoding="utf-8-sig").splitlines()
             if line.strip()]
    assert got.shape == truth.shape == (len(names), 3)
    if AASCE_DIR.name == "train" and "aasce16" in str(AASCE_DIR):
        assert len(got) == 481
    worst = np.abs(got - truth).max(axis=1)
    bad = [(names[i], got[i].round(3).tolist(), truth[i].tolist()) for i in np.flatnonzero(worst > 0.05)]
    assert not bad, f"{len(bad)} images differ by more than 0.05°: {bad[:5]}"
