"""Accuracy of the landmark model on labelled AASCE-layout radiographs.

    python benchmarks/landmark_accuracy.py [--aasce DIR] [--model MODEL_DIR] [--subset FILE]
                                           [--margin-above F] [--margin-below F]

--subset names the images to score, one file name per line (a model trained with --holdout
writes its held-out list as MODEL_DIR/heldout.txt, used by default when it exists). Prints the
challenge SMAPE with a bootstrap 95 % confidence interval over images (on ~100 images it is
several points wide: two curves of almost equal size make the organisers' rule swap the second
and third angles on a one-degree change), angle errors, landmark NMSE and per-image medians;
nothing is written.

--margin-above / --margin-below reframe every radiograph before detection: blank rows (its
darkest value) added above or below, as a share of its height, or rows cut off when negative;
the labels move with the picture and the true angles are recomputed from them by the
organisers' rule. They measure how much the model depends on the AASCE framing, and the
framing flags are counted.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy.stats import bootstrap

from spine_analysis.xray.cobb import aasce_angles
from spine_analysis.xray.evaluation import evaluate_angles, smape
from spine_analysis.datasets import aasce_dir
from spine_analysis.io.aasce import read_aasce_folder
from spine_analysis.io.xray import read_xray
from spine_analysis.xray.landmark_model.detector import LandmarkDetector
from spine_analysis.xray.landmark_model.train import plausible_labels
from spine_analysis.xray.landmarks import SpineLandmarks
from spine_analysis.xray.landmark_model.weights_io import resolve_weights


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aasce", default=aasce_dir(),
                        help="AASCE-layout folder (default: $SPINE_AASCE_DIR, else shared/datasets/aasce16/train)")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--subset", default=None, help="file listing the images to score")
    parser.add_argument("--margin-above", type=float, default=0.0, help="share of the height added above (<0: cut)")
    parser.add_argument("--margin-below", type=float, default=0.0, help="share of the height added below (<0: cut)")
    args = parser.parse_args()
    reframed = bool(args.margin_above or args.margin_below)

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
    true_angles, true_rows, framing_flagged = [], [], 0
    for i in indices:
        pixels = read_xray(folder.image_path(i)).pixels
        truth = folder.landmarks_px(i)
        if reframed:
            pixels, truth = reframe(pixels, truth, args.margin_above, args.margin_below)
        detection = detector.detect(pixels)
        height, width = pixels.shape
        pred_angles.append(aasce_angles(detection.landmarks, height))
        pred_rows.append(detection.landmarks.to_aasce_row(width, height))
        true_angles.append(aasce_angles(truth, height) if reframed else folder.angles[i])
        true_rows.append(truth.to_aasce_row(width, height) if reframed else folder.landmarks[i])
        framing_flagged += any(flag.code == "framing" for flag in detection.flags)
        seconds.append(detection.seconds)
        spacing = np.median(np.linalg.norm(np.diff(truth.centres, axis=0), axis=1))
        level_error.append(np.median(np.linalg.norm(detection.landmarks.centres - truth.centres, axis=1)) / spacing)
        corner_error.append(np.median(np.linalg.norm(detection.landmarks.points - truth.points, axis=2)) / spacing)
    print(f"model: {model_dir} ({detector.version})")
    print(f"scored: {scope}")
    if reframed:
        print(f"reframed: {args.margin_above:+.0%} of the height above, {args.margin_below:+.0%} below; "
              "true angles recomputed from the moved labels")
    good, glitched = plausible_labels(args.aasce, indices)
    true_angles, true_rows = np.array(true_angles), np.array(true_rows)
    per_image = np.array([smape(np.array(p)[None], t[None]) for p, t in zip(pred_angles, true_angles)])
    for title, chosen in ((f"all {len(indices)} images", indices),
                          (f"{len(good)} images whose labels are anatomically plausible "
                           f"({len(glitched)} have vertebrae out of order or crossed corners in the labels)", good)):
        rows = [indices.index(i) for i in chosen]
        pred, truth = np.array(pred_angles)[rows], true_angles[rows]
        result = evaluate_angles(pred, truth, np.array(pred_rows)[rows], true_rows[rows])
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
    print(f"framing flag (T1 or L5 far from where the training images have it): "
          f"{framing_flagged} of {len(indices)} images")
    print(f"median detection time: {statistics.median(seconds):.3f} s per radiograph")
    return 0


def reframe(pixels: np.ndarray, truth: SpineLandmarks, above: float, below: float):
    """The radiograph with ``above``/``below`` x its height of blank rows added (cut when < 0),
    and its labels moved with it."""
    height = pixels.shape[0]
    top, bottom = round(above * height), round(below * height)
    blank = np.full((max(top, bottom, 0), pixels.shape[1]), pixels.min(), pixels.dtype)
    kept = pixels[max(-top, 0):height - max(-bottom, 0)]
    pixels = np.concatenate([blank[:max(top, 0)], kept, blank[:max(bottom, 0)]])
    points = truth.points.copy()
    points[..., 1] += top
    return pixels, SpineLandmarks(points, truth.first_level)


if __name__ == "__main__":
    sys.exit(main())
