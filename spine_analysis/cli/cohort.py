"""The cohort command: every study of a folder or manifest through one task, on Dask (``spine_analysis.cohort``)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..cohort import TASKS
from ..errors import SpineAnalysisError
from .common import add_weights

#: Failures listed on the terminal at the end; the rest are in ledger.csv.
SHOWN_FAILURES = 20


def _check_options(args) -> None:
    """What can be refused before any study is looked at or any process started."""
    if args.workers < 1:
        raise SpineAnalysisError("--workers must be 1 or more")
    tls = [args.tls_ca_file, args.tls_cert, args.tls_key]
    if any(tls) and not args.scheduler:
        raise SpineAnalysisError("--tls-ca-file, --tls-cert and --tls-key go with --scheduler tls://HOST:PORT; "
                                 "the local cluster listens on the loopback address only")
    if args.scheduler and "://" not in args.scheduler:
        raise SpineAnalysisError(f"--scheduler {args.scheduler}: give tcp://HOST:PORT or tls://HOST:PORT")
    if args.scheduler:
        from ..cohort.run import ClusterOptions, security

        security(ClusterOptions(scheduler=args.scheduler, tls_ca_file=args.tls_ca_file, tls_cert=args.tls_cert,
                                tls_key=args.tls_key))
    if args.force and args.task != "cobb":
        raise SpineAnalysisError("--force measures radiographs that fail the spine check: it belongs to --task cobb")
    source, out_dir = Path(args.source).resolve(), Path(args.out_dir).resolve()
    if out_dir == source or (source.is_file() and out_dir == source.parent):
        raise SpineAnalysisError(f"--out-dir {args.out_dir} is the source folder: choose another --out-dir")
    from ..io.atomic import check_output_folder

    check_output_folder(out_dir, ["ledger.csv", "ledger.parquet", "cohort.csv", "cohort.parquet", "summary.html"],
                        [args.source])


def _settings(args) -> str:
    """The options that change a result, as the ledger's model column names them."""
    return " ".join(tag for tag, on in (("force", args.force),
                                        ("patient-right-on-image-right", args.image_right_is_patient_right)) if on)


def _run(args, work, ledger, weights, settings: str) -> None:
    """Start (or reach) the cluster, run the planned studies, close the cluster."""
    from ..cohort.run import ClusterOptions, connect, run_cohort

    options = ClusterOptions(args.workers, args.scheduler, args.tls_ca_file, args.tls_cert, args.tls_key,
                             args.dashboard_port)
    client, cluster = connect(options)
    try:
        run_cohort(client, work.run, ledger, args.task, args.out_dir, weights,
                   {"force": args.force, "image_right_is_patient_right": args.image_right_is_patient_right},
                   settings)
    except KeyboardInterrupt:
        print(f"interrupted: the ledger holds every study finished ({ledger.out_dir / 'ledger.csv'}); "
              "run the same command again to go on", file=sys.stderr)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _cmd_cohort(args) -> int:
    from ..cohort.ledger import Ledger
    from ..cohort.models import worker_weights
    from ..cohort.run import plan
    from ..cohort.sources import find_studies
    from ..cohort.summary import write_summary
    from ..cohort.tables import cohort_rows, write_table
    from ..cohort.tasks import STAGING

    _check_options(args)
    studies = find_studies(args.source, args.task, args.out_dir)
    ledger = Ledger(args.out_dir, args.task)
    weights = worker_weights({"landmark": args.landmark_weights, "body": args.body_weights,
                              "fracture": args.fracture_weights})
    settings = _settings(args)
    work = plan(studies, ledger, args.task, weights, args.retry_errors, settings)
    print(f"{len(studies)} studies: {work.done} done already, {work.failed_kept} refused or failed before "
          f"(--retry-errors runs them again), {len(work.run)} to run")
    try:
        if work.run:
            # staging folders of studies a killed run left unfinished: never in the ledger, never in place
            shutil.rmtree(ledger.out_dir / STAGING, ignore_errors=True)
            _run(args, work, ledger, weights, settings)
    finally:
        ledger.close()
    ids = [s.id for s in studies]
    rows = cohort_rows(ledger, ids)
    written = write_table(rows, ledger.out_dir)
    counts = ledger.counts(ids)
    write_summary(ledger.out_dir / "summary.html", args.task, counts, rows)
    failed = [ledger.rows[i] for i in ids if i in ledger.rows and ledger.rows[i]["status"] != "done"]
    for row in failed[:SHOWN_FAILURES]:
        print(f"  {row['status']}: {row['id']} ({row['path']}): {row['reason']}")
    if len(failed) > SHOWN_FAILURES:
        print(f"  ... and {len(failed) - SHOWN_FAILURES} more: see ledger.csv")
    print(f"{counts['done']} done, {counts['refused']} refused, {counts['error']} errors; outputs in {ledger.out_dir}/ "
          f"(ledger.csv/.parquet, {', '.join(written) or 'no table yet'}, summary.html, one folder per study done)")
    return 2 if failed else 0


def add_cohort(sub) -> None:
    p = sub.add_parser("cohort", help="run a task over every study of a folder or manifest, on Dask",
                       description="Run cobb (radiographs), fracture or centra (CTs) on every study of SOURCE, one "
                                   "Dask task per study, on a local cluster (loopback only) or a running scheduler. "
                                   "Writes DIR/<study id>/ per study, a ledger (ledger.csv/.parquet: status, reason, "
                                   "seconds, memory per study), the cohort table (cohort.csv/.parquet) and "
                                   "summary.html. Rerunning skips studies done with the same input and models. "
                                   "Exit 2 when any study is not done.")
    p.add_argument("source", metavar="SOURCE",
                   help="a folder (searched recursively: radiographs; or NIfTI/NRRD/MHA CTs and DICOM folders, label "
                        "maps left out by their names) or a CSV manifest with columns path[,id][,centroids]")
    p.add_argument("--task", required=True, choices=TASKS,
                   help="cobb: Cobb angles per radiograph; fracture: fracture calls per vertebra; centra: centrum "
                        "HU and density hint per vertebra (of the centroid file, else those the classifier finds)")
    p.add_argument("--out-dir", required=True, metavar="DIR", help="output folder (the ledger, tables, one folder "
                                                                   "per study)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes of the local cluster, one thread each (default 1; each holds its models)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask cluster (tcp:// or tls://HOST:PORT) "
                                                          "instead of a local one")
    p.add_argument("--tls-ca-file", metavar="PEM", help="with --scheduler tls://: the CA certificate")
    p.add_argument("--tls-cert", metavar="PEM", help="with --scheduler tls://: this client's certificate")
    p.add_argument("--tls-key", metavar="PEM", help="with --scheduler tls://: this client's private key")
    p.add_argument("--dashboard-port", type=int, default=8787, metavar="PORT",
                   help="the local cluster's dashboard port on 127.0.0.1 (default 8787; 0: any free port)")
    p.add_argument("--retry-errors", action="store_true", help="run again the studies refused or failed before")
    p.add_argument("--force", action="store_true", help="cobb: measure radiographs that fail the spine check")
    p.add_argument("--image-right-is-patient-right", action="store_true",
                   help="cobb: the patient's right is on the image's right (default: on the image's left)")
    add_weights(p, "cobb: landmark model folder", "SPINE_ANALYSIS_LANDMARK_WEIGHTS", "--landmark-weights")
    add_weights(p, "fracture, centra: body model folder", "SPINE_ANALYSIS_BODY_WEIGHTS", "--body-weights")
    add_weights(p, "fracture (and centra without centroids): fracture model folder",
                "SPINE_ANALYSIS_FRACTURE_WEIGHTS", "--fracture-weights")
    p.set_defaults(func=_cmd_cohort)
