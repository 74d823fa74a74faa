"""The ``spine-analysis`` command line: a thin front end over the engine.

Every failure a user can cause (bad path, bad image, bad landmarks) ends as one line on
stderr and exit code 2; nothing is printed as a traceback.
"""
from __future__ import annotations

import argparse
import shlex
import sys

from . import __version__
from .errors import SpineAnalysisError


def _cmd_train_landmarks(args) -> int:
    import torch

    from .landmark_model.train import TrainSettings, train_landmarks

    torch.set_num_threads(args.threads)
    settings = TrainSettings(centre_epochs=args.centre_epochs, corner_epochs=args.corner_epochs,
                             holdout_fraction=args.holdout, seed=args.seed,
                             max_images=args.max_images)
    command = "spine-analysis " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    meta = train_landmarks(args.aasce, args.out, settings, command=command)
    print(f"trained on {meta['training_images']} images in {meta['training_minutes']} min; "
          f"model written to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spine-analysis",
        description="Quantitative spine imaging: Cobb angles from AP radiographs "
                    "(landmark detection + geometry), training and evaluation of the landmark model.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train-landmarks", help="train the landmark cascade on an AASCE-layout folder",
                       description="Train the two-step landmark cascade on a folder laid out like "
                                   "the AASCE data (images/, filenames.csv, landmarks.csv). "
                                   "Checkpoints are saved after every epoch: rerun to resume.")
    p.add_argument("--aasce", required=True, metavar="DIR", help="AASCE-layout training folder")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for the trained model")
    p.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION",
                   help="share of patients held out for evaluation (default 0: train on all)")
    p.add_argument("--centre-epochs", type=int, default=24, help="epochs of the centre step (default 24)")
    p.add_argument("--corner-epochs", type=int, default=10, help="epochs of the corner step (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--max-images", type=int, default=None, help="train on the first N images only (smoke tests)")
    p.set_defaults(func=_cmd_train_landmarks)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (SpineAnalysisError, OSError) as exc:
        print(f"spine-analysis: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spine-analysis: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
