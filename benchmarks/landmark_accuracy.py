"""Accuracy of the landmark model on labelled AASCE-layout radiographs.

    python benchmarks/landmark_accuracy.py [--aasce DIR] [--model MODEL_DIR ...] [--subset FILE]
                                           [--margin-above F] [--margin-below F]

--subset names the images to score, one file name per line (a model trained with --holdout
writes its held-out list as MODEL_DIR/heldout.txt, used by default when it exists). Prints the
challenge SMAPE with a bootstrap 95 % confidence interval over images (on ~100 images it is
several points wide: two curves of almost equal size make the organisers' rule swap the second
and third angles on a one-degree change), angle errors, landmark NMSE, per-image medians and
the scores by curve size (the image's largest true angle); nothing is written. With --model
given more than once (one model per patient-grouped split) every model scores its own
held-out list and the figures are pooled over all those images.

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


CURVE_BINS = (("< 20°", 0, 20), ("20-40°", 20, 40), (">= 40°", 40, 180))   # largest true angle of an image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aasce", default=aasce_dir(),
                        help="AASCE-layout folder (default: $SPINE_AASCE_DIR, else shared/datasets/aasce16/train)")
    parser.add_argument("--model", action="append", default=None,
                        help="model folder (default: the shipped model); repeat it to pool the held-out "
                             "images of several splits, each scored by its own model")
    parser.add_argument("--subset", default=None, help="file listing the images to score (one model only)")
    parser.add_argument("--margin-above", type=float, default=0.0, help="share of the height added above (<0: cut)")
    parser.add_argument("--margin-below", type=float, default=0.0, help="share of the height added below (<0: cut)")
    args = parser.parse_args()
    models = args.model or [None]
    if args.subset and len(models) > 1:
        parser.error("--subset scores one model; several models are each scored on their own held-out list")
    folder = read_aasce_folder(args.aasce)
    runs = [score(folder, model, args) for model in models]
    if len(runs) > 1:
        for run in runs:
            print(f"{run['model']}: SMAPE {run['per_image'].mean():.2f} % over {len(run['indices'])} images")
        print("pooled over these models' held-out images:")
    report({key: np.concatenate([run[key] for run in runs]) for key in runs[0] if key not in ("model", "indices")},
           [i for run in runs for i in run["indices"]], args.aasce)
    return 0


def score(folder, model, args) -> dict:
    """Detect every image of ``model``'s held-out list (or --subset, or the whole folder) and
    keep per-image angles, landmark rows, level and corner errors and times."""
    reframed = bool(args.margin_above or args.margin_below)
    model_dir = resolve_weights(model)
    subset = Path(args.subset) if args.subset else model_dir / "heldout.txt"
    if subset.exists():
        wanted = {line.strip() for line in subset.read_text().splitlines() if line.strip()}
        indices = [i for i, name in enumerate(folder.filenames) if name in wanted]
        scope = f"{len(indices)} images listed in {subset}"
    else:
        indices = list(range(len(folder)))
        scope = f"all {len(indices)} images of {args.aasce} (no held-out list: these may be training images)"
    detector = LandmarkDetector.load(model)
    rows = {key: [] for key in ("pred_angles", "true_angles", "pred_rows", "true_rows", "seconds",
                                "level_error", "corner_error", "framing")}
    for i in indices:
        pixels = read_xray(folder.image_path(i)).pixels
        truth = folder.landmarks_px(i)
        if reframed:
            pixels, truth = reframe(pixels, truth, args.margin_above, args.margin_below)
        detection = detector.detect(pixels)
        height, width = pixels.shape
        rows["pred_angles"].append(aasce_angles(detection.landmarks, height))
        rows["pred_rows"].append(detection.landmarks.to_aasce_row(width, height))
        rows["true_angles"].append(aasce_angles(truth, height) if reframed else folder.angles[i])
        rows["true_rows"].append(truth.to_aasce_row(width, height) if reframed else folder.landmarks[i])
        rows["framing"].append(any(flag.code == "framing" for flag in detection.flags))
        rows["seconds"].append(detection.seconds)
        spacing = np.median(np.linalg.norm(np.diff(truth.centres, axis=0), axis=1))
        rows["level_error"].append(np.median(np.linalg.norm(detection.landmarks.centres - truth.centres, axis=1))
                                   / spacing)
        rows["corner_error"].append(np.median(np.linalg.norm(detection.landmarks.points - truth.points, axis=2))
                                    / spacing)
    print(f"model: {model_dir} ({detector.version})")
    print(f"scored: {scope}")
    if reframed:
        print(f"reframed: {args.margin_above:+.0%} of the height above, {args.margin_below:+.0%} below; "
              "true angles recomputed from the moved labels")
    arrays = {key: np.array(value) for key, value in rows.items()}
    arrays["per_image"] = np.array([smape(p[None], t[None]) for p, t in zip(arrays["pred_angles"],
                                                                            arrays["true_angles"])])
    return {"model": str(model_dir), "indices": indices, **arrays}


def report(rows: dict, indices: list[int], aasce) -> None:
    """Print the scores of the pooled rows: all images, plausible labels, by curve size, levels."""
    per_image = rows["per_image"]
    good, glitched = plausible_labels(aasce, indices)
    good = set(good)
    for title, chosen in ((f"all {len(indices)} images", np.ones(len(indices), bool)),
                          (f"{len(good)} images whose labels are anatomically plausible "
                           f"({len(glitched)} have vertebrae out of order or crossed corners in the labels)",
                           np.array([i in good for i in indices]))):
        result = evaluate_angles(rows["pred_angles"][chosen], rows["true_angles"][chosen],
                                 rows["pred_rows"][chosen], rows["true_rows"][chosen])
        interval = bootstrap((per_image[chosen],), np.mean, n_resamples=5000, random_state=0).confidence_interval
        print(f"\n== {title}")
        print("\n".join(result.lines()))
        print(f"SMAPE 95 % bootstrap interval over images: {interval.low:.2f}-{interval.high:.2f} %")
        print(f"median per-image SMAPE: {np.median(per_image[chosen]):.2f} %")
    largest = rows["true_angles"].max(axis=1)
    print("\nby curve size (largest true angle): images, SMAPE %, mean absolute error per angle, "
          "median corner error (spacings)")
    for name, low, high in CURVE_BINS:
        chosen = (largest >= low) & (largest < high)
        if chosen.any():
            mae = np.abs(rows["pred_angles"][chosen] - rows["true_angles"][chosen]).mean(axis=0)
            print(f"  {name:>7}: {chosen.sum():>3} images, SMAPE {per_image[chosen].mean():6.2f} %, "
                  f"MAE {', '.join(f'{v:.2f}°' for v in mae)}, corner {np.median(rows['corner_error'][chosen]):.3f}")
    right = rows["level_error"] < 0.3
    print(f"\nlevels right (median centre error < 0.3 spacing): {right.sum()} of {len(right)} images, "
          f"SMAPE {per_image[right].mean():.2f} %; shifted: SMAPE {per_image[~right].mean():.2f} %" if (~right).any()
          else f"\nlevels right in all {len(right)} images")
    print(f"median corner error where the levels are right: {np.median(rows['corner_error'][right]):.3f} spacings")
    print(f"framing flag (T1 or L5 far from where the training images have it): "
          f"{int(rows['framing'].sum())} of {len(indices)} images")
    print(f"median detection time: {statistics.median(rows['seconds']):.3f} s per radiograph")


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
