"""``spine-analysis fracture``: its outputs and columns, the morphometric call on a hand-built
fractured spine, batches, and one-line refusals of bad input with nothing written."""
import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from ct_phantom import phantom_ct, phantom_labels
from spine_analysis.ct.deformity import Deformity, compress
from spine_analysis.ct.fracture import CSV_COLUMNS, OUTPUT_FILES
from spine_analysis.ct.fracture_model import SHIPPED_DIR
from spine_analysis.ct.study import FRACTURE_OVERVIEW
from test_cli import assert_ok, assert_one_error_line, run

needs_model = pytest.mark.skipif(not (SHIPPED_DIR / "fracture.pt").exists(), reason="no shipped fracture model")


def _fractured_phantom(folder, shape="wedge", loss=0.45):
    """The phantom on a 1 mm grid with its middle body (L3) squeezed; CT and label map files."""
    ct = phantom_ct(spacing=(1.0, 1.0, 1.0), size=(100, 90, 110), noise_hu=5.0)
    labels = phantom_labels(ct)
    values = sitk.GetArrayFromImage(labels)
    hu, (squeezed,) = compress(sitk.GetArrayFromImage(ct).astype(np.float32), values == 22, Deformity(shape, loss),
                               (values,))
    out_ct = sitk.GetImageFromArray(hu.astype(np.int16))
    out_ct.CopyInformation(ct)
    out_labels = sitk.GetImageFromArray(squeezed.astype(np.uint8))
    out_labels.CopyInformation(ct)
    ct_path, labels_path = folder / "spine.nii.gz", folder / "spine_labels.nii.gz"
    sitk.WriteImage(out_ct, str(ct_path))
    sitk.WriteImage(out_labels, str(labels_path))
    return ct_path, labels_path


@pytest.fixture(scope="module")
def fractured(tmp_path_factory):
    return _fractured_phantom(tmp_path_factory.mktemp("ct"))


def _nothing_written(folder):
    return not folder.exists() or not any(folder.iterdir())


@needs_model
def test_fracture_with_a_label_map_grades_the_squeezed_body_and_writes_every_output(tmp_path, fractured):
    ct_path, labels_path = fractured
    out = tmp_path / "out"
    proc = run(tmp_path, "fracture", ct_path, "--labels", labels_path, "--out-dir", out, timeout=300)
    assert_ok(proc)
    assert {p.name for p in out.iterdir()} == {*OUTPUT_FILES, FRACTURE_OVERVIEW}
    with open(out / "vertebrae.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["level"] for r in rows] == ["L2", "L3", "L4"]          # top to bottom
    by_level = {r["level"]: r for r in rows}
    assert by_level["L3"]["genant_grade"] == "3" and by_level["L3"]["deformity"] == "wedge"
    assert by_level["L3"]["call"] == "fractured" and "morpho" in by_level["L3"]["basis"] + "agree"
    assert by_level["L2"]["genant_grade"] == by_level["L4"]["genant_grade"] == "0"
    assert float(by_level["L3"]["anterior_mm"]) < 0.7 * float(by_level["L3"]["posterior_mm"])
    assert abs(float(by_level["L3"]["centroid_lps_z"])) < 3 and abs(float(by_level["L2"]["centroid_lps_z"]) - 32) < 3
    for row in rows:
        assert row["call"] in ("fractured", "normal") and 0 <= float(row["probability"]) <= 1
    ct = sitk.ReadImage(str(ct_path))
    probability = sitk.ReadImage(str(out / "fracture_probability.nii.gz"))
    assert probability.GetSize() == ct.GetSize() and probability.GetPixelID() == sitk.sitkFloat32
    values = sitk.GetArrayViewFromImage(probability)
    assert values.min() >= 0 and values.max() <= 1
    patient = json.loads((out / "patient.json").read_text())
    assert patient["call"] == "fractured" and "L3" in patient["fractured_levels"]
    assert [key for key in patient if "call" in key] == ["call"] and patient["basis"].startswith("L3: ")
    assert set(patient["opinions"]) == {"classifier", "morphometry"}
    assert "L3" in patient["opinions"]["morphometry"]["fractured_levels"]
    assert f"patient: fractured (L3): {patient['basis']}" in proc.stdout and "opinions: classifier: " in proc.stdout
    assert "label map" in patient["level_source"] and patient["model"].startswith("fracture model")
    assert json.loads((out / "vertebrae.json").read_text())["vertebrae"][1]["level"] == "L3"


@needs_model
def test_centroids_from_a_csv_name_the_levels(tmp_path, fractured):
    ct_path, _ = fractured
    (tmp_path / "c.csv").write_text("level,x,y,z\nL2,0,0,32\nL3,0,0,0\nL4,0,0,-32\n")
    proc = run(tmp_path, "fracture", ct_path, "--centroids", tmp_path / "c.csv", "--out-dir", tmp_path / "o",
               timeout=300)
    assert_ok(proc)
    rows = json.loads((tmp_path / "o" / "vertebrae.json").read_text())
    assert [r["level"] for r in rows["vertebrae"]] == ["L2", "L3", "L4"]
    assert rows["level_source"] == "centroid file c.csv"


@needs_model
def test_on_thick_slices_no_heights_are_measured_and_every_basis_says_so(tmp_path, fractured):
    ct_path, labels_path = fractured
    ct = sitk.ReadImage(str(ct_path))
    thick = sitk.Image([ct.GetSize()[0], ct.GetSize()[1], ct.GetSize()[2] // 5], sitk.sitkInt16)
    thick.SetSpacing((1.0, 1.0, 5.0))
    thick.SetOrigin(ct.GetOrigin())
    sitk.WriteImage(sitk.Resample(ct, thick, sitk.Transform(), sitk.sitkLinear, -1000.0),
                    str(tmp_path / "thick.nii.gz"))
    proc = run(tmp_path, "fracture", tmp_path / "thick.nii.gz", "--labels", labels_path, "--out-dir", tmp_path / "o",
               timeout=300)
    assert_ok(proc)
    rows = json.loads((tmp_path / "o" / "vertebrae.json").read_text())["vertebrae"]
    assert [r["genant_grade"] for r in rows] == [None] * 3
    for row in rows:
        assert row["call"] == "not assessed" or row["basis"] == "classifier alone (heights not assessed: slices 5.0 mm)"
    patient = json.loads((tmp_path / "o" / "patient.json").read_text())
    assert "heights not assessed: slices 5.0 mm: the classifier alone decides" in patient["basis"]
    assert patient["opinions"]["morphometry"] == {"fractured_levels": [], "vertebrae_graded": 0, "deformed": [],
                                                  "note": "heights not assessed: slices 5.0 mm"}


@needs_model
def test_a_batch_goes_on_past_a_bad_file_and_says_so(tmp_path, fractured):
    ct_path, _ = fractured
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not an image")
    out = tmp_path / "batch"
    proc = run(tmp_path, "fracture", ct_path, bad, "--out-dir", out, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (out / "spine" / "vertebrae.csv").is_file() and not (out / "broken").exists()
    with open(out / "patients.csv", newline="") as handle:
        rows = {row["ct"].split("/")[-1]: row for row in csv.DictReader(handle)}
    assert rows["broken.nii.gz"]["call"] == "error" and rows["spine.nii.gz"]["call"] in ("fractured", "normal")
    assert rows["spine.nii.gz"]["basis"] and 0 <= float(rows["spine.nii.gz"]["max_vertebra_probability"]) <= 1


@needs_model
def test_a_ct_without_vertebrae_is_refused(tmp_path):
    ct = sitk.GetImageFromArray(np.full((60, 80, 80), 40, np.int16))   # soft tissue only
    sitk.WriteImage(ct, str(tmp_path / "tissue.nii.gz"))
    proc = run(tmp_path, "fracture", tmp_path / "tissue.nii.gz", "--out-dir", tmp_path / "o", timeout=300)
    assert_one_error_line(proc, "no bone in this volume", "not a CT of the spine")
    assert _nothing_written(tmp_path / "o")


def test_bad_inputs_get_one_line_and_nothing_is_written(tmp_path, fractured):
    ct_path, _ = fractured
    flat = sitk.GetImageFromArray(np.zeros((50, 50), np.int16))
    sitk.WriteImage(flat, str(tmp_path / "slice.nii.gz"))
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    (tmp_path / "corrupt.nrrd").write_bytes(b"NRRD0004\nnonsense\n")
    (tmp_path / "far.csv").write_text("level,x,y,z\nL1,0,0,900\n")
    out = tmp_path / "out"
    cases = [
        (["fracture", tmp_path / "slice.nii.gz"], "2D image"),
        (["fracture", tmp_path / "empty.nii.gz"], ""),
        (["fracture", tmp_path / "corrupt.nrrd"], ""),
        (["fracture", tmp_path / "missing.nii.gz"], ""),
        (["fracture", ct_path, "--centroids", tmp_path / "far.csv"], "outside the CT volume"),
        (["fracture", ct_path, ct_path, "--centroids", tmp_path / "far.csv"], "belong to one CT"),
    ]
    for args, fragment in cases:
        proc = run(tmp_path, *args, "--out-dir", out)
        assert_one_error_line(proc, fragment)
        assert _nothing_written(out), args
    (tmp_path / "afile").write_text("x")
    assert_one_error_line(run(tmp_path, "fracture", ct_path, "--out-dir", tmp_path / "afile"), "not a folder")
