"""What several command groups share: the parser class, argument types, option blocks and small steps."""
from __future__ import annotations

import argparse
import re

SERIES_HELP = ("the SeriesInstanceUID to read from a DICOM folder holding several series (a folder with "
               "several is refused with the list of its series and their UIDs)")

#: A comma-separated list of numbers starting with a minus sign, e.g. "-17.9,195.0,-76.9".
_NEGATIVE_LIST = re.compile(r"^-\.?\d[^,]*(,[^,]*)+$")


class Parser(argparse.ArgumentParser):
    """argparse takes "-17.9,195.0,-76.9" after ``--seed`` for an unknown option (it accepts only a
    plain negative number as a value); here a comma-separated list of numbers is always a value."""

    def _parse_optional(self, arg_string):
        if _NEGATIVE_LIST.match(arg_string):
            return None
        return super()._parse_optional(arg_string)


def fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def point(text: str) -> list[float]:
    """An argparse type: "X,Y,Z" in mm."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not X,Y,Z (three numbers in mm, comma-separated)")
    return values


def add_weights(p: argparse.ArgumentParser, what: str, env: str | None, option: str = "--weights",
                shipped: str = "the model shipped in the package") -> None:
    """A model-folder option (--weights): ``what`` it holds, defaulting to $``env``, else the shipped model."""
    p.add_argument(option, metavar="PATH", help=f"{what} (default: {f'${env}, else ' if env else ''}{shipped})")


def add_series(p: argparse.ArgumentParser, extra: str = "") -> None:
    """The --series option of a command reading CTs."""
    p.add_argument("--series", metavar="UID", help=SERIES_HELP + extra)
