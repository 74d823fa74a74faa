"""Click-to-segment on real CT: accuracy, robustness to the click, leakage, refusals, speed, memory.

    python benchmarks/body_segmentation.py [--data DIR] [--folds DIR | --model DIR] [--json FILE]

For each labelled vertebra under DIR (default: $SPINE_CT_DIR, the ct-spine folder; see
``spine_analysis.ct.body_model.data`` for the layouts and how each label becomes a centrum):

- Dice of the centrum, seed at the body's centre, for the network and the classical method.
  With ``--folds`` (a ``train-body --leave-one-scan-out`` output's ``folds/`` folder) each scan is
  segmented by the model trained without it; with ``--model`` one model does all (it may have
  seen them: the figures are then not held-out).
- Clicks: 14 seeds 8 mm from the centre (6 along the axes, 8 diagonal) that lie more than 2 mm
  inside the body label; how many are refused (each should be accepted), the largest change of
  Dice and of the centrum's mean HU against the centre seed (target: ΔDice <= 0.02), and whether
  any click gives a centrum in more than one piece.
- Leakage: the share of the segment inside the clicked vertebra's own label.
- Refusals: a seed in soft tissue 45 mm in front of the body, and one midway between two
  neighbouring bodies (in the disc), must be refused.
- Lesion shares: these vertebrae have no lesion, so their lytic share is noise (target <= 2 %).
- Shell conventions: Dice with ``shell_mm`` 2 and 3 against the reference body less the same shell.
- Low density, network only: the clicks again on the input a finite-element benchmark of an
  osteoporotic vertebra would get (centrum HU a third, density-calibrated, everything outside the
  vertebra set to 0).
- Thick slices, network only, centre seed: the scan averaged and resampled to 5 mm slices; Dice
  and the share of the centrum inside its own vertebra, on that grid.
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
import torch

from scipy import ndimage as ndi

from spine_analysis.ct.augment import osteoporotic, vertebra_only
from spine_analysis.ct.body_labels import centrum_from_body
from spine_analysis.ct.body_model.data import load_scans
from spine_analysis.ct.body_model.evaluate import dice, on_scan
from spine_analysis.ct.body_model.weights_io import load_model
from spine_analysis.ct.patches import patch_to_scan
from spine_analysis.ct.vertebral_body import measure_centrum, segment_vertebral_body
from spine_analysis.datasets import ct_dir
from spine_analysis.errors import SpineAnalysisError

OFFSET_MM = 8.0
#: A click counts as inside the body when it lies deeper than this below the body's surface.
CLICK_DEPTH_MM = 2.0
THICK_MM = 5.0
LOW_DENSITY_FACTOR = 1 / 3
ONE_PIECE = ndi.generate_binary_structure(3, 3)


def _offsets() -> np.ndarray:
    axes = np.vstack([np.eye(3), -np.eye(3)])
    diagonals = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / np.sqrt(3)
    return np.vstack([axes, diagonals]) * OFFSET_MM


_DEPTHS: dict[int, np.ndarray] = {}


def _depth(vertebra) -> np.ndarray:
    """Each voxel's depth (mm) inside the vertebra's body label (1 mm grid), computed once per vertebra."""
    if id(vertebra) not in _DEPTHS:
        body = sitk.GetArrayViewFromImage(vertebra.body) > 0.5
        _DEPTHS[id(vertebra)] = ndi.distance_transform_edt(np.pad(body, 1))[1:-1, 1:-1, 1:-1]
    return _DEPTHS[id(vertebra)]


def _deep_inside(vertebra, point) -> bool:
    """Whether ``point`` lies in the body label more than CLICK_DEPTH_MM from its surface."""
    depth = _depth(vertebra)
    index = vertebra.body.TransformPhysicalPointToIndex(tuple(float(v) for v in point))
    inside = all(0 <= i < n for i, n in zip(index, vertebra.body.GetSize()))
    return inside and depth[index[::-1]] > CLICK_DEPTH_MM


def _refused(ct, seed, method, model) -> bool:
    try:
        segment_vertebral_body(ct, seed, "lps", method, model)
    except SpineAnalysisError:
        return True
    return False


def calibrated(ct):
    return sitk.Cast(ct, sitk.sitkFloat32) * 0.8 + 5.0


def low_density(scan, vertebra):
    """The input of a finite-element benchmark for an osteoporotic vertebra: the centrum's HU a third
    of what it was, the scan density-calibrated (0.8 x HU + 5), everything but the vertebra set to 0."""
    hu = sitk.GetArrayFromImage(sitk.Cast(scan.ct, sitk.sitkFloat32))
    hu = osteoporotic(hu, on_scan(vertebra.centrum, scan), LOW_DENSITY_FACTOR) * 0.8 + 5.0
    own = on_scan(vertebra.own_label, scan) | on_scan(vertebra.body, scan)
    image = sitk.GetImageFromArray(vertebra_only(hu, own, 0.0).astype(np.float32))
    image.CopyInformation(scan.ct)
    return image


def thick_slices(ct, slice_mm: float = THICK_MM):
    """The CT as if reconstructed with ``slice_mm`` slices: averaged along the spine, resampled."""
    axis = int(np.argmax(np.abs(np.array(ct.GetDirection()).reshape(3, 3))[2]))
    spacing, size = list(ct.GetSpacing()), list(ct.GetSize())
    values = sitk.GetArrayFromImage(sitk.Cast(ct, sitk.sitkFloat32))
    if slice_mm > spacing[axis]:   # averaged over the slice's width (a Gaussian of that FWHM)
        values = ndi.gaussian_filter1d(values, slice_mm / 2.355 / spacing[axis], axis=2 - axis)
    smooth = sitk.GetImageFromArray(values)
    smooth.CopyInformation(ct)
    size[axis] = max(2, int(size[axis] * spacing[axis] / slice_mm))
    spacing[axis] = slice_mm
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetSpacing(spacing)
    grid.SetDirection(ct.GetDirection())
    grid.SetOrigin(ct.TransformContinuousIndexToPhysicalPoint([-0.5 + (0.5 * slice_mm / ct.GetSpacing()[axis]
                                                                        if a == axis else 0.0) for a in range(3)]))
    return sitk.Resample(smooth, grid, sitk.Transform(), sitk.sitkLinear, -1024.0, sitk.sitkFloat32)


def _on(label, ct):
    return patch_to_scan(sitk.GetArrayViewFromImage(label), label, ct)


def _pieces(mask) -> int:
    return int(ndi.label(mask, ONE_PIECE)[1])


def clicks(ct, vertebra, method, model, reference, own) -> tuple[dict, object]:
    """The centre click and every ±8 mm click deep inside the body, on ``ct``: Dice, pieces, refusals;
    and the centre click's segmentation (None when refused)."""
    started = time.perf_counter()
    try:
        centre = segment_vertebral_body(ct, vertebra.centre_lps, "lps", method, model)
    except SpineAnalysisError as exc:
        return {"dice": 0.0, "refused_centre": str(exc)}, None
    row = {"dice": dice(centre.centrum, reference), "seconds": time.perf_counter() - started,
           "pieces": _pieces(centre.centrum),
           "inside_own_label": float((centre.centrum & own).sum() / max(1, centre.centrum.sum()))}
    centre_hu = measure_centrum(ct, centre.centrum, 1, vertebra.level, "").hu_mean
    dice_changes, hu_changes, refused, pieces = [], [], 0, [row["pieces"]]
    for offset in _offsets():
        seed = vertebra.centre_lps + offset
        if not _deep_inside(vertebra, seed):
            continue
        try:
            moved = segment_vertebral_body(ct, seed, "lps", method, model)
        except SpineAnalysisError:
            refused += 1
            continue
        pieces.append(_pieces(moved.centrum))
        dice_changes.append(abs(dice(moved.centrum, reference) - row["dice"]))
        hu_changes.append(abs(measure_centrum(ct, moved.centrum, 1, "", "").hu_mean - centre_hu)
                          / max(abs(centre_hu), 1.0))
    row.update(offset_seeds=len(dice_changes) + refused, offset_refused=refused, max_pieces=max(pieces),
               max_dice_change=max(dice_changes, default=float("nan")),
               max_hu_change=max(hu_changes, default=float("nan")))
    return row, centre


def evaluate_vertebra(scan, vertebra, neighbour, method, model) -> dict:
    """Natural CT: clicks, lytic share (no lesions here: noise only), both shell conventions, refusals."""
    reference, own = _on(vertebra.centrum, scan.ct), _on(vertebra.own_label, scan.ct)
    row, centre = clicks(scan.ct, vertebra, method, model, reference, own)
    if centre is None:
        return row
    row["lytic_share"] = measure_centrum(scan.ct, centre.centrum, 1, vertebra.level, "").lytic_share
    body_reference = sitk.GetArrayViewFromImage(vertebra.body) > 0.5
    for shell in (2.0, 3.0):   # against the reference body less the same shell
        shelled = centre if shell == centre.shell_mm else \
            segment_vertebral_body(scan.ct, vertebra.centre_lps, "lps", method, model, shell_mm=shell)
        label = sitk.GetImageFromArray(centrum_from_body(body_reference, shell).astype(np.float32))
        label.CopyInformation(vertebra.body)
        row[f"dice_shell_{shell:.0f}mm"] = dice(shelled.centrum, _on(label, scan.ct))
    front = vertebra.centre_lps + np.array([0.0, -45.0, 0.0])      # LPS: -y is anterior
    row["refuses_soft_tissue"] = _refused(scan.ct, front, method, model)
    if neighbour is not None:
        row["refuses_disc"] = _refused(scan.ct, (vertebra.centre_lps + neighbour.centre_lps) / 2, method, model)
    return row


def thick_row(thick_ct, vertebra, model) -> dict:
    """The network's centre click on the 5 mm copy: Dice and containment in its own vertebra, on that grid."""
    try:
        result = segment_vertebral_body(thick_ct, vertebra.centre_lps, "lps", "unet", model)
    except SpineAnalysisError as exc:
        return {"refused": str(exc)}
    own = _on(vertebra.own_label, thick_ct)
    return {"dice": dice(result.centrum, _on(vertebra.centrum, thick_ct)), "pieces": _pieces(result.centrum),
            "inside_own_label": float((result.centrum & own).sum() / max(1, result.centrum.sum()))}


def _share(flags) -> float:
    return float(np.mean(flags)) if len(flags) else float("nan")


def _median(rows, key):
    values = [r[key] for r in rows if key in r and not np.isnan(r[key])]
    return statistics.median(values) if values else float("nan")


def _clicks_summary(rows, prefix: str, name: str) -> None:
    """The click figures of ``prefix``-keyed rows (``clicks`` results)."""
    key = f"{prefix}_dice"
    refused = [r for r in rows if f"{prefix}_refused_centre" in r]
    stable = [r for r in rows if not np.isnan(r.get(f"{prefix}_max_dice_change", np.nan))]
    print(f"{name:<26} Dice median {_median(rows, key):.3f} (min {min(r.get(key, 0) for r in rows):.3f}); "
          f"inside its own vertebra median {_median(rows, f'{prefix}_inside_own_label'):.1%}")
    print(f"{'':<26} centre click refused for {len(refused)} of {len(rows)} vertebrae"
          + (f" ({'; '.join(r['scan'] + ' ' + r['level'] for r in refused)})" if refused else ""))
    print(f"{'':<26} ±8 mm clicks deeper than {CLICK_DEPTH_MM:.0f} mm in the body: refused "
          f"{sum(r.get(f'{prefix}_offset_refused', 0) for r in rows)} of "
          f"{sum(r.get(f'{prefix}_offset_seeds', 0) for r in rows)}; largest ΔDice per vertebra: median "
          f"{_median(rows, f'{prefix}_max_dice_change'):.3f}, max "
          f"{max((r[f'{prefix}_max_dice_change'] for r in stable), default=float('nan')):.3f}, within 0.02 for "
          f"{_share([r[f'{prefix}_max_dice_change'] <= 0.02 for r in stable]):.0%}; largest ΔHU median "
          f"{_median(rows, f'{prefix}_max_hu_change'):.1%}")
    print(f"{'':<26} centra in more than one piece (any click): "
          f"{sum(r.get(f'{prefix}_max_pieces', 1) > 1 for r in rows)} of {len(rows) - len(refused)} vertebrae")


def summarise(rows: list[dict], held_out: bool) -> None:
    """Print the figures over ``rows`` (one per vertebra, as ``--json`` writes them)."""
    scans = {r["scan"] for r in rows}
    held_out = "held out (leave one scan out)" if held_out else "NOT held out (one model for all)"
    print(f"\n{len(rows)} vertebrae of {len(scans)} scans, {held_out}; labels: "
          f"{sum(r['labels'].startswith('manual') for r in rows)} manual, the rest predicted or derived "
          "(little data: read every figure with that in mind)")
    for prefix, name in (("unet", "network, natural CT"), ("low", "network, low density (*)"),
                         ("classical", "classical, natural CT")):
        _clicks_summary(rows, prefix, name)
        if prefix != "low":
            disc = [r[f"{prefix}_refuses_disc"] for r in rows if f"{prefix}_refuses_disc" in r]
            print(f"{'':<26} refused: soft-tissue clicks "
                  f"{sum(r.get(f'{prefix}_refuses_soft_tissue', False) for r in rows)}/{len(rows)}, disc clicks "
                  f"{sum(disc)}/{len(disc)}; lytic share with no lesion (noise): median "
                  f"{_median(rows, f'{prefix}_lytic_share'):.1%}, max "
                  f"{max((r.get(f'{prefix}_lytic_share', 0) for r in rows)):.1%}")
            print(f"{'':<26} shell conventions, Dice against the reference body less the same shell: "
                  f"2 mm {_median(rows, f'{prefix}_dice_shell_2mm'):.3f}, "
                  f"3 mm {_median(rows, f'{prefix}_dice_shell_3mm'):.3f} (medians)")
        seconds = [r[f"{prefix}_seconds"] for r in rows if f"{prefix}_seconds" in r]
        if seconds:
            print(f"{'':<26} seconds per click (model loaded): median {statistics.median(seconds):.2f}, "
                  f"max {max(seconds):.2f}")
    thick = [r for r in rows if "thick_dice" in r]
    print(f"network, {THICK_MM:.0f} mm slices         Dice median {_median(rows, 'thick_dice'):.3f} (natural "
          f"{_median(thick, 'unet_dice'):.3f}); inside its own vertebra median "
          f"{_median(rows, 'thick_inside_own_label'):.1%}, min "
          f"{min((r['thick_inside_own_label'] for r in thick), default=float('nan')):.1%}; refused "
          f"{sum('thick_refused' in r for r in rows)}; in pieces {sum(r.get('thick_pieces', 1) > 1 for r in rows)}")
    print(f"(*) centrum HU x {LOW_DENSITY_FACTOR:.2f}, density-calibrated (0.8 x HU + 5), everything outside the "
          "vertebra set to 0: a finite-element benchmark's input for an osteoporotic vertebra")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="labelled CT folder (default: $SPINE_CT_DIR or ct-spine)")
    parser.add_argument("--folds", default=None, help="folder of leave-one-scan-out models, one per scan name")
    parser.add_argument("--model", default=None, help="one model for every scan (default: the shipped one)")
    parser.add_argument("--scan", nargs="*", default=None, help="only these scans (by name)")
    parser.add_argument("--json", default=None, help="also write every row as JSON")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="only every N-th vertebra of each scan, top down (a quicker sample)")
    parser.add_argument("--summarise", nargs="+", metavar="ROWS.json", default=None,
                        help="print the figures over rows that runs saved with --json (e.g. one run per scan)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the network (default 2)")
    parser.add_argument("--methods", nargs="+", choices=("unet", "classical"), default=["unet", "classical"],
                        help="which methods to run (the classical one needs no model: run it once, apart)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.summarise:
        merged: dict[tuple, dict] = {}   # runs of different methods on the same vertebra: one row
        for path in args.summarise:
            for row in json.loads(Path(path).read_text()):
                merged.setdefault((row["scan"], row["level"]), {}).update(row)
        rows = list(merged.values())
        summarise(rows, all(row.get("held_out", False) for row in rows))
        return 0

    scans = [s for s in load_scans(args.data or ct_dir(), log=lambda line: None)
             if not args.scan or s.name in args.scan]
    rows = []
    for scan in scans:
        model_dir = Path(args.folds) / scan.name if args.folds else args.model
        model = load_model(model_dir)[0] if "unet" in args.methods else None
        thick_ct = thick_slices(scan.ct) if model else None
        for vertebra in scan.vertebrae[::args.every]:
            neighbours = [v for v in scan.vertebrae if v is not vertebra]
            neighbour = min(neighbours, key=lambda v: np.linalg.norm(v.centre_lps - vertebra.centre_lps),
                            default=None)
            if neighbour is not None and np.linalg.norm(neighbour.centre_lps - vertebra.centre_lps) > 45:
                neighbour = None
            row = {"scan": scan.name, "level": vertebra.level, "labels": vertebra.source, "held_out": bool(args.folds)}
            for method in args.methods:
                result = evaluate_vertebra(scan, vertebra, neighbour, method, model)
                row.update({f"{method}_{k}": v for k, v in result.items()})
            if model:
                low = low_density(scan, vertebra)
                low_row = clicks(low, vertebra, "unet", model, _on(vertebra.centrum, low),
                                 _on(vertebra.own_label, low))[0]
                row.update({f"low_{k}": v for k, v in low_row.items()})
                row.update({f"thick_{k}": v for k, v in thick_row(thick_ct, vertebra, model).items()})
            rows.append(row)
            print(f"{scan.name:<18} {vertebra.level:<4} Dice unet {row.get('unet_dice', np.nan):.3f} low density "
                  f"{row.get('low_dice', np.nan):.3f} {THICK_MM:.0f} mm {row.get('thick_dice', np.nan):.3f} classical "
                  f"{row.get('classical_dice', np.nan):.3f} | unet ±8 mm max ΔDice "
                  f"{row.get('unet_max_dice_change', np.nan):.3f}"
                  f" (low {row.get('low_max_dice_change', np.nan):.3f}), refused "
                  f"{row.get('unet_offset_refused', 0)}+{row.get('low_offset_refused', 0)} of "
                  f"{row.get('unet_offset_seeds', 0)}+{row.get('low_offset_seeds', 0)}", flush=True)

    summarise(rows, bool(args.folds))
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
