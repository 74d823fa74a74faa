"""The Cobb report and its five output files, on the synthetic example case whose curves are known."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import spine_analysis.xray.report as report_module
from spine_analysis import __version__
from spine_analysis.xray import synthetic
from spine_analysis.xray.cobb import analyse
from spine_analysis.errors import SpineAnalysisError
from spine_analysis.io.landmark_files import read_landmarks
from spine_analysis.xray.report import OUTPUT_FILES, make_report, write_cobb_outputs, write_report_files

# The example case: (name, angle, upper end, lower end, apex, convexity in patient terms).
EXPECTED_CURVES = [("MT", 35.0, "T5", "T12", "T9", "right"),
                   ("TL/L", 25.0, "T12", "L4", "L2", "left"),
                   ("PT", 10.0, "T1", "T5", "T3", "left")]


@pytest.fixture(scope="module")
def case():
    image, landmarks, description = synthetic.example_case()
    height, width = image.shape
    result = analyse(landmarks, height)
    return image, landmarks, result, (width, height)


@pytest.fixture
def report(case):
    image, landmarks, result, size = case
    return make_report(result, "case 1.png", size)


def snapshot(folder: Path) -> dict:
    """Every file below ``folder`` (hidden ones included) with its bytes."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def fail(*args, **kwargs):
    raise OSError("simulated failure: disk full")


# --------------------------------------------------------------------------- the report object

def test_make_report_holds_result_and_flags(case, report):
    image, landmarks, result, size = case
    assert report.image_size == size == (900, 2300)
    assert report.landmarks is landmarks
    assert report.flags == []                        # a hand-built spine is plausible
    assert report.model is None and report.edited is False
    d = report.to_dict()
    assert d["software"] == f"spine-analysis {__version__}"
    assert d["landmarks_from"] == "provided landmarks"
    assert d["image_size_px"] == [900, 2300]
    assert d["pixel_spacing_mm"] is None
    summary = report.summary()
    assert summary.startswith("case 1.png: T1–L5")
    assert "MT" in summary and "35.0°" in summary
    assert ("  AASCE challenge rule (angles.csv order): angle 1 (largest) 35.0°, angle 2 10.0°, angle 3 25.0°"
            in summary.splitlines())
    assert "AASCE PT" not in summary and "AASCE MT" not in summary


def test_summary_columns_line_up_with_long_curve_names():
    """Four curves, two of them thoracolumbar/lumbar, so one is named "TL/L (2)" (8 characters):
    every column of the curve rows still starts at the same place."""
    tilts = synthetic.scoliotic_tilts([(2, 6, 12.0), (6, 11, -45.0), (11, 13, 8.0), (13, 16, -22.0)])
    spine = synthetic.build_spine(tilts, image_size=(900, 2300))
    rows = make_report(analyse(spine, 2300), "x.png", (900, 2300)).summary().splitlines()[1:5]
    assert rows == ["  MT        45.0°  T7–T12, apex T10, convex to the patient's right, severe",
                    "  TL/L      22.0°  L2–L5,  apex L4,  convex to the patient's right, mild",
                    "  PT        12.0°  T3–T7,  apex T5,  convex to the patient's left,  mild",
                    "  TL/L (2)   8.0°  T12–L2, apex L1,  convex to the patient's left,  none"]
    for word in ("°", "apex", "convex"):
        assert len({row.index(word) for row in rows}) == 1, word
    assert len({len(row) - len(row.split()[-1]) for row in rows}) == 1          # the severity column


def test_summary_without_curves(case):
    image, landmarks, result, size = case
    straight = analyse(synthetic.build_spine(np.zeros(17), image_size=size), size[1])
    lines = make_report(straight, "straight.png", size).summary().splitlines()
    assert lines[1] == "no curve of 5° or more"
    assert lines[2] == "  AASCE challenge rule (angles.csv order): angle 1 (largest) 0.0°, angle 2 0.0°, angle 3 0.0°"


def test_make_report_options(case):
    image, landmarks, result, size = case
    r = make_report(result, "x.png", [900.0, 2300.0], model="model v1", timings_s={"detection": 1.23456},
                    note="a note", spacing_mm=(0.2, 0.25), edited=True)
    d = r.to_dict()
    assert d["image_size_px"] == [900, 2300]
    assert d["landmarks_from"] == "model v1"
    assert d["timings_s"] == {"detection": 1.235}
    assert d["note"] == "a note"
    assert d["pixel_spacing_mm"] == [0.2, 0.25]
    assert d["landmarks_edited"] is True


# --------------------------------------------------------------------------- the five files

def test_write_report_files_all_five_parse(tmp_path, case, report):
    image, landmarks, result, size = case
    out = tmp_path / "out dir"
    paths = write_report_files(out, image, report)
    assert set(paths) == set(OUTPUT_FILES)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)   # no staging folder left
    for name, path in paths.items():
        assert path == out / name and path.is_file() and path.stat().st_size > 0

    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["source"] == "case 1.png"
    assert data["levels"] == "T1–L5"
    assert data["landmarks_edited"] is False
    curves = data["curves"]
    assert [c["name"] for c in curves] == [c[0] for c in EXPECTED_CURVES]
    for got, (name, angle, upper, lower, apex, convexity) in zip(curves, EXPECTED_CURVES):
        assert got["angle_deg"] == pytest.approx(angle, abs=0.01)
        assert (got["upper_end_vertebra"], got["lower_end_vertebra"]) == (upper, lower)
        assert got["apex"] == apex
        assert got["convexity"] == convexity
        assert np.asarray(got["upper_endplate_px"]).shape == (2, 2)
        assert np.asarray(got["lower_endplate_px"]).shape == (2, 2)
    assert data["largest_cobb_deg"] == pytest.approx(35.0, abs=0.01)
    assert data["overall_severity"] == "moderate"
    assert data["aasce_angles_deg"] == pytest.approx(
        {"angle 1 (largest)": 35.0, "angle 2": 10.0, "angle 3": 25.0}, abs=0.01)
    assert "not the clinical" in data["aasce_angles_note"]
    assert data["quality_flags"] == []

    with open(out / "report.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["curve", "region", "angle_deg", "upper_end_vertebra", "lower_end_vertebra",
                       "apex", "convexity", "severity"]
    assert rows[1][:5] == ["MT", "main thoracic", "35.00", "T5", "T12"]
    assert [r[0] for r in rows[1:]] == ["MT", "TL/L", "PT",
                                        "AASCE angle 1 (largest)", "AASCE angle 2", "AASCE angle 3"]
    assert [float(r[2]) for r in rows[4:]] == pytest.approx([35.0, 10.0, 25.0], abs=0.01)

    for name in ("landmarks.csv", "landmarks.json"):
        back = read_landmarks(out / name)
        assert back.first_level == "T1" and back.levels == landmarks.levels
        np.testing.assert_allclose(back.points, landmarks.points, atol=1e-3)
    with open(out / "landmarks.csv", newline="", encoding="utf-8") as f:
        assert len(list(csv.reader(f))) == 1 + 68

    with Image.open(out / "overlay.png") as overlay:
        assert overlay.format == "PNG"
        assert overlay.size[0] == 900 and overlay.size[1] > 2300   # the picture under a title banner
        assert overlay.mode == "RGB"


def test_write_report_files_replaces_previous_outputs(tmp_path, case, report):
    image, landmarks, result, size = case
    write_report_files(tmp_path, image, report)
    other = make_report(result, "case 2.png", size, edited=True)
    write_report_files(tmp_path, image, other)
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert data["source"] == "case 2.png" and data["landmarks_edited"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUT_FILES)


def test_write_cobb_outputs_records_edited(tmp_path, case):
    image, landmarks, result, size = case
    paths = write_cobb_outputs(tmp_path / "export", image, landmarks, result, edited=True, source="case.png")
    data = json.loads(paths["report.json"].read_text(encoding="utf-8"))
    assert data["landmarks_edited"] is True
    assert data["source"] == "case.png"
    assert data["image_size_px"] == [900, 2300]
    assert [c["name"] for c in data["curves"]] == ["MT", "TL/L", "PT"]
    with Image.open(paths["overlay.png"]) as overlay:
        assert overlay.size[0] == 900 and overlay.size[1] > 2300


def test_write_cobb_outputs_not_edited(tmp_path, case):
    image, landmarks, result, size = case
    paths = write_cobb_outputs(tmp_path, image, landmarks, result, edited=False, source="case.png")
    assert json.loads(paths["report.json"].read_text(encoding="utf-8"))["landmarks_edited"] is False


def test_write_cobb_outputs_refuses_a_result_of_other_landmarks(tmp_path, case):
    image, landmarks, result, size = case
    moved = synthetic.mirror(landmarks, size[0])
    with pytest.raises(ValueError, match="other landmarks"):
        write_cobb_outputs(tmp_path / "export", image, moved, result, edited=True, source="case.png")
    assert not (tmp_path / "export").exists()


# --------------------------------------------------------------------------- inputs are protected

def test_refuses_to_overwrite_a_protected_input(tmp_path, case, report):
    image, landmarks, result, size = case
    the_input = tmp_path / "overlay.png"
    Image.fromarray((image * 255).astype(np.uint8)).save(the_input)
    (tmp_path / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    # The protected path spelled another way still names the same file.
    spelled = tmp_path / "sub" / ".." / "overlay.png"
    with pytest.raises(SpineAnalysisError, match="refusing to overwrite"):
        write_report_files(tmp_path, image, report, protect=[str(spelled)])
    assert snapshot(tmp_path) == before


def test_protection_checked_before_creating_the_folder(tmp_path, case, report):
    image = case[0]
    out = tmp_path / "new"
    with pytest.raises(SpineAnalysisError):
        write_report_files(out, image, report, protect=[out / "report.json"])
    assert not out.exists()


def test_protect_of_other_files_does_not_block(tmp_path, case, report):
    image = case[0]
    the_input = tmp_path / "radiograph.png"
    the_input.write_bytes(b"not really a png")
    write_report_files(tmp_path, image, report, protect=[the_input])
    assert the_input.read_bytes() == b"not really a png"
    assert all((tmp_path / name).is_file() for name in OUTPUT_FILES)


# --------------------------------------------------------------------------- all or nothing

@pytest.mark.parametrize("writer", ["save_png", "write_landmarks_json", "write_csv_rows"])
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, case, report, writer):
    image = case[0]
    monkeypatch.setattr(report_module, writer, fail)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="simulated failure"):
        write_report_files(out, image, report)
    # Neither output files nor the hidden staging folder remain.
    assert list(out.rglob("*")) == []


def test_failure_keeps_outputs_of_a_previous_run(tmp_path, monkeypatch, case, report):
    image, landmarks, result, size = case
    write_report_files(tmp_path, image, report)
    (tmp_path / "unrelated.txt").write_text("mine")
    before = snapshot(tmp_path)
    second = make_report(result, "case 2.png", size, edited=True)
    monkeypatch.setattr(report_module, "save_png", fail)
    with pytest.raises(OSError):
        write_report_files(tmp_path, image, second)
    assert snapshot(tmp_path) == before
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["source"] == "case 1.png"


def test_a_target_that_cannot_be_replaced_is_refused_before_writing(tmp_path, case, report):
    image = case[0]
    (tmp_path / "overlay.png").mkdir()          # a target that cannot be replaced by a file
    with pytest.raises(SpineAnalysisError, match="not a file"):
        write_report_files(tmp_path, image, report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.png"]
