"""Outputs that appear complete or not at all: a crash mid-write leaves the old file or nothing."""
from __future__ import annotations

import contextlib
import csv
import json
import os
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np


@contextlib.contextmanager
def atomic_output(path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    A crash or error mid-write then leaves the old file (or nothing), never a truncated one.
    The temporary keeps the suffix so suffix-driven writers (SimpleITK, Pillow) pick the format.
    """
    path = Path(path)
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _json_default(obj):
    """Let results carry numpy numbers and paths without converting them by hand."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json(obj: dict, path) -> None:
    """``obj`` as indented JSON at ``path`` (numpy numbers, arrays and paths allowed), atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")


def write_csv_rows(header: Sequence[str], rows: Iterable[Sequence], path) -> None:
    """A CSV file of ``header`` then ``rows`` at ``path``, atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)

