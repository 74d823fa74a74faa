"""Speed and memory of the Cobb pipeline on this machine's CPU.

    python benchmarks/landmark_speed.py [--image IMG ...] [--model MODEL_DIR] [--repeat N]

Without images it times the project's synthetic radiograph (900 x 2300 px, about the size of
an AASCE image). Prints the model load time separately, then the median over runs of one
radiograph end to end with the model loaded (read the file, detect, compute the angles, write
the report, landmarks and overlay), and the process's peak resident memory.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from spine_analysis.xray.cobb import analyse
from spine_analysis.io.xray import read_xray
from spine_analysis.xray.landmark_model.detector import LandmarkDetector
from spine_analysis.xray.report import make_report, write_report_files
from spine_analysis.xray.synthetic import example_case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", nargs="*", default=[])
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        images = [Path(p) for p in args.image]
        if not images:
            pixels, _, _ = example_case()
            images = [Path(tmp) / "synthetic.png"]
            Image.fromarray(np.round(pixels * 255).astype(np.uint8)).save(images[0])
        started = time.perf_counter()
        detector = LandmarkDetector.load(args.model)
        load_s = time.perf_counter() - started
        detect_s, total_s = [], []
        for run in range(args.repeat):
            path = images[run % len(images)]
            t0 = time.perf_counter()
            xray = read_xray(path)
            detection = detector.detect(xray.pixels)
            height, width = xray.pixels.shape
            report = make_report(analyse(detection.landmarks, height), str(path), (width, height))
            write_report_files(Path(tmp) / f"run{run}", xray.pixels, report)
            total_s.append(time.perf_counter() - t0)
            detect_s.append(detection.seconds)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model load: {load_s:.2f} s")
    print(f"detection only: median {statistics.median(detect_s):.3f} s per radiograph ({args.repeat} runs)")
    print(f"end to end (read, detect, angles, report + overlay written): median "
          f"{statistics.median(total_s):.3f} s per radiograph")
    print(f"peak memory: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
