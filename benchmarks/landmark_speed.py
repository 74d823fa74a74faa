"""Speed and memory of the Cobb pipeline as a user meets it, on this machine's CPU.

    python benchmarks/landmark_speed.py [--image IMG ...] [--repeat N]

Without images it times the project's synthetic radiograph (900 x 2300 px, about the size of
an AASCE image). Three ways a user runs it, each in a fresh process as the user would:
- first call: one ``spine-analysis cobb IMAGE`` from the shell, start-up and model load
  included (the wall time of the whole command, median over ``--repeat`` commands);
- later calls in Slicer: requests to one ``spine-analysis serve`` process (what the Slicer
  module keeps warm); the first request pays the start-up, the later ones are the figure;
- batch: ``spine-analysis predict`` over a folder of ``--batch`` copies, per image.
Also the start-up alone (``spine-analysis --help``, which imports no model) and the server's
peak resident memory. Medians throughout.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from spine_analysis.xray.synthetic import example_case

COMMAND = [sys.executable, "-m", "spine_analysis"]


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:   # a timing of a failed run would mislead: stop with the tool's own message
        last_line = (run.stderr.strip().splitlines() or [f"exit code {run.returncode}"])[-1]
        sys.exit(f"spine-analysis {command[3]} failed: {last_line}")
    return time.perf_counter() - started


def _serve(images: list[Path], out: Path) -> tuple[list[float], float]:
    """Seconds per request to one server (request sent -> done line read) and its peak memory (MB)."""
    server = subprocess.Popen([*COMMAND, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, bufsize=1)
    seconds = []
    for k, image in enumerate(images):
        started = time.perf_counter()
        server.stdin.write(json.dumps({"image": str(image), "out_dir": str(out / f"serve{k}")}) + "\n")
        server.stdin.flush()
        while True:
            answer = json.loads(server.stdout.readline())
            if answer["status"] != "progress":
                break
        if answer["status"] != "done":
            raise SystemExit(f"the server refused {image}: {answer['message']}")
        seconds.append(time.perf_counter() - started)
    peak_mb = _peak_mb(server.pid)
    server.stdin.close()
    server.wait()
    return seconds, peak_mb


def _peak_mb(pid: int) -> float:
    """Peak resident memory of a running process (Linux: VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", nargs="*", default=[])
    parser.add_argument("--repeat", type=int, default=5, help="cold commands and warm requests to time")
    parser.add_argument("--batch", type=int, default=20, help="images in the batch (predict) folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = [Path(p) for p in args.image]
        if missing := [str(p) for p in images if not p.is_file()]:
            parser.error(f"not an image file: {', '.join(missing)}")
        if not images:
            pixels, _, _ = example_case()
            images = [tmp / "synthetic.png"]
            Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(images[0])
        startup = [_wall([*COMMAND, "--help"]) for _ in range(args.repeat)]
        cold = [_wall([*COMMAND, "cobb", str(images[k % len(images)]), "--out-dir", str(tmp / f"cold{k}")])
                for k in range(args.repeat)]
        warm, peak_mb = _serve([images[k % len(images)] for k in range(args.repeat + 1)], tmp)
        batch = tmp / "batch"
        (batch / "images").mkdir(parents=True)
        names = [f"case{k:03d}{images[k % len(images)].suffix}" for k in range(args.batch)]
        for k, name in enumerate(names):
            shutil.copy(images[k % len(images)], batch / "images" / name)
        (batch / "filenames.csv").write_text("".join(name + "\n" for name in names))
        predict_s = _wall([*COMMAND, "predict", "--aasce", str(batch), "--out-dir", str(tmp / "predicted")])
    print(f"start-up alone (spine-analysis --help): median {statistics.median(startup):.2f} s")
    print(f"first call (spine-analysis cobb IMAGE, fresh process, outputs written): "
          f"median {statistics.median(cold):.2f} s ({args.repeat} commands)")
    print(f"server (spine-analysis serve, as Slicer keeps it): first request {warm[0]:.2f} s, later requests "
          f"median {statistics.median(warm[1:]):.2f} s ({len(warm) - 1} requests, outputs written), "
          f"peak memory {peak_mb:.0f} MB")
    print(f"batch (spine-analysis predict, {args.batch} images, start-up included): "
          f"{predict_s / args.batch:.2f} s per image, {predict_s:.1f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
