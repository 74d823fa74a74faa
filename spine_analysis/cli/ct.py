"""The CT commands: segment and fracture, over ``ct.study``."""
from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from ..ct.study import FRACTURE_SEG
from ..errors import SpineAnalysisError
from .common import add_series, add_weights, point


def _check_segment_options(args) -> None:
    """Which vertebrae to segment (the seeds, or without seeds the centroid file's vertebrae) and the
    settings' ranges, checked before the CT is read."""
    from ..ct.vertebral_body import MAX_SHELL_MM

    if not args.seed and not args.centroids:
        raise SpineAnalysisError("give --seed X,Y,Z (a point inside a vertebral body, repeatable) or --centroids "
                                 "FILE (every vertebra it names)")
    if args.levels and (args.seed or not args.centroids):
        raise SpineAnalysisError("--levels chooses vertebrae of --centroids when no --seed is given (with --seed, "
                                 "--level names the seeds)")
    if args.shell_mm is not None and not 0 <= args.shell_mm <= MAX_SHELL_MM:
        raise SpineAnalysisError(f"--shell-mm {args.shell_mm:g}: choose 0 to {MAX_SHELL_MM:g} mm")
    if args.min_lesion_ml < 0:
        raise SpineAnalysisError(f"--min-lesion-ml {args.min_lesion_ml:g}: a volume cannot be negative")
    if args.level and not args.seed:
        raise SpineAnalysisError("--level names the seeds: without --seed the centroid file names the vertebrae "
                                 "(--levels chooses some)")


def _chosen_centroids(centroids: dict, levels: str | None, path) -> dict:
    """The centroids of the levels named in ``levels`` ("L1,L2", any case), in the file's order; all without it."""
    if not levels:
        return centroids
    wanted = [level.strip() for level in levels.split(",") if level.strip()]
    known = {name.upper(): name for name in centroids}
    unknown = [level for level in wanted if level.upper() not in known]
    if unknown or not wanted:
        given = ",".join(unknown) if unknown else repr(levels)
        raise SpineAnalysisError(f"--levels {given}: not in {Path(path).name}, which names {', '.join(centroids)}")
    chosen = {known[level.upper()] for level in wanted}
    return {name: point for name, point in centroids.items() if name in chosen}


def _cmd_segment(args) -> int:
    from ..ct.levels import read_centroids
    from ..ct.study import check_mask_outputs, load_ct_model, read_study, segment_centroids, segment_seeds, write_masks
    from ..ct.vertebral_body import DensityThresholds
    from ..io.atomic import write_json

    _check_segment_options(args)
    if args.overview and not args.overview.lower().endswith(".png"):
        raise SpineAnalysisError(f"{args.overview}: the overview is a PNG picture: give a name ending in .png")
    check_mask_outputs([args.out, args.body_out], [args.json, args.dicom_seg, args.overview],
                       [args.ct, args.labels, args.centroids])
    study = read_study(args.ct, args.series, for_dicom_seg=bool(args.dicom_seg), labels=args.labels)
    centroids = read_centroids(args.centroids, study.ct) if args.centroids else None
    chosen = None if args.seed else _chosen_centroids(centroids, args.levels, args.centroids)
    body_model = load_ct_model("body", args.weights) if args.method == "unet" else None
    thresholds = DensityThresholds(lytic_below_hu=args.lytic_below, sclerotic_above_hu=args.sclerotic_above,
                                   min_lesion_ml=args.min_lesion_ml)
    if args.seed:
        segmentation = segment_seeds(study.ct, args.seed, args.coordinate_system, args.method, body_model,
                                     args.level, study.label_map, centroids, thresholds, shell_mm=args.shell_mm)
    else:
        segmentation = segment_centroids(study.ct, chosen, args.method, body_model, study.label_map, thresholds,
                                         shell_mm=args.shell_mm)
    write_masks(segmentation, study.ct, args.out, args.body_out, args.dicom_seg, study.slices, args.overview)
    warnings = [*segmentation.warnings,
                *(f"{r['level']} not segmented: {r['reason']}" for r in segmentation.refused)]
    for warning in warnings:
        print(f"spine-analysis: warning: {warning}", file=sys.stderr)
    metrics = segmentation.vertebrae
    result = {"ct": str(args.ct), "mask": str(args.out), "bodies": args.body_out, "dicom_seg": args.dicom_seg,
              "overview": args.overview, **({"coordinate_system_of_seeds": args.coordinate_system} if args.seed
                                            else {"centroids": str(args.centroids), "refused": segmentation.refused}),
              "slice_thickness_mm": segmentation.slice_mm, "shell_mm": metrics[0].shell_mm, "warnings": warnings,
              "vertebrae": [m.to_dict() for m in metrics]}
    if args.json:
        write_json(result, args.json)
    print(f"{'label':>5} {'level':<8} {'centrum ml':>10} {'mean HU':>8} {'median':>7} {'SD':>6} "
          f"{'lytic':>6} {'scler.':>6}  density")
    for m in metrics:
        print(f"{m.index:>5} {m.level:<8} {m.volume_ml:>10.1f} {m.hu_mean:>8.0f} {m.hu_median:>7.0f} "
              f"{m.hu_std:>6.0f} {m.lytic_share:>6.1%} {m.sclerotic_share:>6.1%}  {m.density_hint}")
    order = "seed k" if args.seed else "the k-th vertebra segmented, in the file's order"
    print(f"slices {segmentation.slice_mm:.1f} mm thick; centrum = body less a {metrics[0].shell_mm:g} mm shell")
    print(f"mask: {args.out} (label k = {order}; {args.method})" + (f"; metrics: {args.json}" if args.json else "")
          + (f"; DICOM SEG: {args.dicom_seg}" if args.dicom_seg else "")
          + (f"; overview: {args.overview}" if args.overview else ""))
    return 0


def _print_findings(name: str, assessment, out_dir: Path) -> None:
    """The findings of one CT as a table on stdout."""
    result = assessment.result
    print(f"{name}: levels {result.level_source}")
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
                                            if patient["fractured_levels"] else "") + f": {patient['basis']}")
    print(f"  opinions: {_opinions_line(patient['opinions'])}")
    if patient["note"]:
        print(f"  note: {patient['note']}")
    print(f"  outputs: {out_dir}/ ({', '.join(Path(p).name for p in assessment.outputs.values())})")


def _opinions_line(opinions: dict) -> str:
    """Each opinion of the patient summary in a few words: which levels it alone would call fractured."""
    classifier, morphometry = opinions["classifier"], opinions["morphometry"]
    highest = classifier["max_vertebra_probability"]
    return (f"classifier: fractured {', '.join(classifier['fractured_levels']) or 'none'} (highest p "
            + ("-" if highest is None else f"{highest:.2f}") + f", threshold {classifier['threshold']:g}); "
            f"morphometry: fractured {', '.join(morphometry['fractured_levels']) or 'none'} "
            f"({morphometry['vertebrae_graded']} graded" + (f"; {morphometry['note']}" if morphometry["note"] else "")
            + ")")


def _fracture_case(args, ct_path: str, out_dir: Path, models) -> dict:
    """Assess one CT and write its results into ``out_dir``; returns its patient summary.

    The inputs are read and checked before ``models()`` loads the networks: bad input fails fast."""
    from tqdm import tqdm

    from ..ct.study import assess_fractures, fracture_outputs, read_fracture_study

    protect = [ct_path, args.labels, args.centroids]
    fracture_outputs(out_dir, args.dicom_seg, protect)
    study = read_fracture_study(ct_path, args.series, for_dicom_seg=args.dicom_seg, labels=args.labels,
                                centroids=args.centroids)
    model, body_model = models()
    # a bar on a terminal only: in a log file or a pipe it would be noise between the lines
    with tqdm(total=100, desc=Path(ct_path).name, unit="%", file=sys.stderr, leave=False,
              disable=args.quiet or not sys.stderr.isatty()) as bar:
        def progress(fraction: float, message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(max(0, round(100 * fraction) - bar.n))

        assessment = assess_fractures(
            study.ct, model, out_dir, ct_path, body_model=body_model, centroids=study.centroids,
            label_map=study.label_map, centroid_source="centroid file " + Path(args.centroids).name
            if args.centroids else "", progress=progress, slices=study.slices, protect=protect)
    _print_findings(Path(ct_path).name, assessment, out_dir)
    patient = assessment.result.patient
    return {"ct": str(ct_path), **{k: patient[k] for k in ("call", "basis", "fractured_levels", "vertebrae_assessed")},
            "max_vertebra_probability": patient["opinions"]["classifier"]["max_vertebra_probability"]}


def _cmd_fracture(args) -> int:
    from ..ct.study import load_ct_model
    from ..io.atomic import write_csv_rows

    if len(args.ct) > 1 and (args.centroids or args.labels or args.series):
        raise SpineAnalysisError("--centroids, --labels and --series belong to one CT: give one CT with them")
    out_dir = Path(args.out_dir)

    @cache
    def models():
        """The fracture network, and the body network unless a label map gives every body (points given
        with it may name levels it lacks)."""
        needs_body = not args.labels or args.centroids
        return load_ct_model("fracture", args.weights), load_ct_model("body", args.body_weights) if needs_body else None

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
    write_csv_rows(("ct", "call", "basis", "fractured_levels", "max_vertebra_probability", "vertebrae_assessed",
                    "note"),
                   [[s["ct"], s["call"], s.get("basis", ""), " ".join(s["fractured_levels"]),
                     "" if s.get("max_vertebra_probability") is None else s["max_vertebra_probability"],
                     s.get("vertebrae_assessed", ""), s.get("note", "")] for s in summaries],
                   out_dir / "patients.csv")
    print(f"{len(args.ct) - failed} of {len(args.ct)} CTs assessed; summary: {out_dir / 'patients.csv'}")
    return 2 if failed else 0


def add_segment(sub) -> None:
    p = sub.add_parser("segment", help="segment the trabecular centrum of the vertebra at each seed in a CT",
                       description="Click-to-segment on the command line: for each seed (a point inside a "
                                   "vertebral body, in mm), or each vertebra of a centroid file, the centrum (the "
                                   "body without its cortical shell and endplates) is segmented, written into one "
                                   "mask on the CT's grid (label k for the k-th seed or vertebra) and measured: "
                                   "volume, HU statistics, lytic and sclerotic shares and an opportunistic "
                                   "bone-density screening hint.")
    p.add_argument("ct", metavar="CT",
                   help="the CT volume in HU: NIfTI, NRRD, MHA or a folder of DICOM slices (searched recursively)")
    add_series(p)
    p.add_argument("--seed", type=point, action="append", metavar="X,Y,Z",
                   help="a point inside a vertebral body in mm; repeat for more vertebrae (without it: every "
                        "vertebra of --centroids)")
    p.add_argument("--coordinate-system", choices=("lps", "ras"), default="lps",
                   help="coordinate system of the seeds: lps as ITK and DICOM files (default), "
                        "ras as Slicer shows them")
    p.add_argument("--method", choices=("unet", "classical"), default="unet",
                   help="unet: the trained network (default); classical: thresholds and morphology")
    p.add_argument("--level", nargs="+", metavar="LEVEL",
                   help="the seeds' levels (e.g. L1 L2), in seed order; a label map or centroid file wins "
                        "and must agree")
    p.add_argument("--labels", metavar="LABELMAP", help="a vertebra label map on the CT's grid (VerSe numbering) "
                                                        "that names the levels")
    p.add_argument("--centroids", metavar="FILE",
                   help="vertebra centroids of this CT named by level: a VerSe *_ctd.json, a Slicer point list "
                        "(.mrk.json) or a CSV level,x,y,z (LPS mm). With --seed it names the seeds' levels; "
                        "without, every vertebra in it is segmented (one that cannot be is reported and skipped)")
    p.add_argument("--levels", metavar="L1,L2",
                   help="without --seed: segment only these vertebrae of --centroids")
    p.add_argument("--out", required=True, metavar="MASK.nii.gz", help="where to write the mask")
    p.add_argument("--json", metavar="FILE", help="also write the metrics as JSON")
    p.add_argument("--dicom-seg", metavar="SEG.dcm",
                   help="also write the centra as a DICOM SEG referencing the CT's slices, for a PACS or another "
                        "viewer (CT given as a DICOM folder)")
    p.add_argument("--body-out", metavar="BODIES.nii.gz",
                   help="also write the whole vertebral bodies (cortical shell included), labelled as the mask")
    p.add_argument("--overview", metavar="PICTURE.png",
                   help="also draw the centra and bodies with their levels over a sagittal and an axial slice")
    add_weights(p, "body model folder", "SPINE_ANALYSIS_BODY_WEIGHTS")
    p.add_argument("--shell-mm", type=float, default=None, metavar="MM",
                   help="the shell (cortex and endplates) removed from each body to leave its centrum (default 3, "
                        "as VerSe's body-border label; finite-element benchmarks often use 2)")
    p.add_argument("--lytic-below", type=float, default=0.0, metavar="HU",
                   help="centrum regions below this (lightly smoothed) count as lytic (default 0)")
    p.add_argument("--sclerotic-above", type=float, default=400.0, metavar="HU",
                   help="centrum regions above this (lightly smoothed) count as sclerotic (default 400)")
    p.add_argument("--min-lesion-ml", type=float, default=0.1, metavar="ML",
                   help="smaller lytic or sclerotic regions are noise, not lesions (default 0.1)")
    p.set_defaults(func=_cmd_segment)


def add_fracture(sub) -> None:
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
    add_series(p, " (with one CT)")
    p.add_argument("--dicom-seg", action="store_true",
                   help=f"also write the probability map as a DICOM SEG ({FRACTURE_SEG}, fractional) referencing "
                        "the CT's slices, for a PACS or another viewer (CT given as a DICOM folder)")
    p.add_argument("--centroids", metavar="FILE",
                   help="vertebra centroids named by level: a VerSe *_ctd.json, a Slicer point list (.mrk.json) "
                        "or a CSV level,x,y,z (LPS mm)")
    p.add_argument("--labels", metavar="MASK", help="a vertebra label map (VerSe numbering) of this CT: names the "
                                                    "levels and gives the bodies measured for the Genant grade")
    p.add_argument("--out-dir", required=True, metavar="OUT", help="output folder")
    add_weights(p, "fracture model folder", "SPINE_ANALYSIS_FRACTURE_WEIGHTS", shipped="the shipped model")
    add_weights(p, "body model folder for the heights", "SPINE_ANALYSIS_BODY_WEIGHTS", "--body-weights",
                "the shipped model")
    p.add_argument("--quiet", action="store_true", help="no progress bar (it only shows on a terminal anyway)")
    p.set_defaults(func=_cmd_fracture)
