"""Outputs that appear complete or not at all: a crash mid-write leaves the old file or nothing."""
from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..errors import SpineAnalysisError


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



def check_output_folder(out_dir, names: Sequence[str], protect=(), option: str = "--out-dir") -> dict[str, Path]:
    """The paths ``out_dir/name``, after checking, before any work, that the run can write them:
    none is an input (``protect``) or a non-file, and the folder (or its nearest existing parent,
    as the folder is only created when results are written) is writable. The messages name the
    ``option`` a user changes to choose another place."""
    out_dir = Path(out_dir)
    targets = {name: out_dir / name for name in names}
    protected = {Path(p).resolve() for p in protect if p}
    for path in targets.values():
        if path.resolve() in protected:
            raise SpineAnalysisError(f"refusing to overwrite the input {path}: choose another {option}")
        if path.exists() and not path.is_file():
            raise SpineAnalysisError(f"{path} exists and is not a file: choose another {option}")
    if out_dir.exists() and not out_dir.is_dir():
        raise SpineAnalysisError(f"{out_dir} exists and is not a folder")
    existing = out_dir.resolve()
    while not existing.exists():
        existing = existing.parent
    try:  # a file made and removed: permissions, read-only disks and root's exemptions all answer truly
        fd, probe = tempfile.mkstemp(prefix=".spine-analysis-write-check-", dir=existing)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise SpineAnalysisError(f"cannot write into {existing} ({(exc.strerror or str(exc)).lower()}): "
                                 f"choose another {option}") from None
    return targets
