"""The ``spine-analysis`` command line: a thin front end over the engine.

One module per command group (``xray``: cobb, angles, predict, evaluate; ``ct``: segment, fracture;
``training``: train-landmarks, train-body, train-fracture; ``serve``; ``cohort``), shared argument types in
``common``. Every failure a user can cause (bad path, bad image, bad landmarks) ends as one line on
stderr and exit code 2; nothing is printed as a traceback.
"""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import SpineAnalysisError, os_error_message
from . import cohort, ct, serve, training, xray
from .common import Parser


def build_parser() -> argparse.ArgumentParser:
    """The ``spine-analysis`` argument parser: one sub-command per job, listed in this order in --help."""
    parser = Parser(
        prog="spine-analysis",
        description="Quantitative spine imaging: Cobb angles from AP radiographs "
                    "(landmark detection + geometry), training and evaluation of the landmark model.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (xray.add_cobb, serve.add_serve, xray.add_angles, xray.add_predict_and_evaluate,
                training.add_train_landmarks, training.add_train_landmark_ends, training.add_join_landmarks,
                ct.add_segment, ct.add_fracture,
                training.add_train_body, training.add_train_fracture, cohort.add_cohort):
        add(sub)
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
