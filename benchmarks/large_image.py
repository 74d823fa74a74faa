"""Radiographs of any size: the Cobb pipeline on AASCE images and on the same images upscaled.

    python benchmarks/large_image.py [--aasce DIR] [--count N] [--factor F] [--model MODEL_DIR]

Each of the first N images (filenames.csv order) is upscaled F times (bicubic) into a temporary
folder, never into the repository. Per image it prints the largest difference between the
three AASCE angles detected on the original and on the upscaled image, and the peak resident
memory and the wall time (start-up and model load included) of one full ``spine-analysis cobb``
run (read, detect, report, overlay) on each size, every run in a fresh process; then the medians.
The target of issue 15: a 4x upscaled radiograph gives the same angles (within 3°) in at most
1.5 GB.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from spine_analysis.datasets import aasce_dir
from spine_analysis.io.aasce import read_aasce_folder
from spine_analysis.io.xray import read_xray
from spine_analysis.xray.cobb import aasce_angles

TARGET_DEG, TARGET_MB = 3.0, 1536
#: One ``spine-analysis cobb`` run that reports its own peak memory (ru_maxrss: kB on Linux).
CHILD = """
import resource, sys
from spine_analysis.cli import main
code = main(sys.argv[1:])
print("peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


def cobb_run(image: Path, out_dir: Path, model) -> tuple[float, float, int]:
    """Peak MB, seconds and overlay.png bytes of ``spine-analysis cobb IMAGE`` in a fresh process."""
    argv = [sys.executable, "-c", CHILD, "cobb", str(image), "--out-dir", str(out_dir)]
    if model:
        argv += ["--weights", str(model)]
    started = time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if run.returncode or "peak_kb" not in run.stdout:
        raise SystemExit(f"spine-analysis cobb {image} failed:\n{run.stdout}{run.stderr}")
    fields = run.stdout.split()
    peak_kb = int(fields[fields.index("peak_kb") + 1])
    return peak_kb / 1024, seconds, (out_dir / "overlay.png").stat().st_size


def detected_angles(images: list[Path], model) -> list[np.ndarray]:
    """The AASCE angles of the landmarks the model finds on each image."""
    from spine_analysis.xray.landmark_model.detector import LandmarkDetector

    detector = LandmarkDetector.load(model)
    angles = []
    for image in images:
        pixels = read_xray(image).pixels
        angles.append(aasce_angles(detector.detect(pixels).landmarks, pixels.shape[0]))
    return angles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aasce", default=aasce_dir(),
                        help="AASCE-layout folder (default: $SPINE_AASCE_DIR, else shared/datasets/aasce16/train)")
    parser.add_argument("--count", type=int, default=5, help="how many images (default 5)")
    parser.add_argument("--factor", type=int, default=4, help="upscaling factor (default 4)")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    args = parser.parse_args()

    folder = read_aasce_folder(args.aasce)
    originals = [folder.image_path(i) for i in range(min(args.count, len(folder)))]
    with tempfile.TemporaryDirectory(prefix="spine-large-") as tmp:
        tmp = Path(tmp)
        upscaled, sizes = [tmp / f"{i}.png" for i in range(len(originals))], []
        for original, large in zip(originals, upscaled):
            with Image.open(original) as img:
                sizes.append((img.width * args.factor, img.height * args.factor))
                img.resize(sizes[-1], Image.Resampling.BICUBIC).save(large, compress_level=1)
        # The runs come before this process loads the model: on Linux a child's ru_maxrss starts
        # from its parent's peak, which would then hide the run's own.
        runs = [[cobb_run(image, tmp / f"{i}-{size}", args.model) for size, image in (("original", original),
                                                                                      ("upscaled", large))]
                for i, (original, large) in enumerate(zip(originals, upscaled))]
        angles = zip(detected_angles(originals, args.model), detected_angles(upscaled, args.model))
    diffs = []
    for original, (small, large), (width, height), (before, after) in zip(originals, runs, sizes, angles):
        diffs.append(float(np.abs(after - before).max()))
        print(f"{original.name}: angles {', '.join(f'{a:.1f}' for a in before)}° original, "
              f"{', '.join(f'{a:.1f}' for a in after)}° at {width} x {height} px (largest difference "
              f"{diffs[-1]:.2f}°); cobb run {small[0]:.0f} MB {small[1]:.1f} s original, "
              f"{large[0]:.0f} MB {large[1]:.1f} s upscaled, overlay {large[2] / 1e6:.1f} MB")
    small_mb, small_s, large_mb, large_s = ([run[k][m] for run in runs] for k in (0, 1) for m in (0, 1))
    print(f"median over {len(diffs)} images, upscaled {args.factor}x: largest angle difference "
          f"{statistics.median(diffs):.2f}° (max {max(diffs):.2f}°); one cobb run: "
          f"{statistics.median(small_mb):.0f} MB {statistics.median(small_s):.1f} s original, "
          f"{statistics.median(large_mb):.0f} MB {statistics.median(large_s):.1f} s upscaled "
          f"(max {max(large_mb):.0f} MB)")
    within = sum(diff <= TARGET_DEG for diff in diffs)
    met = within == len(diffs) and max(large_mb) <= TARGET_MB
    print(f"target (within {TARGET_DEG:g}° in at most {TARGET_MB / 1024:g} GB): {'met' if met else 'NOT met'}, "
          f"{within} of {len(diffs)} images within {TARGET_DEG:g}°, peak {max(large_mb):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
