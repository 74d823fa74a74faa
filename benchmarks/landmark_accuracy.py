"""Accuracy of the landmark model on labelled AASCE-layout radiographs.

    python benchmarks/landmark_accuracy.py [--aasce DIR] [--model MODEL_DIR] [--subset FILE]

--subset names the images to score, one file name per line (a model trained with --holdout
writes its held-out list as MODEL_DIR/heldout.txt, used by default when it exists). Prints the
challenge SMAPE with a bootstrap 95 % confidence interval over images (on ~100 images it is
several points wide: two curves of almost equal size make the organisers' rule swap the second
and third angles on a one-degree change), angle errors, landmark NMSE and per-image medians;
nothing is written.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap

from spine_analysis.cobb import aasce_angles
from spine_analysis.evaluation import evaluate_angles, smape
from spine_analysis.io import read_aasce_folder, read_xray
from spine_analysis.landmark_model.detector import LandmarkDetector
from spine_analysis.landmark_model.train import plausible_labels
from spine_analysis.landmark_model.weights_io import resolve_weights

DEFAULT_AASCE = Path(__file__).resolve().parents[2] / "shared/datasets/aasce16/train"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aasce", default=os.environ.get("SPINE_AASCE_DIR", DEFAULT_AASCE))
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--subset", default=None, help="file listing the images to score")
    args = parser.parse_args()

    folder = read_aasce_folder(args.aasce)
    model_dir = resolve_weights(args.model)
    subset = Path(args.subset) if args.subset else model_dir / "heldout.txt"
    if subset.exists():
        wanted = {line.strip() for line in subset.read_text().splitlines() if line.strip()}
        indices = [i for i, name in enumerate(folder.filenames) if name in wanted]
        scope = f"{len(indices)} images listed in {subset}"
    else:
        indices = list(range(len(folder)))
        scope = f"all {len(indices)} images of {args.aasce} (no held-out list: these may be training images)"
    detector = LandmarkDetector.load(args.model)
    pred_angles, pred_rows, seconds, level_error, corner_error = [], [], [], [], []
    for i in indices:
        pixels = read_xray(folder.image_path(i)).pixels
        detection = detector.detect(pixels)
        height, width = pixels.shape
        pred_angles.append(aasce_angles(detection.landmarks, height))
        pred_rows.append(detection.landmarks.to_aasce_row(width, height))
        seconds.append(detection.seconds)
        truth = folder.landmarks_px(i)
        spacing = np.median(np.linalg.norm(np.diff(truth.centres, axis=0), axis=1))
        level_error.append(np.median(np.linalg.norm(detection.landmarks.centres - truth.centres, axis=1)) / spacing)
        corner_error.append(np.median(np.linalg.norm(detection.landmarks.points - truth.points, axis=2)) / spacing)
    print(f"model: {model_dir} ({detector.version})")
    print(f"scored: {scope}")
    good, glitched = plausible_labels(args.aasce, indices)
    per_image = np.array([smape(np.array(p)[None], t[None]) for p, t in zip(pred_angles, folder.angles[indices])])
    for title, chosen in ((f"all {len(indices)} images", indices),
                          (f"{len(good)} images whose labels are anatomically plausible "
                           f"({len(glitched)} have vertebrae out of order or crossed corners in the labels)", good)):
        rows = [indices.index(i) for i in chosen]
        pred, truth = np.array(pred_angles)[rows], folder.angles[chosen]
        result = evaluate_angles(pred, truth, np.array(pred_rows)[rows], folder.landmarks[chosen])
        interval = bootstrap((per_image[rows],), np.mean, n_resamples=5000, random_state=0).confidence_interval
        print(f"\n== {title}")
        print("\n".join(result.lines()))
        print(f"SMAPE 95 % bootstrap interval over images: {interval.low:.2f}-{interval.high:.2f} %")
        print(f"median per-image SMAPE: {np.median(per_image[rows]):.2f} %")
    right = np.array(level_error) < 0.3
    print(f"\nlevels right (median centre error < 0.3 spacing): {right.sum()} of {len(right)} images, "
          f"SMAPE {per_image[right].mean():.2f} %; shifted: SMAPE {per_image[~right].mean():.2f} %" if (~right).any()
          else f"\nlevels right in all {len(right)} images")
    print(f"median corner error where the levels are right: {np.median(np.array(corner_error)[right]):.3f} spacings")
    print(f"median detection time: {statistics.median(seconds):.3f} s per radiograph")
    return 0


if __name__ == "__main__":
    sys.exit(main())
