"""The radiograph commands: cobb, angles, predict, evaluate."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..errors import SpineAnalysisError
from .common import add_weights

MODE_HELP = ("aasce: the challenge organisers' rule (columns in angles.csv order); "
             "clinical: the largest proximal thoracic, main thoracic and thoracolumbar/lumbar "
             "curves a clinician reports (0 where a region has no curve)")


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
    from ..xray.cobb import aasce_angles, analyse

    if mode == "aasce":
        return [float(a) for a in aasce_angles(landmarks, image_height)]
    return _clinical_row(analyse(landmarks, image_height))


def _cmd_angles(args) -> int:
    from ..io.aasce import read_aasce_folder, write_aasce_angles_csv
    from ..io.landmark_files import read_landmarks
    from ..io.xray import read_xray
    from ..xray.cobb import analyse
    from ..xray.report import make_report

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
    from ..xray.landmark_model.detector import LandmarkDetector

    return LandmarkDetector.load(weights)


def _cmd_cobb(args) -> int:
    import time

    from ..errors import NotSpineRadiographError
    from ..io.dicom_out import check_radiograph
    from ..io.xray import read_dicom_header, read_xray
    from ..xray.cobb import analyse
    from ..xray.measure import measure_radiograph
    from ..xray.report import check_outputs, write_report_files

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
        from ..xray.synthetic import example_case

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


def _cmd_predict(args) -> int:
    from tqdm import tqdm

    from ..io.aasce import read_aasce_folder, write_aasce_angles_csv, write_aasce_landmarks_csv
    from ..io.xray import read_xray
    from ..xray.cobb import aasce_angles
    from ..xray.spine_check import check_radiograph

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
    from ..io.aasce import read_aasce_folder, read_numeric_csv
    from ..xray.evaluation import evaluate_angles

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




def add_cobb(sub) -> None:
    p = sub.add_parser("cobb", help="detect landmarks on a radiograph and report its Cobb angles",
                       description="Find the 68 vertebral corners (T1–L5) on an AP spine radiograph "
                                   "(PNG, JPEG, TIFF, DICOM, NRRD/MHA), then report the Cobb angles. "
                                   "Writes report.json, report.csv, landmarks.csv/.json and overlay.png "
                                   "(and overlay_sc.dcm with --dicom-sc). "
                                   "Without IMAGE it runs on a synthetic radiograph the project draws, "
                                   "as a check that everything works.")
    p.add_argument("image", nargs="?", metavar="IMAGE", help="the radiograph (omit for the synthetic check)")
    p.add_argument("--out-dir", metavar="DIR", help="output folder (default: ./<image name>-cobb)")
    add_weights(p, "model folder", "SPINE_ANALYSIS_LANDMARK_WEIGHTS")
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


def add_angles(sub) -> None:
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


def add_predict_and_evaluate(sub) -> None:
    p = sub.add_parser("predict", help="detect landmarks on every image of an AASCE-layout folder",
                       description="Writes OUT/landmarks.csv (normalised, AASCE layout, filenames.csv "
                                   "order) and OUT/angles.csv (AASCE rule). Labels need not exist.")
    p.add_argument("--aasce", required=True, metavar="DIR", help="folder with images/ and filenames.csv")
    p.add_argument("--out-dir", required=True, metavar="OUT", help="output folder")
    add_weights(p, "model folder", None, shipped="the shipped model")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="score predictions against an AASCE-layout folder's labels",
                       description="SMAPE per angle and overall, mean absolute angle error, landmark "
                                   "NMSE and the share of images whose largest angle error is <= 5°.")
    p.add_argument("--aasce", required=True, metavar="DIR", help="labelled AASCE-layout folder")
    p.add_argument("--pred", required=True, metavar="OUT", help="folder written by 'spine-analysis predict'")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=_cmd_evaluate)
