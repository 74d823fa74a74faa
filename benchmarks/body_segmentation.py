"""Click-to-segment on real CT: accuracy, robustness to the click, leakage, refusals, speed, memory.

    python benchmarks/body_segmentation.py [--data DIR] [--folds DIR | --model DIR] [--json FILE]

For each labelled vertebra under DIR (default: $SPINE_CT_DIR, the ct-spine folder; see
``spine_analysis.ct.body_model.data`` for the layouts and how each label becomes a centrum):

- Dice of the centrum, seed at the body's centre, for the network and the classical method.
  With ``--folds`` (a ``train-body --leave-one-scan-out`` output's ``folds/`` folder) each scan is
  segmented by the model trained without it; with ``--model`` one model does all (it may have
  seen them: the figures are then not held-out).
- Seed robustness: 14 seeds 8 mm from the centre (6 along the axes, 8 diagonal) that fall
  inside the body; the largest change of Dice and of the centrum's mean HU against the centre seed.
- Leakage: the share of the segment inside the clicked vertebra's own label.
- Refusals: a seed in soft tissue 45 mm in front of the body, and one midway between two
  neighbouring bodies (in the disc), must be refused.
- Other inputs, network only, centre seed: the CT as a density-calibrated scan would hold it
  (0.8 x HU + 5, roughly mg/cm3 of hydroxyapatite) and the CT with everything farther than
  60 mm from the body's axis set to 0 (a masked scan).
- Seconds per vertebra with the model loaded (resampling in and out included), median; and
  the process's peak resident memory.

The labels are few (about 25 vertebrae of four scans), mostly predicted or derived: say so with
every figure this prints.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from spine_analysis.ct.body_model.data import load_scans
from spine_analysis.ct.body_model.evaluate import dice, on_scan
from spine_analysis.ct.body_model.weights_io import load_model
from spine_analysis.ct.vertebral_body import measure_centrum, segment_vertebral_body
from spine_analysis.datasets import ct_dir
from spine_analysis.errors import SpineAnalysisError

OFFSET_MM = 8.0


def _offsets() -> np.ndarray:
    axes = np.vstack([np.eye(3), -np.eye(3)])
    diagonals = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / np.sqrt(3)
    return np.vstack([axes, diagonals]) * OFFSET_MM


def _inside(image, point) -> bool:
    index = image.TransformPhysicalPointToIndex(tuple(float(v) for v in point))
    return all(0 <= i < n for i, n in zip(index, image.GetSize())) and image.GetPixel(index) > 0.5


def _refused(scan, seed, method, model) -> bool:
    try:
        segment_vertebral_body(scan.ct, seed, "lps", method, model)
    except SpineAnalysisError:
        return True
    return False


def calibrated(ct):
    return sitk.Cast(ct, sitk.sitkFloat32) * 0.8 + 5.0


def masked(ct, centre_lps):
    """Everything farther than 60 mm from the vertical line through ``centre_lps`` set to 0."""
    size = np.array(ct.GetSize())
    index = np.indices(size[::-1]).reshape(3, -1)[::-1].T
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    points = np.array(ct.GetOrigin()) + (index * np.array(ct.GetSpacing())) @ direction.T
    far = np.hypot(*(points[:, :2] - centre_lps[:2]).T) > 60
    values = sitk.GetArrayFromImage(ct).ravel()
    values[far] = 0
    image = sitk.GetImageFromArray(values.reshape(size[::-1]))
    image.CopyInformation(ct)
    return image


def variant_dice(ct, vertebra, reference, model) -> float:
    try:
        return dice(segment_vertebral_body(ct, vertebra.centre_lps, "lps", "unet", model).centrum, reference)
    except SpineAnalysisError:
        return 0.0


def evaluate_vertebra(scan, vertebra, neighbour, method, model) -> dict:
    reference = on_scan(vertebra.centrum, scan)
    own = on_scan(vertebra.own_label, scan)
    started = time.perf_counter()
    try:
        centre = segment_vertebral_body(scan.ct, vertebra.centre_lps, "lps", method, model)
    except SpineAnalysisError as exc:
        return {"dice": 0.0, "refused_centre": str(exc)}
    elapsed = time.perf_counter() - started
    centre_hu = measure_centrum(scan.ct, centre.centrum, 1, vertebra.level, "").hu_mean
    row = {"dice": dice(centre.centrum, reference), "seconds": elapsed,
           "inside_own_label": float((centre.centrum & own).sum() / max(1, centre.centrum.sum()))}
    dice_changes, hu_changes, refused = [], [], 0
    for offset in _offsets():
        seed = vertebra.centre_lps + offset
        if not _inside(vertebra.body, seed):
            continue
        try:
            moved = segment_vertebral_body(scan.ct, seed, "lps", method, model)
        except SpineAnalysisError:
            refused += 1
            continue
        dice_changes.append(abs(dice(moved.centrum, reference) - row["dice"]))
        hu_changes.append(abs(measure_centrum(scan.ct, moved.centrum, 1, "", "").hu_mean - centre_hu)
                          / max(abs(centre_hu), 1.0))
    row.update(offset_seeds=len(dice_changes) + refused, offset_refused=refused,
               max_dice_change=max(dice_changes, default=float("nan")),
               max_hu_change=max(hu_changes, default=float("nan")))
    front = vertebra.centre_lps + np.array([0.0, -45.0, 0.0])      # LPS: -y is anterior
    row["refuses_soft_tissue"] = _refused(scan, front, method, model)
    if neighbour is not None:
        row["refuses_disc"] = _refused(scan, (vertebra.centre_lps + neighbour.centre_lps) / 2, method, model)
    return row


def summarise(rows: list[dict], held_out: bool) -> None:
    """Print the figures over ``rows`` (one per vertebra, as ``--json`` writes them)."""
    scans = {r["scan"] for r in rows}
    seconds = {m: [r[f"{m}_seconds"] for r in rows if f"{m}_seconds" in r] for m in ("unet", "classical")}

    def median(key, subset=rows):
        values = [r[key] for r in subset if key in r and not np.isnan(r[key])]
        return statistics.median(values) if values else float("nan")

    held_out = "held out (leave one scan out)" if held_out else "NOT held out (one model for all)"
    print(f"\n{len(rows)} vertebrae of {len(scans)} scans, {held_out}; labels: "
          f"{sum(r['labels'].startswith('manual') for r in rows)} manual, the rest predicted or derived "
          "(little data: read every figure with that in mind)")
    for method in ("unet", "classical"):
        key = f"{method}_dice"
        print(f"{method:<9} Dice median {median(key):.3f} (min {min(r[key] for r in rows):.3f}); "
              f"share >= 0.92: {np.mean([r[key] >= 0.92 for r in rows]):.0%}")
        manual = [r for r in rows if r["labels"].startswith("manual")]
        if manual:
            print(f"          on the manual centrum label(s): {', '.join(f'{r[key]:.3f}' for r in manual)}")
        stable = [r for r in rows if not np.isnan(r.get(f"{method}_max_dice_change", np.nan))]
        refused = sum(f"{method}_refused_centre" in r for r in rows)
        if refused:
            print(f"          refused the seed at the body's centre for {refused} vertebrae (Dice counted as 0)")
        print(f"          ±8 mm seeds: median of the largest ΔDice {median(f'{method}_max_dice_change'):.3f}, "
              f"within 0.02 for {np.mean([r[f'{method}_max_dice_change'] <= 0.02 for r in stable]):.0%}; "
              f"median of the largest ΔHU {median(f'{method}_max_hu_change'):.1%}, within 2 % for "
              f"{np.mean([r[f'{method}_max_hu_change'] <= 0.02 for r in stable]):.0%}; "
              f"refused {sum(r.get(f'{method}_offset_refused', 0) for r in rows)} of "
              f"{sum(r.get(f'{method}_offset_seeds', 0) for r in rows)} offset seeds")
        print(f"          inside its own vertebra's label: median {median(f'{method}_inside_own_label'):.1%}, "
              f">= 97 % for {np.mean([r.get(f'{method}_inside_own_label', 0) >= 0.97 for r in rows]):.0%}")
        disc = [r[f"{method}_refuses_disc"] for r in rows if f"{method}_refuses_disc" in r]
        print(f"          refused: soft-tissue seeds {sum(r.get(f'{method}_refuses_soft_tissue', False) for r in rows)}"
              f"/{len(rows)}, disc seeds {sum(disc)}/{len(disc)}")
        if method == "unet":
            print(f"          Dice median on density-calibrated input {median('unet_dice_calibrated'):.3f}, "
                  f"on masked input {median('unet_dice_masked'):.3f}")
        if seconds[method]:
            print(f"          seconds per vertebra (model loaded): median {statistics.median(seconds[method]):.2f}, "
                  f"max {max(seconds[method]):.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="labelled CT folder (default: $SPINE_CT_DIR or ct-spine)")
    parser.add_argument("--folds", default=None, help="folder of leave-one-scan-out models, one per scan name")
    parser.add_argument("--model", default=None, help="one model for every scan (default: the shipped one)")
    parser.add_argument("--scan", nargs="*", default=None, help="only these scans (by name)")
    parser.add_argument("--json", default=None, help="also write every row as JSON")
    parser.add_argument("--summarise", nargs="+", metavar="ROWS.json", default=None,
                        help="print the figures over rows that --folds runs saved with --json (e.g. one run per scan)")
    args = parser.parse_args()
    if args.summarise:
        summarise([row for path in args.summarise for row in json.loads(Path(path).read_text())], True)
        return 0

    scans = [s for s in load_scans(args.data or ct_dir(), log=lambda line: None)
             if not args.scan or s.name in args.scan]
    rows = []
    for scan in scans:
        model_dir = Path(args.folds) / scan.name if args.folds else args.model
        model = load_model(model_dir)[0]
        for vertebra in scan.vertebrae:
            neighbours = [v for v in scan.vertebrae if v is not vertebra]
            neighbour = min(neighbours, key=lambda v: np.linalg.norm(v.centre_lps - vertebra.centre_lps),
                            default=None)
            if neighbour is not None and np.linalg.norm(neighbour.centre_lps - vertebra.centre_lps) > 45:
                neighbour = None
            row = {"scan": scan.name, "level": vertebra.level, "labels": vertebra.source}
            for method in ("unet", "classical"):
                result = evaluate_vertebra(scan, vertebra, neighbour, method, model)
                row.update({f"{method}_{k}": v for k, v in result.items()})
            reference = on_scan(vertebra.centrum, scan)
            row["unet_dice_calibrated"] = variant_dice(calibrated(scan.ct), vertebra, reference, model)
            row["unet_dice_masked"] = variant_dice(masked(scan.ct, vertebra.centre_lps), vertebra, reference, model)
            rows.append(row)
            print(f"{scan.name:<18} {vertebra.level:<4} Dice unet {row['unet_dice']:.3f} classical "
                  f"{row['classical_dice']:.3f} | unet: ±8 mm max ΔDice {row.get('unet_max_dice_change', np.nan):.3f} "
                  f"max ΔHU {row.get('unet_max_hu_change', np.nan):.1%} inside own label "
                  f"{row.get('unet_inside_own_label', 0):.1%}" + (f" | unet refused the centre seed: "
                  f"{row['unet_refused_centre']}" if "unet_refused_centre" in row else ""), flush=True)

    summarise(rows, bool(args.folds))
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
