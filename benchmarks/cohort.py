"""Throughput and memory of ``spine-analysis cohort`` on this machine: studies per minute and memory per
worker, for 1 and 2 local workers, on radiographs and on CTs.

    python benchmarks/cohort.py --aasce DIR [--radiographs N] [--ct DIR] [--ct-task fracture|centra]
                                [--workers 1 2]

``--aasce`` is an AASCE-layout folder (its images/ are used, the first N in filenames.csv order);
``--ct`` a folder of CTs as ``cohort`` finds them (the ct-spine folder). Each configuration runs the
command as a user would, in a fresh process into a fresh output folder (nothing skipped), and reads
its ledger. Printed per configuration: the wall time (cluster start and model loads included),
studies per minute over the whole run and in the steady state (per-study seconds once each worker
has loaded its model), the first study's extra seconds on each worker (mostly the model load), and
the peak resident memory of each worker process. The inputs are never copied or modified.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

COMMAND = [sys.executable, "-m", "spine_analysis", "cohort"]


def _radiograph_manifest(aasce: Path, count: int, folder: Path) -> Path:
    """A manifest of the first ``count`` images of an AASCE folder."""
    names = [line.strip() for line in (aasce / "filenames.csv").read_text(encoding="utf-8").splitlines()
             if line.strip()][:count]
    manifest = folder / "radiographs.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path"])
        writer.writerows([[str(aasce / "images" / name)] for name in names])
    return manifest


def _run(source: Path, task: str, workers: int, out_dir: Path, extra: list[str]) -> dict:
    """One cohort run from scratch: its wall time and what its ledger says."""
    started = time.perf_counter()
    done = subprocess.run([*COMMAND, str(source), "--task", task, "--out-dir", str(out_dir), "--workers",
                           str(workers), "--dashboard-port", "0", *extra], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 2):   # 2: some studies refused, still a measurement
        sys.exit(f"cohort failed: {(done.stderr.strip().splitlines() or ['exit %d' % done.returncode])[-1]}")
    with open(out_dir / "ledger.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {"wall": wall, "rows": rows}


def _figures(run: dict, workers: int) -> dict:
    """Studies per minute (whole run, steady state), first-study overhead and memory per worker."""
    rows = sorted(run["rows"], key=lambda r: r["finished"])
    by_worker = defaultdict(list)
    for row in rows:
        by_worker[row["worker"]].append(row)
    later = [float(r["seconds"]) for w in by_worker.values() for r in w[1:]]
    steady = statistics.median(later) if later else None
    first_extra = [float(w[0]["seconds"]) - steady for w in by_worker.values()] if later else []
    return {"studies": len(rows), "refused": sum(r["status"] != "done" for r in rows), "wall_s": run["wall"],
            "per_min": 60 * len(rows) / run["wall"], "steady_per_min": 60 * workers / steady if steady else None,
            "median_study_s": steady, "first_extra_s": max(first_extra) if first_extra else None,
            "peak_mb": [max(float(r["peak_memory_mb"]) for r in w) for w in by_worker.values()]}


def _print(kind: str, workers: int, f: dict) -> None:
    steady = "-" if f["steady_per_min"] is None else f"{f['steady_per_min']:.1f}"
    first = "-" if f["first_extra_s"] is None else f"{f['first_extra_s']:.1f}"
    study = "-" if f["median_study_s"] is None else f"{f['median_study_s']:.2f}"
    print(f"{kind:<12} {workers:>7} {f['studies']:>7} {f['refused']:>7} {f['wall_s']:>7.1f} {f['per_min']:>9.1f} "
          f"{steady:>10} {study:>9} {first:>9}  {', '.join(f'{m:.0f}' for m in f['peak_mb'])}",
          flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aasce", type=Path, help="AASCE-layout folder (images/, filenames.csv)")
    parser.add_argument("--radiographs", type=int, default=100, help="how many of its images (default 100)")
    parser.add_argument("--ct", type=Path, help="a folder of CTs (e.g. the ct-spine folder)")
    parser.add_argument("--ct-task", choices=("fracture", "centra"), default="fracture")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    args = parser.parse_args(argv)
    if not (args.aasce or args.ct):
        parser.error("give --aasce DIR and/or --ct DIR")
    print(f"{'inputs':<12} {'workers':>7} {'studies':>7} {'refused':>7} {'wall s':>7} {'per min':>9} "
          f"{'steady/min':>10} {'study s':>9} {'1st +s':>9}  peak MB per worker")
    with tempfile.TemporaryDirectory(prefix="cohort-benchmark-") as scratch:
        scratch = Path(scratch)
        jobs = []
        if args.aasce:
            jobs.append(("radiographs", _radiograph_manifest(args.aasce, args.radiographs, scratch), "cobb"))
        if args.ct:
            jobs.append((f"CTs ({args.ct_task})", args.ct, args.ct_task))
        for kind, source, task in jobs:
            for workers in args.workers:
                out_dir = scratch / f"{task}-{workers}"
                _print(kind, workers, _figures(_run(source, task, workers, out_dir, []), workers))
    print("per min: studies over the whole wall time (cluster start and model loads included); steady/min: "
          "workers / median seconds per study after each worker's first; 1st +s: the first study's extra "
          "seconds on a worker (model load, imports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
