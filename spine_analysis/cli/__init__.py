"""The ``spine-analysis`` command line: a thin front end over the engine.

Every failure a user can cause (bad path, bad image, bad landmarks) ends as one line on
stderr and exit code 2; nothing is printed as a traceback.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from pathlib import Path

import numpy as np

from . import __version__
from .errors import SpineAnalysisError, os_error_message

MODE_HELP = ("aasce: the challenge organisers' rule (columns in angles.csv order); "
             "clinical: the largest proximal thoracic, main thoracic and thoracolumbar/lumbar "
             "curves a clinician reports (0 where a region has no curve)")
SERIES_HELP = ("the SeriesInstanceUID to read from a DICOM folder holding several series (a folder with "
               "several is refused with the list of its series and their UIDs)")


def _status(args, step: int, total: int, text: str):
    """With --progress, progress on stderr as "[k/n] text" (the Slicer module reads these)."""
    if getattr(args, "progress", False):
        print(f"[{step}/{total}] {text}", file=sys.stderr, flush=True)


def _clinical_row(result) -> list[float]:
    """PT, MT, TL/L angles of the largest curve in each region (0 when absent)."""
    best = {"PT": 0.0, "MT": 0.0, "TL/L": 0.0}
    for curve in result.curves:
        key = curve.name.split(" (")[0]
        best[key] = max(best[key], curve.angle_deg)
    return [best["PT"], best["MT"], best["TL/L"]]


def _angles_of(landmarks, image_height: float, mode: str) -> list[float]:
    from .xray.cobb import aasce_angles, analyse

    if mode == "aasce":
        return [float(a) for a in aasce_angles(landmarks, image_height)]
    return _clinical_row(analyse(landmarks, image_height))


def _cmd_angles(args) -> int:
    from .io.aasce import read_aasce_folder, write_aasce_angles_csv
    from .io.landmark_files import read_landmarks
    from .io.xray import read_xray
    from .xray.cobb import analyse
    from .xray.report import make_report

    if args.aasce:
        if not args.out:
            raise SpineAnalysisError("--aasce needs --out FILE.csv for the angles")
        folder = read_aasce_folder(args.aasce)
        if folder.landmarks is None:
            raise SpineAnalysisError(f"{args.aasce} has no landmarks.csv to compute angles from")
        rows = []
        for i in range(len(folder)):
            _, height = folder.image_size(i)
            rows.append(_angles_of(folder.landmarks_px(i), height, args.mode))
        write_aasce_angles_csv(np.array(rows), args.out)
        print(f"{len(rows)} images: {args.mode} angles written to {args.out}")
        return 0
    if not (args.landmarks and args.image):
        raise SpineAnalysisError("give either --aasce DIR --out FILE, or --landmarks FILE --image IMAGE")
    landmarks = read_landmarks(args.landmarks)
    xray = read_xray(args.image)
    height, width = xray.pixels.shape
    report = make_report(analyse(landmarks, height, not args.image_right_is_patient_right),
                         args.image, (width, height), spacing_mm=xray.spacing_mm,
                         spacing_source=xray.spacing_source)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.summary())
    return 0


def _detector(weights):
    from .xray.landmark_model.detector import LandmarkDetector

    return LandmarkDetector.load(weights)


def _cmd_cobb(args) -> int:
    import time

    from .errors import NotSpineRadiographError
    from .io.dicom_out import check_radiograph
    from .io.xray import read_dicom_header, read_xray
    from .xray.cobb import analyse
    from .xray.measure import measure_radiograph
    from .xray.report import check_outputs, write_report_files

    out_dir = Path(args.out_dir) if args.out_dir else \
        Path(f"{Path(args.image).stem if args.image else 'synthetic-example'}-cobb")
    protect = [args.image] if args.image else []
    if args.dicom_sc and not args.image:
        raise SpineAnalysisError("--dicom-sc files the overlay in the radiograph's DICOM study: "
                                 "give a DICOM radiograph")
    check_outputs(out_dir, protect, capture=args.dicom_sc)
    total = 4
    started = time.perf_counter()
    _status(args, 1, total, "reading the radiograph")
    header = None
    if args.image:
        xray = read_xray(args.image, args.frame)
        if args.dicom_sc:
            header = read_dicom_header(args.image)
            if header is None:
                raise SpineAnalysisError(f"{args.image} is not a DICOM file: --dicom-sc files the overlay in the "
                                         "radiograph's DICOM study, so it needs a DICOM radiograph")
            check_radiograph(header)
        pixels, source, note = xray.pixels, args.image, None
        spacing, spacing_source = xray.spacing_mm, xray.spacing_source
        truth = None
    else:
        from .xray.synthetic import example_case

        pixels, truth, description = example_case()
        source, spacing, spacing_source = "synthetic-example.png", None, None
        note = ("SYNTHETIC CHECK: no image was given, so this ran on a radiograph the project "
                "draws itself (" + description + ") - not a patient")
    _status(args, 2, total, "loading the landmark model")
    loaded = time.perf_counter()
    detector = _detector(args.weights)
    load_s = time.perf_counter() - loaded
    _status(args, 3, total, "detecting 68 vertebral corners")
    try:
        report = measure_radiograph(detector, pixels, source, force=args.force, spacing_mm=spacing,
                                    spacing_source=spacing_source, note=note,
                                    patient_right_on_image_left=not args.image_right_is_patient_right,
                                    model_load_s=load_s)
    except NotSpineRadiographError as exc:
        raise NotSpineRadiographError(f"{source}: {exc} (--force measures it anyway)") from None
    _status(args, 4, total, f"writing outputs to {out_dir}")
    report.timings_s["total"] = time.perf_counter() - started
    written = write_report_files(out_dir, pixels, report, protect=protect, dicom_radiograph=header)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.summary())
        if truth is not None:
            expected = analyse(truth, pixels.shape[0])
            print("  expected (drawn): " + ", ".join(
                f"{c.name} {c.angle_deg:.1f}° {c.upper_end}–{c.lower_end}" for c in expected.curves))
        print(f"outputs: {out_dir}/ ({', '.join(written)})")
    return 0


def _cmd_serve(args) -> int:
    from .jobs import main as serve_main

    return serve_main()


def _cmd_predict(args) -> int:
    from tqdm import tqdm

    from .io.aasce import read_aasce_folder, write_aasce_angles_csv, write_aasce_landmarks_csv
    from .io.xray import read_xray
    from .xray.cobb import aasce_angles
    from .xray.spine_check import check_radiograph

    folder = read_aasce_folder(args.aasce)
    out = Path(args.out_dir)
    for name in ("landmarks.csv", "angles.csv"):
        if (out / name).resolve() == (Path(args.aasce) / name).resolve():
            raise SpineAnalysisError(f"refusing to overwrite the labels in {args.aasce}: "
                                     "choose another --out-dir")
    detector = _detector(args.weights)
    rows, angles, refused = [], [], []
    for i in tqdm(range(len(folder)), desc="predicting", unit="img", file=sys.stderr):
        pixels = read_xray(folder.image_path(i)).pixels
        detection = detector.detect(pixels)
        landmarks = detection.landmarks
        check = check_radiograph(detector, pixels, detection)
        if not check.passed:
            refused.append(f"{folder.filenames[i]}: {check.reason}")
        height, width = pixels.shape
        rows.append(landmarks.to_aasce_row(width, height))
        angles.append(aasce_angles(landmarks, height))
    out.mkdir(parents=True, exist_ok=True)
    write_aasce_landmarks_csv(np.array(rows), out / "landmarks.csv")
    write_aasce_angles_csv(np.array(angles), out / "angles.csv")
    print(f"{len(rows)} images: landmarks.csv and angles.csv written to {out}")
    for line in refused:
        print(f"  did not pass the spine check (measured anyway, as every row is needed): {line}")
    return 0


def _cmd_evaluate(args) -> int:
    from .io.aasce import read_aasce_folder, read_numeric_csv
    from .xray.evaluation import evaluate_angles

    truth = read_aasce_folder(args.aasce)
    if truth.angles is None:
        raise SpineAnalysisError(f"{args.aasce} has no angles.csv to evaluate against")
    pred_dir = Path(args.pred)
    pred_angles = read_numeric_csv(pred_dir / "angles.csv", 3)
    pred_rows = read_numeric_csv(pred_dir / "landmarks.csv", 136) if (pred_dir / "landmarks.csv").exists() else None
    for name, values in (("angles.csv", pred_angles), ("landmarks.csv", pred_rows)):
        if values is not None and len(values) != len(truth.filenames):
            raise SpineAnalysisError(f"{pred_dir / name} has {len(values)} rows but "
                                     f"{args.aasce} lists {len(truth.filenames)} images")
    result = evaluate_angles(pred_angles, truth.angles, pred_rows,
                             truth.landmarks if pred_rows is not None else None)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print("\n".join(result.lines()))
    return 0


def _fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _cmd_train_landmarks(args) -> int:
    import torch

    from .xray.landmark_model.train import TrainSettings, train_landmarks

    torch.set_num_threads(args.threads)
    settings = TrainSettings(centre_epochs=args.centre_epochs, corner_epochs=args.corner_epochs,
                             holdout_fraction=args.holdout, seed=args.seed,
                             shape_loss_weight=args.shape_loss, max_images=args.max_images,
                             **({} if args.reframe is None else {"reframe_chance": args.reframe}))
    command = "spine-analysis " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    meta = train_landmarks(args.aasce, args.out, settings, command=command)
    print(f"trained on {meta['training_images']} images in {meta['training_minutes']} min; "
          f"model written to {args.out}")
    return 0


def _point(text: str) -> list[float]:
    """An argparse type: "X,Y,Z" in mm."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not X,Y,Z (three numbers in mm, comma-separated)")
    return values


def _refuse_overwriting(out, inputs) -> None:
    for given in inputs:
        if given and Path(given).exists() and Path(out).resolve() == Path(given).resolve():
            raise SpineAnalysisError(f"refusing to overwrite the input {given}: choose another output")


def _read_ct(path, series_uid, dicom_seg: bool):
    """The CT, and with ``dicom_seg`` the slice headers a DICOM SEG of it will reference, checked
    before any long computation so that a CT that cannot carry one fails at once."""
    from .io.ct import read_ct
    from .io.dicom_out import check_sources
    from .io.dicom_series import read_acquired_series

    if not dicom_seg:
        return read_ct(path, series_uid), None
    if not Path(path).is_dir():
        raise SpineAnalysisError(f"{path}: --dicom-seg references the CT's DICOM slices: give the CT as a folder "
                                 "of DICOM slices")
    ct, slices = read_acquired_series(path, series_uid)
    check_sources(slices)
    return ct, slices


def _cmd_segment(args) -> int:
    import SimpleITK as sitk

    from .ct.levels import read_verse_centroids
    from .ct.vertebral_body import DensityThresholds, segment_vertebrae
    from .io.atomic import atomic_output, write_json
    from .io.ct import read_ct
    from .io.dicom_out import Segment, write_segmentation

    outputs = [args.out] + [path for path in (args.json, args.body_out, args.dicom_seg) if path]
    for out in outputs:
        _refuse_overwriting(out, [args.ct, args.labels, args.centroids])
    for mask_path in (args.out, args.body_out):
        if mask_path and not str(mask_path).lower().endswith((".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")):
            raise SpineAnalysisError(f"{mask_path}: masks are written as NIfTI (.nii.gz), NRRD or MHA; "
                                     "give one of those extensions")
    ct, source_slices = _read_ct(args.ct, args.series, args.dicom_seg)
    label_map = read_ct(args.labels) if args.labels else None
    centroids = read_verse_centroids(args.centroids, ct) if args.centroids else None
    model = None
    if args.method == "unet":
        from .ct.body_model.weights_io import load_model
        model = load_model(args.weights)[0]
    thresholds = DensityThresholds(lytic_below_hu=args.lytic_below, sclerotic_above_hu=args.sclerotic_above)
    centra, bodies, metrics = segment_vertebrae(ct, args.seed, args.frame, args.method, model, args.level,
                                                label_map, centroids, thresholds)
    for labels, path in ((centra, args.out), (bodies, args.body_out)):
        if path:
            mask = sitk.GetImageFromArray(labels)
            mask.CopyInformation(ct)
            with atomic_output(path) as tmp:
                sitk.WriteImage(mask, str(tmp), True)
    if args.dicom_seg:
        segments = [Segment(m.index, f"{m.level} centrum", None if m.level == "unnamed" else m.level)
                    for m in metrics]
        write_segmentation(centra, source_slices, segments, args.dicom_seg,
                           artificial_intelligence=args.method == "unet")
    result = {"ct": str(args.ct), "mask": str(args.out), "bodies": args.body_out, "dicom_seg": args.dicom_seg,
              "frame_of_seeds": args.frame, "vertebrae": [m.to_dict() for m in metrics]}
    if args.json:
        write_json(result, args.json)
    print(f"{'label':>5} {'level':<8} {'centrum ml':>10} {'mean HU':>8} {'median':>7} {'SD':>6} "
          f"{'lytic':>6} {'scler.':>6}  density")
    for m in metrics:
        print(f"{m.index:>5} {m.level:<8} {m.volume_ml:>10.1f} {m.hu_mean:>8.0f} {m.hu_median:>7.0f} "
              f"{m.hu_std:>6.0f} {m.lytic_share:>6.1%} {m.sclerotic_share:>6.1%}  {m.density_hint}")
    print(f"mask: {args.out} (label k = seed k; {args.method})" + (f"; metrics: {args.json}" if args.json else "")
          + (f"; DICOM SEG: {args.dicom_seg}" if args.dicom_seg else ""))
    return 0


def _cmd_train_body(args) -> int:
    import torch

    from .ct.body_model.data import load_scans
    from .ct.body_model.evaluate import evaluate_scan
    from .ct.body_model.train import TrainSettings, train_body
    from .ct.body_model.weights_io import load_model
    from .io.atomic import write_json

    torch.set_num_threads(args.threads)
    settings = TrainSettings(epochs=args.epochs, batches_per_epoch=args.batches, seed=args.seed)
    command = "spine-analysis " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    scans = load_scans(args.data, log=lambda line: print(line, file=sys.stderr))
    meta = train_body(scans, args.out, settings, command=command)
    count = len(meta["training_vertebrae"])
    print(f"trained on {count} vertebrae of {len(scans)} scans in {meta['training_minutes']} min; "
          f"model written to {args.out}")
    if not args.leave_one_scan_out:
        return 0
    if len(scans) < 2:
        raise SpineAnalysisError("leave-one-scan-out needs at least two scans with labels")
    rows = []
    for held in scans:
        fold = Path(args.out) / "folds" / held.name
        print(f"fold without {held.name}", file=sys.stderr)
        train_body([s for s in scans if s is not held], fold, settings, command=command)
        rows += evaluate_scan(held, load_model(fold)[0])
    write_json({"command": command, "rows": rows}, Path(args.out) / "leave_one_scan_out.json")
    print(f"{'scan':<22} {'level':<6} {'Dice unet':>9} {'classical':>9}  labels")
    for row in rows:
        print(f"{row['scan']:<22} {row['level']:<6} {row['dice_unet']:>9.3f} {row['dice_classical']:>9.3f}  "
              f"{row['labels']}")
    for key in ("dice_unet", "dice_classical"):
        print(f"median {key}: {np.median([r[key] for r in rows]):.3f} over {len(rows)} vertebrae")
    return 0


def _fracture_centroids(args, ct):
    """The user's centroids (from --centroids) as ``Centroid``s, or None."""
    from .ct.fracture import Centroid
    from .ct.levels import read_centroids

    if not args.centroids:
        return None
    return [Centroid(level, point) for level, point in read_centroids(args.centroids, ct).items()]


#: The fracture probability map as a DICOM SEG, beside the NIfTI map, with ``fracture --dicom-seg``.
FRACTURE_SEG = "fracture_probability_seg.dcm"


def _fracture_case(args, ct_path: str, out_dir: Path, models) -> dict:
    """Assess one CT and write its results into ``out_dir``; returns its patient summary.

    The inputs are read and checked before ``models()`` loads the networks: bad input fails fast."""
    from tqdm import tqdm

    from .ct.fracture import OUTPUT_FILES, detect_fractures, write_outputs
    from .ct.patches import contains_point
    from .ct.vertebral_body import check_ct_volume
    from .io.atomic import check_output_folder
    from .io.ct import read_ct
    from .io.dicom_out import write_fracture_probability

    protect = [ct_path, args.labels, args.centroids]
    check_output_folder(out_dir, OUTPUT_FILES + ((FRACTURE_SEG,) if args.dicom_seg else ()), protect)
    ct, source_slices = _read_ct(ct_path, args.series, args.dicom_seg)
    label_map = read_ct(args.labels) if args.labels else None
    centroids = _fracture_centroids(args, ct)
    check_ct_volume(ct)
    for centroid in centroids or []:
        if not contains_point(ct, centroid.lps):
            raise SpineAnalysisError(f"the centroid of {centroid.level} lies outside the CT volume: is the file "
                                     "this CT's, and in LPS (a Slicer .mrk.json says its own frame)?")
    model, body_model, version = models()
    # a bar on a terminal only: in a log file or a pipe it would be noise between the lines
    with tqdm(total=100, desc=Path(ct_path).name, unit="%", file=sys.stderr, leave=False,
              disable=args.quiet or not sys.stderr.isatty()) as bar:
        def progress(fraction: float, message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(max(0, round(100 * fraction) - bar.n))

        result = detect_fractures(ct, model, centroids, label_map, body_model,
                                  "centroid file " + Path(args.centroids).name if args.centroids else "",
                                  progress)
    about = {"ct": str(ct_path), "model": version}
    paths = write_outputs(result, out_dir, about, protect)
    if args.dicom_seg:
        import SimpleITK as sitk

        paths[FRACTURE_SEG] = str(write_fracture_probability(
            sitk.GetArrayFromImage(result.probability), source_slices, out_dir / FRACTURE_SEG, protect=protect))
    print(f"{Path(ct_path).name}: levels {result.level_source}")
    print(f"  {'level':<11} {'prob.':>5} {'Genant':<9} {'ant':>5} {'mid':>5} {'post':>5}  call")
    for finding in result.vertebrae:
        row = finding.row()
        prob = "  -  " if row["probability"] is None else f"{row['probability']:.2f}"
        grade = "-" if row["genant_grade"] is None else f"{row['genant_grade']} {row['genant_label']}"
        heights = " ".join("    -" if row[k] is None else f"{row[k]:>5.1f}"
                           for k in ("anterior_mm", "middle_mm", "posterior_mm"))
        print(f"  {row['level']:<11} {prob:>5} {grade:<9} {heights}  {row['call']} ({row['basis']})")
    patient = result.patient
    print(f"  patient: {patient['call']}" + (f" ({', '.join(patient['fractured_levels'])})"
                                            if patient["fractured_levels"] else "")
          + (f"; {patient['note']}" if patient["note"] else ""))
    print(f"  outputs: {out_dir}/ ({', '.join(Path(p).name for p in paths.values())})")
    return {"ct": str(ct_path), **{k: patient[k] for k in ("call", "fractured_levels", "max_vertebra_probability",
                                                              "vertebrae_assessed")}}


def _cmd_fracture(args) -> int:
    from functools import cache

    from .io.atomic import write_csv_rows

    if len(args.ct) > 1 and (args.centroids or args.labels or args.series):
        raise SpineAnalysisError("--centroids, --labels and --series belong to one CT: give one CT with them")
    out_dir = Path(args.out_dir)

    @cache
    def models():
        from .ct.body_model.weights_io import load_model as load_body_model
        from .ct.fracture_model.weights_io import load_model

        model, bundle = load_model(args.weights)
        version = f"fracture model {bundle.metadata.get('trained', '')} settings {bundle.digest}"
        return model, None if args.labels else load_body_model(args.body_weights)[0], version

    if len(args.ct) == 1:
        _fracture_case(args, args.ct[0], out_dir, models)
        return 0
    summaries, failed = [], 0
    for ct_path in args.ct:
        name = Path(ct_path).name.split(".")[0] or Path(ct_path).name
        try:
            summaries.append(_fracture_case(args, ct_path, out_dir / name, models))
        except (SpineAnalysisError, OSError) as exc:
            failed += 1
            print(f"spine-analysis: error: {ct_path}: {exc}", file=sys.stderr)
            summaries.append({"ct": ct_path, "call": "error", "fractured_levels": [], "note": str(exc)})
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv_rows(("ct", "call", "fractured_levels", "max_vertebra_probability", "vertebrae_assessed", "note"),
                   [[s["ct"], s["call"], " ".join(s["fractured_levels"]), s.get("max_vertebra_probability", ""),
                     s.get("vertebrae_assessed", ""), s.get("note", "")] for s in summaries],
                   out_dir / "patients.csv")
    print(f"{len(args.ct) - failed} of {len(args.ct)} CTs assessed; summary: {out_dir / 'patients.csv'}")
    return 2 if failed else 0

def _cmd_train_fracture(args) -> int:
    import torch

    from .ct.fracture_model.data import load_graded_scans
    from .ct.fracture_model.train import TrainSettings, train_fracture
    from .io.atomic import write_json

    torch.set_num_threads(args.threads)
    settings = TrainSettings(epochs=args.epochs, batches_per_epoch=args.batches, seed=args.seed)
    command = "spine-analysis " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.folds == 1 or args.folds < 0:
        raise SpineAnalysisError("--folds must be 0 (none) or at least 2")
    cases = load_graded_scans(args.data, args.grades, log=lambda line: print(line, file=sys.stderr))
    if args.folds > len(cases):
        raise SpineAnalysisError(f"--folds {args.folds} is more than the {len(cases)} scans found")
    meta = train_fracture(cases, args.out, settings, command=command)
    print(f"trained on {len(meta['training_vertebrae'])} vertebrae of {len(cases)} scans in "
          f"{meta['training_minutes']} min; model written to {args.out}")
    for k in range(args.folds):
        held = [case for i, case in enumerate(cases) if i % args.folds == k]
        fold = Path(args.out) / "folds" / f"fold{k + 1}"
        print(f"fold {k + 1}/{args.folds}: without {', '.join(c.scan.name for c in held)}", file=sys.stderr)
        train_fracture([c for c in cases if c not in held], fold, settings, command=command)
        write_json({"held_out_scans": [c.scan.name for c in held]}, fold / "held_out.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``spine-analysis`` argument parser: one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="spine-analysis",
        description="Quantitative spine imaging: Cobb angles from AP radiographs "
                    "(landmark detection + geometry), training and evaluation of the landmark model.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("cobb", help="detect landmarks on a radiograph and report its Cobb angles",
                       description="Find the 68 vertebral corners (T1–L5) on an AP spine radiograph "
                                   "(PNG, JPEG, TIFF, DICOM, NRRD/MHA), then report the Cobb angles. "
                                   "Writes report.json, report.csv, landmarks.csv/.json and overlay.png "
                                   "(and overlay_sc.dcm with --dicom-sc). "
                                   "Without IMAGE it runs on a synthetic radiograph the project draws, "
                                   "as a check that everything works.")
    p.add_argument("image", nargs="?", metavar="IMAGE", help="the radiograph (omit for the synthetic check)")
    p.add_argument("--out-dir", metavar="DIR", help="output folder (default: ./<image name>-cobb)")
    p.add_argument("--weights", metavar="PATH", help="model folder (default: $SPINE_ANALYSIS_LANDMARK_WEIGHTS, "
                                                     "else the model shipped in the package)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--progress", action="store_true", help='print "[k/n] step" progress lines on stderr')
    p.add_argument("--image-right-is-patient-right", action="store_true",
                   help="the image shows the patient's right on the image's right (e.g. a PA view); "
                        "by default the patient's right is on the image's left, as on a standard AP view")
    p.add_argument("--force", action="store_true",
                   help="measure an image that does not look like an AP spine radiograph (refused by default); "
                        "the report says it did not pass and states no severity")
    p.add_argument("--frame", type=int, metavar="N",
                   help="the frame to measure in a multi-frame DICOM file (1 = first); such files are refused "
                        "without it")
    p.add_argument("--dicom-sc", action="store_true",
                   help="also save the overlay as a DICOM Secondary Capture (overlay_sc.dcm) in a new series of "
                        "the radiograph's study, for a PACS; IMAGE must be a DICOM radiograph")
    p.set_defaults(func=_cmd_cobb)

    p = sub.add_parser("serve", help="keep the engine warm: answer JSON requests on stdin, one per line",
                       description='Reads one JSON request per line on stdin, e.g. {"image": "xray.png"} '
                                   '(optional: "force", "out_dir", "weights", "patient_right_on_image_left", "frame"), '
                                   'and answers with JSON lines on stdout: {"status": "progress", ...} lines, then '
                                   'one {"status": "done", ...report, "landmarks", "flags"} or {"status": "error", '
                                   '"message": ...}. The model stays loaded, so only the first request pays the '
                                   'start-up. Ends when stdin closes. CT jobs: see spine_analysis.jobs.')
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("angles", help="Cobb angles from landmarks you already have",
                       description="Compute Cobb angles from corner landmarks. Give exactly one of "
                                   "--aasce DIR (with --out FILE.csv): a whole AASCE-layout folder, one "
                                   "row of three angles per image in filenames.csv order; or --landmarks "
                                   "FILE (with --image IMAGE): one case (landmarks CSV/JSON in pixels plus "
                                   "its radiograph), whose report is printed.")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--aasce", metavar="DIR",
                        help="AASCE-layout folder (images/, filenames.csv, landmarks.csv); needs --out")
    source.add_argument("--landmarks", metavar="FILE",
                        help="one case's landmarks (CSV or JSON, pixels); needs --image")
    p.add_argument("--out", metavar="FILE.csv", help="with --aasce: where to write the angles")
    p.add_argument("--mode", choices=("aasce", "clinical"), default="aasce",
                   help="with --aasce, the angles written: " + MODE_HELP + ". Default: %(default)s.")
    p.add_argument("--image", metavar="IMAGE", help="with --landmarks: that case's radiograph (for its size "
                                                    "and spacing)")
    p.add_argument("--json", action="store_true", help="with --landmarks: print the report as JSON")
    p.add_argument("--image-right-is-patient-right", action="store_true",
                   help="the patient's right is on the image's right (default: on the image's left)")
    p.set_defaults(func=_cmd_angles)

    p = sub.add_parser("predict", help="detect landmarks on every image of an AASCE-layout folder",
                       description="Writes OUT/landmarks.csv (normalised, AASCE layout, filenames.csv "
                                   "order) and OUT/angles.csv (AASCE rule). Labels need not exist.")
    p.add_argument("--aasce", required=True, metavar="DIR", help="folder with images/ and filenames.csv")
    p.add_argument("--out-dir", required=True, metavar="OUT", help="output folder")
    p.add_argument("--weights", metavar="PATH", help="model folder (default: the shipped model)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="score predictions against an AASCE-layout folder's labels",
                       description="SMAPE per angle and overall, mean absolute angle error, landmark "
                                   "NMSE and the share of images whose largest angle error is <= 5°.")
    p.add_argument("--aasce", required=True, metavar="DIR", help="labelled AASCE-layout folder")
    p.add_argument("--pred", required=True, metavar="OUT", help="folder written by 'spine-analysis predict'")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("train-landmarks", help="train the landmark cascade on an AASCE-layout folder",
                       description="Train the two-step landmark cascade on a folder laid out like "
                                   "the AASCE data (images/, filenames.csv, landmarks.csv). "
                                   "Checkpoints are saved after every epoch: rerun to resume.")
    p.add_argument("--aasce", required=True, metavar="DIR", help="AASCE-layout training folder")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for the trained model")
    p.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION",
                   help="share of patients held out for evaluation (default 0: train on all)")
    p.add_argument("--centre-epochs", type=int, default=16, help="epochs of the centre step (default 16)")
    p.add_argument("--corner-epochs", type=int, default=20, help="epochs of the corner step (default 20)")
    p.add_argument("--shape-loss", type=float, default=0.0, metavar="WEIGHT",
                   help="weight of the bipartite-distance shape loss (Imran et al.) on the corner step "
                        "(default 0: off)")
    p.add_argument("--reframe", type=_fraction, default=None, metavar="CHANCE",
                   help="share of centre-step images shown with other margins above and below, so "
                        "the levels depend less on how a radiograph is framed, at some cost on "
                        "radiographs framed like the AASCE ones (default 0: off; see the model card)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--max-images", type=int, default=None, help="train on the first N images only (smoke tests)")
    p.set_defaults(func=_cmd_train_landmarks)

    p = sub.add_parser("segment", help="segment the trabecular centrum of the vertebra at each seed in a CT",
                       description="Click-to-segment on the command line: for each seed (a point inside a "
                                   "vertebral body, in mm), the centrum (the body without its cortical shell "
                                   "and endplates) is segmented, written into one mask on the CT's grid "
                                   "(label k for the k-th seed) and measured: volume, HU statistics, lytic and "
                                   "sclerotic shares and an opportunistic bone-density screening hint.")
    p.add_argument("ct", metavar="CT",
                   help="the CT volume in HU: NIfTI, NRRD, MHA or a folder of DICOM slices (searched recursively)")
    p.add_argument("--series", metavar="UID", help=SERIES_HELP)
    p.add_argument("--seed", type=_point, action="append", required=True, metavar="X,Y,Z",
                   help="a point inside a vertebral body in mm; repeat for more vertebrae")
    p.add_argument("--frame", choices=("lps", "ras"), default="lps",
                   help="coordinate frame of the seeds: lps as ITK and DICOM files (default), "
                        "ras as Slicer shows them")
    p.add_argument("--method", choices=("unet", "classical"), default="unet",
                   help="unet: the trained network (default); classical: thresholds and morphology")
    p.add_argument("--level", nargs="+", metavar="LEVEL",
                   help="the seeds' levels (e.g. L1 L2), in seed order; a label map or centroid file wins "
                        "and must agree")
    p.add_argument("--labels", metavar="LABELMAP", help="a vertebra label map on the CT's grid (VerSe numbering) "
                                                        "that names the levels")
    p.add_argument("--centroids", metavar="CTD.json", help="a VerSe centroid file of this CT that names the levels")
    p.add_argument("--out", required=True, metavar="MASK.nii.gz", help="where to write the mask")
    p.add_argument("--json", metavar="FILE", help="also write the metrics as JSON")
    p.add_argument("--dicom-seg", metavar="SEG.dcm",
                   help="also write the centra as a DICOM SEG referencing the CT's slices, for a PACS or another "
                        "viewer (CT given as a DICOM folder)")
    p.add_argument("--body-out", metavar="BODIES.nii.gz",
                   help="also write the whole vertebral bodies (cortical shell included), labelled as the mask")
    p.add_argument("--weights", metavar="PATH", help="body model folder (default: $SPINE_ANALYSIS_BODY_WEIGHTS, "
                                                     "else the model shipped in the package)")
    p.add_argument("--lytic-below", type=float, default=0.0, metavar="HU",
                   help="centrum voxels below this count as lytic (default 0)")
    p.add_argument("--sclerotic-above", type=float, default=400.0, metavar="HU",
                   help="centrum voxels above this count as sclerotic (default 400)")
    p.set_defaults(func=_cmd_segment)

    p = sub.add_parser("fracture", help="find vertebral compression fractures in a CT",
                       description="Vertebral compression fractures in a spine CT: a voxel classifier "
                                   "(Nicolaes et al., CSI 2019) maps the fracture probability, aggregated per "
                                   "vertebra and per patient, beside the Genant grade from the vertebral body "
                                   "heights. Writes into OUT: fracture_probability.nii.gz (on the CT's grid), "
                                   "vertebrae.csv, vertebrae.json and patient.json. Several CTs: one folder "
                                   "each under OUT and OUT/patients.csv. Vertebrae come from --centroids or "
                                   "--labels, else the classifier finds them (levels then unnamed).")
    p.add_argument("ct", metavar="CT", nargs="+",
                   help="CT volume(s) in HU: NIfTI, NRRD, MHA or a folder of DICOM slices (searched recursively)")
    p.add_argument("--series", metavar="UID", help=SERIES_HELP + " (with one CT)")
    p.add_argument("--dicom-seg", action="store_true",
                   help=f"also write the probability map as a DICOM SEG ({FRACTURE_SEG}, fractional) referencing "
                        "the CT's slices, for a PACS or another viewer (CT given as a DICOM folder)")
    p.add_argument("--centroids", metavar="FILE",
                   help="vertebra centroids named by level: a VerSe *_ctd.json, a Slicer point list (.mrk.json) "
                        "or a CSV level,x,y,z (LPS mm)")
    p.add_argument("--labels", metavar="MASK", help="a vertebra label map (VerSe numbering) of this CT: names the "
                                                    "levels and gives the bodies measured for the Genant grade")
    p.add_argument("--out-dir", required=True, metavar="OUT", help="output folder")
    p.add_argument("--weights", metavar="PATH", help="fracture model folder (default: "
                                                     "$SPINE_ANALYSIS_FRACTURE_WEIGHTS, else the shipped model)")
    p.add_argument("--body-weights", metavar="PATH", help="body model folder for the heights (default: "
                                                          "$SPINE_ANALYSIS_BODY_WEIGHTS, else the shipped model)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (it only shows on a terminal anyway)")
    p.set_defaults(func=_cmd_fracture)

    p = sub.add_parser("train-body", help="train the vertebral-body network on CT scans with vertebra labels",
                       description="Train the seeded body/centrum U-Net on every labelled scan under DIR "
                                   "(VerSe 2019/2020 layout, TPTBox, TotalSegmentator outputs; see the model "
                                   "card for how each label becomes a centrum). Checkpoints are saved after "
                                   "every epoch: rerun to resume.")
    p.add_argument("--data", required=True, metavar="DIR", help="folder searched for labelled CT scans")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for the trained model")
    p.add_argument("--leave-one-scan-out", action="store_true",
                   help="then train once without each scan and score its vertebrae (Dice of the network and "
                        "of the classical method); fold models go to MODEL_DIR/folds/")
    p.add_argument("--epochs", type=int, default=40, help="epochs (default 40)")
    p.add_argument("--batches", type=int, default=60, help="batches of two vertebrae per epoch (default 60)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.set_defaults(func=_cmd_train_body)

    p = sub.add_parser("train-fracture", help="train the fracture network on CT scans with vertebra labels and grades",
                       description="Train the voxel-classification fracture network (background / normal / "
                                   "fractured vertebral body) on every labelled scan under DIR (VerSe 2019/2020 "
                                   "layout, TPTBox, TotalSegmentator outputs), with Genant grades from a grades "
                                   "JSON, plus simulated compression fractures of normal vertebrae (see the "
                                   "model card). Checkpoints are saved after every epoch: rerun to resume.")
    p.add_argument("--data", required=True, metavar="DIR", help="folder searched for labelled CT scans")
    p.add_argument("--grades", metavar="FILE",
                   help='Genant grades, {"<scan>_<VerSe label>": 0-3} flat or grouped by split; ungraded '
                        "vertebrae are taken as normal")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for the trained model")
    p.add_argument("--folds", type=int, default=0, metavar="K",
                   help="then train K more models, each without every K-th scan (held-out evaluation with "
                        "benchmarks/fracture_detection.py); fold models go to MODEL_DIR/folds/ (default 0: none)")
    p.add_argument("--epochs", type=int, default=40, help="epochs (default 40)")
    p.add_argument("--batches", type=int, default=50, help="batches of two crops per epoch (default 50)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.set_defaults(func=_cmd_train_fracture)
    return parser


def main(argv=None) -> int:
    """Run one command; returns the exit code (2 with a one-line message for a user's error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpineAnalysisError as exc:
        print(f"spine-analysis: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"spine-analysis: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spine-analysis: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
