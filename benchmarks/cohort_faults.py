"""Faults during a cohort run, checked by hand: a worker killed mid-run, and Ctrl-C.

    python benchmarks/cohort_faults.py [--count 16] [--workers 2] [--landmark-weights DIR]

Draws ``--count`` synthetic radiographs, then:
- kill: runs ``spine-analysis cohort --task cobb --force`` on them and, once a few studies are in the
  ledger, kills one worker process (SIGKILL, as the out-of-memory killer would). The run must end with
  every study done exactly once in the ledger (the scheduler reruns the killed worker's study elsewhere).
- interrupt: runs it again into a fresh folder and sends SIGINT to the whole process group (what Ctrl-C
  at a terminal does) once a few studies are done. The command must exit 130 with a ledger whose done
  rows all have their folders; the same command again must run only the rest.
Prints what it saw; exit 1 when a check fails. Too slow and too timing-bound for the test suite.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from spine_analysis.xray.report import OUTPUT_FILES
from spine_analysis.xray.synthetic import example_case


def _radiographs(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for seed in range(count):
        pixels = example_case(seed)[0]
        Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(folder / f"case {seed:03d}.png")


def _command(source: Path, out_dir: Path, args) -> list[str]:
    weights = ["--landmark-weights", str(args.landmark_weights)] if args.landmark_weights else []
    return [sys.executable, "-m", "spine_analysis", "cohort", str(source), "--task", "cobb", "--out-dir",
            str(out_dir), "--workers", str(args.workers), "--force", "--dashboard-port", "0", *weights]


def _journal_lines(out_dir: Path) -> int:
    journal = out_dir / "ledger.jsonl"
    return len(journal.read_text(encoding="utf-8").splitlines()) if journal.is_file() else 0


def _wait_for_studies(process: subprocess.Popen, out_dir: Path, count: int, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while _journal_lines(out_dir) < count:
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the run ended or stalled before {count} studies were done: {process.stderr.read()}")
        time.sleep(0.2)


def _by_worker(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["worker"].split(":")[-1]] = counts.get(row["worker"].split(":")[-1], 0) + 1
    return counts


def _ledger(out_dir: Path) -> list[dict]:
    with open(out_dir / "ledger.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (*OUTPUT_FILES, "cohort_rows.json"))


def _check(ok: bool, what: str) -> bool:
    print(f"  {'ok ' if ok else 'FAILED'} {what}", flush=True)
    return ok


def kill_a_worker(source: Path, out_dir: Path, args) -> bool:
    import psutil

    print("kill: a worker killed mid-run", flush=True)
    process = subprocess.Popen(_command(source, out_dir, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    _wait_for_studies(process, out_dir, 2)
    workers = [p for p in psutil.Process(process.pid).children(recursive=True) if "spawn" in " ".join(p.cmdline())]
    victim = max(workers, key=lambda p: p.cpu_percent(interval=0.2))
    victim.kill()
    journal = [json.loads(line) for line in (out_dir / "ledger.jsonl").read_text(encoding="utf-8").splitlines()]
    before = _by_worker(journal).get(str(victim.pid), 0)
    print(f"  killed worker process {victim.pid} after {_journal_lines(out_dir)} studies", flush=True)
    stdout, _ = process.communicate(timeout=900)
    rows = _ledger(out_dir)
    ids = [r["id"] for r in rows]
    return all([_check(process.returncode == 0, f"exit code {process.returncode} (0: every study done)"),
                _check(len(ids) == len(set(ids)) == args.count, f"{len(ids)} ledger rows for {args.count} studies, "
                                                                f"{len(set(ids))} distinct"),
                _check(all(r["status"] == "done" for r in rows), "every study done"),
                _check(all(_complete(out_dir / i) for i in ids), "every study's folder complete"),
                _check(_by_worker(rows).get(str(victim.pid), 0) == before,
                       f"the killed worker keeps only the {before} studies it finished; studies by worker process: "
                       f"{_by_worker(rows)}")])


def interrupt(source: Path, out_dir: Path, args) -> bool:
    print("interrupt: Ctrl-C mid-run, then the same command again", flush=True)
    process = subprocess.Popen(_command(source, out_dir, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    _wait_for_studies(process, out_dir, 2)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    rows = _ledger(out_dir)
    done = [r["id"] for r in rows if r["status"] == "done"]
    print(f"  interrupted with {len(done)} studies done; last line: {stderr.strip().splitlines()[-1:]}", flush=True)
    checks = [_check(process.returncode == 130, f"exit code {process.returncode} (130: interrupted)"),
              _check(len(done) < args.count, "the run stopped early"),
              _check(all(_complete(out_dir / i) for i in done), "every done study has its folder"),
              _check(all(_complete(folder) for folder in out_dir.iterdir()
                         if folder.is_dir() and not folder.name.startswith(".")),
                     "no half-written study folder in place (staging stays under .partial/)")]
    again = subprocess.run(_command(source, out_dir, args), capture_output=True, text=True, timeout=900)
    first_line = again.stdout.splitlines()[0] if again.stdout else again.stderr
    rows = _ledger(out_dir)
    return all(checks + [_check(again.returncode == 0 and f"{len(done)} done already" in first_line,
                                f"the rerun skips them: {first_line!r}"),
                         _check(len(rows) == args.count and all(r["status"] == "done" for r in rows),
                                "after the rerun every study is done, once")])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=16, help="synthetic radiographs (default 16)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--landmark-weights", type=Path, help="landmark model folder (default: the shipped one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cohort-faults-") as scratch:
        scratch = Path(scratch)
        _radiographs(scratch / "radiographs", args.count)
        passed = kill_a_worker(scratch / "radiographs", scratch / "kill", args)
        passed = interrupt(scratch / "radiographs", scratch / "interrupt", args) and passed
    print("all checks passed" if passed else "SOME CHECKS FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
