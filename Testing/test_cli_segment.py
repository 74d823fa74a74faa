"""``spine-analysis segment``: the mask on the CT's grid, the metrics, and one-line refusals."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from ct_phantom import MARROW_HU, phantom_ct, reference_centrum
from spine_analysis.ct.body_model.evaluate import dice
from test_cli import assert_ok, assert_one_error_line, run


@pytest.fixture(scope="module")
def ct_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct")
    path = folder / "spine.nii.gz"
    sitk.WriteImage(phantom_ct(oblique_deg=15), str(path))
    return path


def test_segment_writes_one_label_per_seed_and_the_metrics(tmp_path, ct_file):
    out, report = tmp_path / "mask.nii.gz", tmp_path / "metrics.json"
    proc = run(tmp_path, "segment", ct_file, "--seed", "0,0,0", "--seed=-2,-1,32", "--method", "classical",
               "--level", "L3", "L2", "--out", out, "--json", report, "--body-out", tmp_path / "bodies.nrrd")
    assert_ok(proc)
    assert "L3" in proc.stdout and "screening hint" in proc.stdout
    ct, mask = sitk.ReadImage(str(ct_file)), sitk.ReadImage(str(out))
    assert mask.GetSize() == ct.GetSize() and np.allclose(mask.GetDirection(), ct.GetDirection())
    labels = sitk.GetArrayFromImage(mask)
    assert dice(labels == 1, reference_centrum(ct)) > 0.8 and (labels == 2).sum() > 1000
    bodies = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "bodies.nrrd")))
    assert (bodies[labels == 1] == 1).all() and (bodies == 1).sum() > (labels == 1).sum()
    vertebrae = json.loads(report.read_text())["vertebrae"]
    assert [v["level"] for v in vertebrae] == ["L3", "L2"]
    assert abs(vertebrae[0]["hu_mean"] - MARROW_HU) < 15 and vertebrae[0]["method"] == "classical"


def test_ras_seeds_are_converted(tmp_path, ct_file):
    proc = run(tmp_path, "segment", ct_file, "--seed=-0,-0,0", "--coordinate-system", "ras", "--method", "classical",
               "--out", tmp_path / "m.nii.gz", "--json", tmp_path / "m.json")
    assert_ok(proc)
    assert json.loads((tmp_path / "m.json").read_text())["coordinate_system_of_seeds"] == "ras"


def test_the_old_frame_option_is_gone(tmp_path, ct_file):
    """--frame is cobb's frame number; the seeds' one is --coordinate-system."""
    proc = run(tmp_path, "segment", ct_file, "--seed", "0,0,0", "--frame", "ras", "--out", tmp_path / "m.nii.gz")
    assert proc.returncode == 2 and "unrecognized arguments: --frame ras" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_negative_seed_after_a_space_is_the_same_seed(tmp_path, ct_file):
    masks = []
    for form in (["--seed", "-2,-1,32"], ["--seed=-2,-1,32"]):
        out = tmp_path / f"m{len(masks)}.nii.gz"
        assert_ok(run(tmp_path, "segment", ct_file, *form, "--method", "classical", "--out", out))
        masks.append(sitk.GetArrayFromImage(sitk.ReadImage(str(out))))
    assert (masks[0] == 1).sum() > 1000 and np.array_equal(masks[0], masks[1])


@pytest.mark.parametrize("option", ["--out", "--json", "--body-out"])
def test_an_output_in_a_missing_folder_is_refused_before_the_ct_is_read(tmp_path, option):
    """A missing CT would be reported if it were read first: the output folder is checked before."""
    paths = {"--out": tmp_path / "m.nii.gz", option: tmp_path / "missing-folder" / "x.nii.gz"}
    proc = run(tmp_path, "segment", tmp_path / "no-such-ct.nii.gz", "--seed", "0,0,0", "--method", "classical",
               *[str(a) for pair in paths.items() for a in pair])
    assert proc.returncode == 2
    assert_one_error_line(proc, "missing-folder", "does not exist")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    sitk.WriteImage(sitk.Image([40, 40], sitk.sitkInt16), str(folder / "slice.nii.gz"))
    sitk.WriteImage(sitk.Image([20, 20, 20], sitk.sitkVectorUInt8, 3), str(folder / "rgb.nrrd"))
    sitk.WriteImage(sitk.Image([20, 20, 20], sitk.sitkUInt8), str(folder / "photo.nrrd"))
    (folder / "corrupt.nii.gz").write_bytes(b"\x1f\x8b not really a NIfTI")
    return folder


@pytest.mark.parametrize("ct, seed, fragments", [
    ("{ct}", "0,0,400", ["outside the CT volume"]),
    ("{ct}", "0,-40,0", ["not inside a vertebral body"]),
    ("{ct}", "0,0,16", ["not inside a vertebral body"]),
    ("{bad}/slice.nii.gz", "0,0,0", ["2D"]),
    ("{bad}/rgb.nrrd", "0,0,0", ["colour"]),
    ("{bad}/photo.nrrd", "0,0,0", ["8-bit"]),
    ("{bad}/corrupt.nii.gz", "0,0,0", ["corrupt.nii.gz"]),
    ("{bad}/missing.nii.gz", "0,0,0", ["not found"]),
])
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(tmp_path, ct_file, bad_files, ct, seed, fragments):
    out = tmp_path / "mask.nii.gz"
    proc = run(tmp_path, "segment", ct.format(ct=ct_file, bad=bad_files), "--seed", seed, "--method", "classical",
               "--out", out, "--json", tmp_path / "m.json")
    assert proc.returncode == 2
    assert_one_error_line(proc, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_the_input_is_never_overwritten(tmp_path, ct_file):
    before = ct_file.read_bytes()
    proc = run(tmp_path, "segment", ct_file, "--seed", "0,0,0", "--method", "classical", "--out", ct_file)
    assert_one_error_line(proc, "refusing to overwrite")
    assert ct_file.read_bytes() == before


def test_a_bad_seed_is_a_usage_error(tmp_path, ct_file):
    proc = run(tmp_path, "segment", ct_file, "--seed", "1,2", "--out", tmp_path / "m.nii.gz")
    assert proc.returncode == 2 and "X,Y,Z" in proc.stderr and "Traceback" not in proc.stderr


def test_the_shell_setting_chooses_the_centrum_convention(tmp_path, ct_file):
    """The centrum is the body less --shell-mm: 2 mm (finite-element convention) against 3 (VerSe's)."""
    ct, reports = sitk.ReadImage(str(ct_file)), {}
    for shell in (2, 3):
        out = tmp_path / f"m{shell}.nii.gz"
        assert_ok(run(tmp_path, "segment", ct_file, "--seed", "0,0,0", "--method", "classical", "--shell-mm",
                      str(shell), "--out", out, "--json", tmp_path / f"m{shell}.json"))
        reports[shell] = json.loads((tmp_path / f"m{shell}.json").read_text())
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out))) == 1
        assert dice(labels, reference_centrum(ct, shell_mm=shell)) > 0.8
        assert reports[shell]["shell_mm"] == shell and reports[shell]["vertebrae"][0]["shell_mm"] == shell
    assert reports[2]["vertebrae"][0]["volume_ml"] > 1.1 * reports[3]["vertebrae"][0]["volume_ml"]


@pytest.mark.parametrize("option, value, fragment", [("--shell-mm", "9", "choose 0 to 6 mm"),
                                                     ("--min-lesion-ml", "-1", "cannot be negative")])
def test_settings_out_of_range_are_refused_in_one_line(tmp_path, ct_file, option, value, fragment):
    proc = run(tmp_path, "segment", ct_file, "--seed", "0,0,0", option, value, "--out", tmp_path / "m.nii.gz")
    assert proc.returncode == 2
    assert_one_error_line(proc, option, fragment)
    assert list(tmp_path.iterdir()) == []


def test_thick_slices_are_stated_and_warned_about(tmp_path):
    thick = tmp_path / "thick.nii.gz"
    sitk.WriteImage(phantom_ct(spacing=(0.8, 0.8, 5.0), size=(120, 110, 24)), str(thick))
    out = tmp_path / "out"
    out.mkdir()
    proc = run(tmp_path, "segment", thick, "--seed", "0,0,0", "--method", "classical", "--out", out / "m.nii.gz",
               "--json", out / "m.json")
    assert_ok(proc)
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "slices are 5.0 mm thick" in warnings[0], proc.stderr
    assert "slices 5.0 mm thick" in proc.stdout
    report = json.loads((out / "m.json").read_text())
    assert report["slice_thickness_mm"] == 5.0 and "5.0 mm thick" in report["warnings"][0]
    assert report["vertebrae"][0]["slice_mm"] == 5.0
