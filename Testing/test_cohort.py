"""Cohort runs (``spine_analysis.cohort``, ``spine-analysis cohort``): one small local-cluster run of
synthetic radiographs shared by the end-to-end checks, and the planning, ledger and discovery rules
on their own (no cluster). The landmark model is test_cli's tiny untrained one, so radiographs are
measured with --force (the point is the plumbing, and that a study's files equal the cobb command's).
"""
import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from spine_analysis import cli
from spine_analysis.cohort.ledger import Ledger
from spine_analysis.cohort.models import worker_weights
from spine_analysis.cohort.run import ClusterOptions, connect, plan
from spine_analysis.cohort.sources import Study, discover_folder, find_studies, fingerprint, read_manifest
from spine_analysis.errors import SpineAnalysisError
from spine_analysis.xray import synthetic
from test_cli import CASES, SIZE, assert_ok, model_dir, run, save_png  # noqa: F401 (model_dir: a fixture)

pytest.importorskip("distributed", reason="Dask's distributed is not installed (pip install -e .)")


def _main(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, model_dir):  # noqa: F811 (the fixture imported from test_cli)
    """Three synthetic radiographs (one in a subfolder) and a file that is no image, run through a local
    cluster of two workers."""
    root = tmp_path_factory.mktemp("cohort")
    source = root / "clinic"
    (source / "2019").mkdir(parents=True)
    for seed, (name, landmarks, _, _) in enumerate(CASES[:3]):
        folder = source / "2019" if seed == 2 else source
        save_png(synthetic.render_radiograph(landmarks, SIZE, seed=seed), folder / name)
    (source / "broken.png").write_bytes(b"not a picture")
    out = root / "out"
    args = ("cohort", source, "--task", "cobb", "--out-dir", out, "--workers", 2, "--landmark-weights", model_dir,
            "--force", "--dashboard-port", 0)
    code, stdout, stderr = _main(*args)
    return {"source": source, "out": out, "args": args, "code": code, "stdout": stdout, "stderr": stderr}


def _ledger(out: Path) -> dict[str, dict]:
    with open(out / "ledger.csv", newline="", encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def test_a_cohort_run_records_every_study_once(cohort):
    assert cohort["code"] == 2, cohort["stdout"] + cohort["stderr"]   # the broken file is not done
    rows = _ledger(cohort["out"])
    assert sorted(rows) == ["2019__c_mirrored_03", "b_single_curve_02", "broken", "sunhl_case_01_A_AP"]
    assert {i: r["status"] for i, r in rows.items()}["broken"] == "refused"
    assert "not a readable image" in rows["broken"]["reason"]
    done = [r for r in rows.values() if r["status"] == "done"]
    assert len(done) == 3 and all(float(r["seconds"]) > 0 and float(r["peak_memory_mb"]) > 50 for r in done)
    assert all(r["model"].startswith("landmark:") and r["model"].endswith("| force") for r in done)
    assert "refused: broken" in cohort["stdout"] and "Dask dashboard: http://127.0.0.1:" in cohort["stdout"]
    assert not (cohort["out"] / "broken").exists() and not any((cohort["out"] / ".partial").iterdir())
    import pyarrow.parquet as pq

    assert sorted(pq.read_table(cohort["out"] / "ledger.parquet").column("id").to_pylist()) == sorted(rows)


def test_each_study_equals_the_cobb_command(cohort, model_dir, tmp_path):  # noqa: F811
    image = cohort["source"] / "2019" / CASES[2][0]
    assert_ok(run(tmp_path, "cobb", image, "--weights", model_dir, "--force", "--out-dir", tmp_path / "single"))
    mine, single = cohort["out"] / "2019__c_mirrored_03", tmp_path / "single"
    assert sorted(p.name for p in mine.iterdir()) == sorted([p.name for p in single.iterdir()] + ["cohort_rows.json"])

    def comparable(folder):
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
        return {k: v for k, v in report.items() if k not in ("source", "timings_s")}

    assert comparable(mine) == comparable(single)
    for name in ("report.csv", "landmarks.csv", "landmarks.json"):
        assert (mine / name).read_bytes() == (single / name).read_bytes(), name


def test_the_cohort_table_and_summary(cohort):
    with open(cohort["out"] / "cohort.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [r["study_id"] for r in table] == ["2019__c_mirrored_03", "b_single_curve_02", "sunhl_case_01_A_AP"]
    assert {"largest_cobb_deg", "mt_angle_deg", "mt_upper_end", "overall_severity", "aasce_angle_1_deg",
            "quality_flags", "forced"} <= set(table[0])
    summary = (cohort["out"] / "summary.html").read_text(encoding="utf-8")
    assert summary.count("<svg") == 3 and "Largest Cobb angle" in summary


def test_a_rerun_recomputes_nothing(cohort):
    before = _ledger(cohort["out"])
    code, stdout, _ = _main(*cohort["args"])
    assert code == 2 and "3 done already, 1 refused or failed before" in stdout and "0 to run" in stdout
    assert "dashboard" not in stdout   # no cluster was started
    assert _ledger(cohort["out"]) == before


def test_what_a_rerun_runs_again(cohort, model_dir, tmp_path):  # noqa: F811
    """Done studies stay done; a refused one runs again with --retry-errors or once its file changes;
    another model or --force setting runs everything again."""
    copy = tmp_path / "out"
    shutil.copytree(cohort["out"], copy)
    studies = find_studies(cohort["source"], "cobb", copy)
    ledger = Ledger(copy, "cobb")
    weights = worker_weights({"landmark": str(model_dir)})
    assert [s.id for s, _, _ in plan(studies, ledger, "cobb", weights, True, "force").run] == ["broken"]
    assert plan(studies, ledger, "cobb", weights, False, "force").run == []
    assert len(plan(studies, ledger, "cobb", weights, False, "").run) == 4
    (cohort["source"] / "broken.png").write_bytes(b"still not a picture")
    try:
        assert [s.id for s, _, _ in plan(studies, ledger, "cobb", weights, False, "force").run] == ["broken"]
    finally:
        (cohort["source"] / "broken.png").write_bytes(b"not a picture")


def test_a_ct_study_equals_segment_with_its_centroids(tmp_path):
    """The centra task on one study (in this process: the cluster adds nothing here) writes the masks and
    metrics ``segment --centroids`` writes; its table rows are the vertebrae."""
    import numpy as np
    import SimpleITK as sitk
    from ct_phantom import phantom_ct

    from spine_analysis.cohort.tasks import run_study

    ct, centroids = tmp_path / "spine.nii.gz", tmp_path / "ctd.csv"
    sitk.WriteImage(phantom_ct(), str(ct))
    centroids.write_text("level,x,y,z\nL2,1.0,-1.0,32.0\nL3,0.0,0.0,0.0\n", encoding="utf-8")
    row = run_study("centra", Study("p", str(ct), str(centroids)).to_dict(), str(tmp_path / "out"),
                    worker_weights({}), {})
    assert row["status"] == "done" and row["model"].startswith("body:"), row
    code, _, err = _main("segment", ct, "--centroids", centroids, "--out", tmp_path / "single.nii.gz",
                         "--body-out", tmp_path / "bodies.nii.gz", "--json", tmp_path / "single.json")
    assert code == 0, err
    mine = tmp_path / "out" / "p"

    def metrics(path):
        return [{k: v for k, v in m.items() if k != "seconds"} for m in json.loads(path.read_text())["vertebrae"]]

    assert metrics(mine / "centra.json") == metrics(tmp_path / "single.json")
    for name, single in (("centra.nii.gz", "single.nii.gz"), ("bodies.nii.gz", "bodies.nii.gz")):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(mine / name))),
                                      sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / single))))
    rows = json.loads((mine / "cohort_rows.json").read_text())["rows"]
    assert [(r["level"], r["segmented"]) for r in rows] == [("L2", True), ("L3", True)]


def test_the_local_cluster_listens_on_loopback_only():
    psutil = pytest.importorskip("psutil")
    client, cluster = connect(ClusterOptions(workers=1, dashboard_port=0), say=lambda line: None)
    try:
        assert client.submit(sum, [1, 2]).result() == 3
        addresses = [cluster.scheduler_address, *client.scheduler_info()["workers"], client.dashboard_link]
        assert all("127.0.0.1" in a for a in addresses), addresses
        me = psutil.Process()
        pids = {me.pid, *(p.pid for p in me.children(recursive=True))}
        listening = [c.laddr for c in psutil.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.pid in pids]
        assert len(listening) >= 3 and all(a.ip in ("127.0.0.1", "::1") for a in listening), listening
    finally:
        client.close()
        cluster.close()


def test_the_ledger_keeps_one_row_per_study_and_survives_a_crash(tmp_path):
    ledger = Ledger(tmp_path, "cobb", snapshot_every_s=3600)
    for status in ("error", "done"):
        ledger.record({"id": "a", "task": "cobb", "path": "a.png", "fingerprint": "f", "model": "m", "status": status})
    ledger.record({"id": "b", "task": "cobb", "path": "b.png", "fingerprint": "f", "model": "m", "status": "refused"})
    with open(tmp_path / "ledger.jsonl", "a", encoding="utf-8") as journal:
        journal.write('{"id": "c", "sta')   # a crash mid-line: no close, no snapshot
    again = Ledger(tmp_path, "cobb")
    assert {i: r["status"] for i, r in again.rows.items()} == {"a": "done", "b": "refused"}
    again.record({"id": "c", "task": "cobb", "path": "c.png", "fingerprint": "f", "model": "m", "status": "done"})
    assert "c" in Ledger(tmp_path, "cobb").rows   # the row after the cut line is whole
    assert again.is_done("a", "f", "m") and not again.is_done("a", "g", "m") and not again.is_done("b", "f", "m")
    again.close()
    assert (tmp_path / "ledger.jsonl").read_text() == "" and len(Ledger(tmp_path, "cobb").rows) == 3
    with pytest.raises(SpineAnalysisError, match="holds a cobb cohort"):
        Ledger(tmp_path, "fracture")


def test_a_manifest_names_paths_ids_and_centroids(tmp_path):
    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "a.nii.gz").write_bytes(b"x")
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("path,id,centroids\nscans/a.nii.gz,patient-1,scans/a_ctd.json\n"
                        f"{tmp_path / 'scans' / 'b.nrrd'},,\n", encoding="utf-8")
    assert read_manifest(manifest) == [
        Study("patient-1", str(tmp_path / "scans" / "a.nii.gz"), str(tmp_path / "scans" / "a_ctd.json")),
        Study("b", str(tmp_path / "scans" / "b.nrrd"))]
    assert fingerprint(read_manifest(manifest)[1]) == "missing"
    manifest.write_text("path,id\na.png,../escape\n", encoding="utf-8")
    with pytest.raises(SpineAnalysisError, match="not usable as a folder name"):
        read_manifest(manifest)
    manifest.write_text("file\na.png\n", encoding="utf-8")
    with pytest.raises(SpineAnalysisError, match="'path' column"):
        read_manifest(manifest)


def test_a_ct_folder_holds_volumes_and_dicom_folders_not_label_maps(tmp_path):
    for name in ("verse/sub-v1_ct.nii.gz", "verse/sub-v1_seg-vb_ctd.json", "verse/sub-v1_seg-vert_msk.nii.gz",
                 "abdomen/example_ct.nii.gz", "abdomen/totalseg.nii.gz", "abdomen/mask.nii.gz",
                 "lumbar/sub-ct_label-22_ct.nii.gz", "lumbar/sub-ct_seg-vert_label-22_msk.nii.gz",
                 "series/CT.1.dcm", "series/CT.2.dcm", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert discover_folder(tmp_path, "fracture") == [
        Study("abdomen__example_ct", str(tmp_path / "abdomen" / "example_ct.nii.gz")),
        Study("lumbar__sub-ct_label-22_ct", str(tmp_path / "lumbar" / "sub-ct_label-22_ct.nii.gz")),
        Study("series", str(tmp_path / "series")),
        Study("verse__sub-v1_ct", str(tmp_path / "verse" / "sub-v1_ct.nii.gz"),
              str(tmp_path / "verse" / "sub-v1_seg-vb_ctd.json"))]


@pytest.mark.parametrize("args, fragment", [
    (["missing-folder", "--task", "cobb"], "missing-folder not found"),
    (["{src}", "--task", "cobb", "--tls-cert", "c.pem"], "go with --scheduler"),
    (["{src}", "--task", "fracture", "--force"], "belongs to --task cobb"),
    (["{src}", "--task", "cobb", "--scheduler", "10.0.0.1:8786"], "tcp://HOST:PORT"),
    (["{src}", "--task", "cobb"], "holds no radiographs"),
    (["{src}", "--task", "cobb", "--scheduler", "tls://127.0.0.1:8786"], "needs TLS certificates"),
    (["{src}", "--task", "cobb", "--scheduler", "tls://127.0.0.1:8786", "--tls-cert", "c.pem"], "all three"),
    (["{src}", "--task", "cobb", "--scheduler", "tcp://127.0.0.1:8786", "--tls-ca-file", "{src}", "--tls-cert", "{src}",
      "--tls-key", "{src}"], "go with a tls:// scheduler"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, fragment):
    (tmp_path / "src").mkdir()
    code, _, err = _main("cohort", *[a.format(src=tmp_path / "src") for a in args], "--out-dir", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and fragment in err, err
