"""``segment --centroids FILE`` without seeds: every vertebra the file names, each named by its level;
``--levels`` chooses some; a vertebra that cannot be segmented is reported and the others go on."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from ct_phantom import CENTRES_Z_MM, phantom_ct, reference_centrum
from spine_analysis.ct import study
from spine_analysis.ct.body_model.evaluate import dice
from spine_analysis.errors import SpineAnalysisError
from test_cli import ERROR_PREFIX, assert_ok, assert_one_error_line, run

TOP, MIDDLE = max(CENTRES_Z_MM), 0.0   # the phantom's top body (L2 here) and its middle one (L3)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """The phantom CT (axis-aligned, so VerSe voxel coordinates are easy to write) and centroid files of
    its top two bodies: a CSV (LPS mm), a Slicer point list (RAS mm) and a VerSe file (voxels)."""
    folder = tmp_path_factory.mktemp("ct")
    ct = phantom_ct()
    sitk.WriteImage(ct, str(folder / "spine.nii.gz"))
    points = {"L2": (1.0, -1.0, TOP), "L3": (0.0, 0.0, MIDDLE)}
    (folder / "ctd.csv").write_text("level,x,y,z\n" + "".join(f"{k},{x},{y},{z}\n" for k, (x, y, z) in points.items()))
    markups = {"markups": [{"coordinateSystem": "RAS", "controlPoints": [
        {"label": k, "position": [-x, -y, z]} for k, (x, y, z) in points.items()]}]}
    (folder / "points.mrk.json").write_text(json.dumps(markups))
    verse = [{"direction": ["L", "P", "S"]}] + [
        {"label": number, **dict(zip("XYZ", ct.TransformPhysicalPointToContinuousIndex(points[level])))}
        for number, level in ((21, "L2"), (22, "L3"))]
    (folder / "ctd.json").write_text(json.dumps(verse))
    return ct, folder


def _labels(path):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


@pytest.mark.parametrize("centroid_file", ["ctd.csv", "points.mrk.json", "ctd.json"])
def test_every_vertebra_of_the_file_is_segmented_and_named_by_its_level(tmp_path, phantom, centroid_file):
    ct, folder = phantom
    out, report, picture = tmp_path / "centra.nii.gz", tmp_path / "m.json", tmp_path / "overview.png"
    proc = run(tmp_path, "segment", folder / "spine.nii.gz", "--centroids", folder / centroid_file,
               "--method", "classical", "--out", out, "--json", report, "--overview", picture)
    assert_ok(proc)
    assert proc.stderr == ""    # nothing refused
    labels = _labels(out)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert dice(labels == 1, reference_centrum(ct, z_centre_mm=TOP)) > 0.8       # label k: the k-th in the file
    assert dice(labels == 2, reference_centrum(ct, z_centre_mm=MIDDLE)) > 0.8
    answer = json.loads(report.read_text())
    assert [(v["index"], v["level"], v["level_from"]) for v in answer["vertebrae"]] == \
        [(1, "L2", "centroid file"), (2, "L3", "centroid file")]
    assert answer["refused"] == [] and answer["overview"] == str(picture) and picture.stat().st_size > 1000


def test_levels_chooses_some_vertebrae(tmp_path, phantom):
    ct, folder = phantom
    out, report = tmp_path / "centra.nii.gz", tmp_path / "m.json"
    assert_ok(run(tmp_path, "segment", folder / "spine.nii.gz", "--centroids", folder / "ctd.csv", "--levels", "l3",
                  "--method", "classical", "--out", out, "--json", report))
    labels = _labels(out)
    assert set(np.unique(labels)) == {0, 1} and dice(labels == 1, reference_centrum(ct, z_centre_mm=MIDDLE)) > 0.8
    assert [v["level"] for v in json.loads(report.read_text())["vertebrae"]] == ["L3"]


@pytest.mark.parametrize("options, fragments", [
    (["--centroids", "{folder}/ctd.csv", "--levels", "L3,L5"], ["--levels L5", "ctd.csv", "L2, L3"]),
    ([], ["--seed", "--centroids"]),
    (["--seed", "0,0,0", "--centroids", "{folder}/ctd.csv", "--levels", "L3"], ["--levels", "when no --seed is given"]),
    (["--centroids", "{folder}/ctd.csv", "--level", "L3"], ["--level names the seeds"]),
    (["--centroids", "{folder}/ctd.csv", "--overview", "{tmp}/o.jpg"], ["PNG"]),
    (["--seed", "0,0,0", "--overview", "{tmp}/missing/o.png"], ["missing", "does not exist"]),
])
def test_a_wrong_choice_is_refused_in_one_line_with_nothing_written(tmp_path, phantom, options, fragments):
    _, folder = phantom
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    options = [o.format(folder=folder, tmp=out_dir) for o in options]
    proc = run(tmp_path, "segment", folder / "spine.nii.gz", *options, "--method", "classical",
               "--out", out_dir / "m.nii.gz", "--json", out_dir / "m.json")
    assert proc.returncode == 2
    assert_one_error_line(proc, *fragments)
    assert list(out_dir.iterdir()) == []


def test_a_centroid_that_cannot_be_segmented_is_reported_and_the_others_go_on(tmp_path, phantom):
    ct, folder = phantom
    csv = tmp_path / "ctd.csv"
    csv.write_text(f"level,x,y,z\nL1,0,-40,{TOP}\nL3,0,0,0\n")      # L1 in the soft tissue in front of the spine
    out, report, picture = tmp_path / "centra.nii.gz", tmp_path / "m.json", tmp_path / "o.png"
    proc = run(tmp_path, "segment", folder / "spine.nii.gz", "--centroids", csv, "--method", "classical",
               "--out", out, "--json", report, "--overview", picture)
    assert_ok(proc)
    warnings = proc.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("spine-analysis: warning: L1 not segmented: ")
    answer = json.loads(report.read_text())
    assert [v["level"] for v in answer["vertebrae"]] == ["L3"] and answer["vertebrae"][0]["index"] == 1
    assert [(r["level"], r["centroid_lps"]) for r in answer["refused"]] == [("L1", [0.0, -40.0, TOP])]
    assert "vertebral body" in answer["refused"][0]["reason"]
    labels = _labels(out)
    assert set(np.unique(labels)) == {0, 1} and dice(labels == 1, reference_centrum(ct, z_centre_mm=MIDDLE)) > 0.8
    assert picture.is_file()


def test_when_no_centroid_can_be_segmented_the_run_fails_in_one_line(tmp_path, phantom):
    _, folder = phantom
    csv = tmp_path / "ctd.csv"
    csv.write_text(f"level,x,y,z\nL1,0,-40,{TOP}\nL2,0,-40,0\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = run(tmp_path, "segment", folder / "spine.nii.gz", "--centroids", csv, "--method", "classical",
               "--out", out_dir / "m.nii.gz")
    assert proc.returncode == 2
    line = assert_one_error_line(proc, "no vertebral body could be segmented", "L1: ", "L2: ")
    assert line.startswith(ERROR_PREFIX) and list(out_dir.iterdir()) == []


def test_two_centroids_in_one_body_keep_the_first(phantom):
    """In-process: the second point of the same body is refused, naming the level that holds it."""
    ct, _ = phantom
    segmentation = study.segment_centroids(ct, {"L3": np.array([0.0, 0.0, 0.0]), "L4": np.array([3.0, 2.0, 2.0])},
                                           method="classical")
    assert [m.level for m in segmentation.vertebrae] == ["L3"] and set(np.unique(segmentation.centra)) == {0, 1}
    assert segmentation.refused[0]["level"] == "L4" and "centrum of L3" in segmentation.refused[0]["reason"]
    assert segmentation.to_dict()["refused"] == segmentation.refused


def test_segment_centroids_with_nothing_segmentable_raises(phantom):
    ct, _ = phantom
    with pytest.raises(SpineAnalysisError, match="no vertebral body could be segmented.*L1: .*outside"):
        study.segment_centroids(ct, {"L1": np.array([0.0, 0.0, 900.0])}, method="classical")
