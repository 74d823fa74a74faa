"""The training commands: train-landmarks, train-body, train-fracture."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np

from ..errors import SpineAnalysisError
from .common import fraction


def _start_training(args) -> str:
    """Set the CPU threads of a training run; returns the command line, recorded with the model."""
    import torch

    torch.set_num_threads(args.threads)
    return "spine-analysis " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _cmd_train_landmarks(args) -> int:
    from ..xray.landmark_model.train import TrainSettings, train_landmarks

    command = _start_training(args)
    settings = TrainSettings(centre_epochs=args.centre_epochs, corner_epochs=args.corner_epochs,
                             end_epochs=args.end_epochs, holdout_fraction=args.holdout, seed=args.seed,
                             split_seed=args.split_seed,
                             shape_loss_weight=args.shape_loss, max_images=args.max_images,
                             **({} if args.reframe is None else {"reframe_chance": args.reframe}))
    meta = train_landmarks(args.aasce, args.out, settings, command=command)
    print(f"trained on {meta['training_images']} images in {meta['training_minutes']} min; "
          f"model written to {args.out}")
    return 0


def _cmd_train_landmark_ends(args) -> int:
    from ..xray.landmark_model.train import TrainSettings, add_end_network

    command = _start_training(args)
    settings = TrainSettings(end_epochs=args.epochs, seed=args.seed)
    meta = add_end_network(args.model, args.aasce, args.out, settings, command=command)
    print(f"end network fine-tuned on {meta['training_images']} images in "
          f"{meta['end_network']['training_minutes']} min; model written to {args.out}")
    return 0


def _cmd_join_landmarks(args) -> int:
    from ..xray.landmark_model.ensemble import join_members

    meta = join_members(args.members, args.out,
                        command="spine-analysis " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    seeds = ", ".join(str(m["seed"]) for m in meta["members"])
    print(f"ensemble of {len(meta['members'])} models (seeds {seeds}) written to {args.out}")
    return 0


def _cmd_train_body(args) -> int:
    from ..ct.body_model.data import load_scans
    from ..ct.body_model.evaluate import evaluate_scan
    from ..ct.body_model.train import TrainSettings, train_body
    from ..ct.body_model.weights_io import load_model
    from ..io.atomic import write_json

    command = _start_training(args)
    settings = TrainSettings(epochs=args.epochs, batches_per_epoch=args.batches, seed=args.seed)
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


def _cmd_train_fracture(args) -> int:
    from ..ct.fracture_model.data import load_graded_scans
    from ..ct.fracture_model.train import TrainSettings, train_fracture
    from ..io.atomic import write_json

    command = _start_training(args)
    settings = TrainSettings(epochs=args.epochs, batches_per_epoch=args.batches, seed=args.seed)
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


def _add_seed_and_threads(p) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")


def add_train_landmarks(sub) -> None:
    p = sub.add_parser("train-landmarks", help="train the landmark cascade on an AASCE-layout folder",
                       description="Train the two-step landmark cascade on a folder laid out like "
                                   "the AASCE data (images/, filenames.csv, landmarks.csv). "
                                   "Checkpoints are saved after every epoch: rerun to resume.")
    p.add_argument("--aasce", required=True, metavar="DIR", help="AASCE-layout training folder")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for the trained model")
    p.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION",
                   help="share of patients held out for evaluation (default 0: train on all)")
    p.add_argument("--split-seed", type=int, default=None, metavar="N",
                   help="which patients --holdout leaves out (default: --seed); ensemble members "
                        "trained on one split share it and differ in --seed")
    p.add_argument("--centre-epochs", type=int, default=16, help="epochs of the centre step (default 16)")
    p.add_argument("--corner-epochs", type=int, default=20, help="epochs of the corner step (default 20)")
    p.add_argument("--end-epochs", type=int, default=30,
                   help="epochs of the T1/L5 corner network, fine-tuned from the corner step's (default 30)")
    p.add_argument("--shape-loss", type=float, default=0.0, metavar="WEIGHT",
                   help="weight of the bipartite-distance shape loss (Imran et al.) on the corner step "
                        "(default 0: off)")
    p.add_argument("--reframe", type=fraction, default=None, metavar="CHANCE",
                   help="share of centre-step images shown with other margins above and below, so "
                        "the levels depend less on how a radiograph is framed, at some cost on "
                        "radiographs framed like the AASCE ones (default 0: off; see the model card)")
    _add_seed_and_threads(p)
    p.add_argument("--max-images", type=int, default=None, help="train on the first N images only (smoke tests)")
    p.set_defaults(func=_cmd_train_landmarks)


def add_train_landmark_ends(sub) -> None:
    p = sub.add_parser("train-landmark-ends", help="give a trained landmark model a corner network for T1 and L5",
                       description="Fine-tune a corner network of its own for the end vertebrae (T1, L5) from a "
                                   "landmark model trained without one (train-landmarks now trains it itself), on "
                                   "the images the model was trained on; every other weight is kept. "
                                   "Checkpoints are saved after every epoch: rerun to resume.")
    p.add_argument("model", metavar="MODEL_DIR", help="trained landmark model folder")
    p.add_argument("--aasce", required=True, metavar="DIR", help="the AASCE-layout folder it was trained on")
    p.add_argument("--out", required=True, metavar="NEW_MODEL_DIR", help="folder for the new model")
    p.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs (default 30)")
    _add_seed_and_threads(p)
    p.set_defaults(func=_cmd_train_landmark_ends)


def add_join_landmarks(sub) -> None:
    p = sub.add_parser("join-landmarks", help="join landmark models trained with different seeds into an ensemble",
                       description="Join landmark models trained on the same images with different --seed "
                                   "into one ensemble model folder: both steps average their members' "
                                   "heatmaps before peaks are read. Members are trained one by one with "
                                   "train-landmarks (each resumable).")
    p.add_argument("members", nargs="+", metavar="MEMBER_DIR", help="trained landmark model folders")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="new folder for the ensemble")
    p.set_defaults(func=_cmd_join_landmarks)


def _ct_training_parser(sub, name: str, help_text: str, description: str, func, batches: int, batch_text: str,
                        before_out=None, after_out=None) -> None:
    """A CT network's training command: --data, ``before_out(p)``, --out, ``after_out(p)``, then
    --epochs, --batches, --seed and --threads, in the order its help lists them."""
    p = sub.add_parser(name, help=help_text, description=description)
    p.add_argument("--data", required=True, metavar="DIR", help="folder searched for labelled CT scans")
    if before_out:
        before_out(p)
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for the trained model")
    after_out(p)
    p.add_argument("--epochs", type=int, default=40, help="epochs (default 40)")
    p.add_argument("--batches", type=int, default=batches, help=f"{batch_text} per epoch (default {batches})")
    _add_seed_and_threads(p)
    p.set_defaults(func=func)


def add_train_body(sub) -> None:
    _ct_training_parser(
        sub, "train-body", "train the vertebral-body network on CT scans with vertebra labels",
        "Train the seeded body/centrum U-Net on every labelled scan under DIR (VerSe 2019/2020 layout, TPTBox, "
        "TotalSegmentator outputs; see the model card for how each label becomes a centrum). Checkpoints are "
        "saved after every epoch: rerun to resume.", _cmd_train_body, 60, "batches of two vertebrae",
        after_out=lambda p: p.add_argument(
            "--leave-one-scan-out", action="store_true",
            help="then train once without each scan and score its vertebrae (Dice of the network and of the "
                 "classical method); fold models go to MODEL_DIR/folds/"))


def add_train_fracture(sub) -> None:
    _ct_training_parser(
        sub, "train-fracture", "train the fracture network on CT scans with vertebra labels and grades",
        "Train the voxel-classification fracture network (background / normal / fractured vertebral body) on "
        "every labelled scan under DIR (VerSe 2019/2020 layout, TPTBox, TotalSegmentator outputs), with Genant "
        "grades from a grades JSON, plus simulated compression fractures of normal vertebrae (see the model "
        "card). Checkpoints are saved after every epoch: rerun to resume.", _cmd_train_fracture, 50,
        "batches of two crops",
        before_out=lambda p: p.add_argument(
            "--grades", metavar="FILE", help='Genant grades, {"<scan>_<VerSe label>": 0-3} flat or grouped by '
                                             "split; ungraded vertebrae are taken as normal"),
        after_out=lambda p: p.add_argument(
            "--folds", type=int, default=0, metavar="K",
            help="then train K more models, each without every K-th scan (held-out evaluation with "
                 "benchmarks/fracture_detection.py); fold models go to MODEL_DIR/folds/ (default 0: none)"))
