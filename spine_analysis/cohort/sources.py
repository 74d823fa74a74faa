"""Which studies a cohort holds: a folder searched recursively, or a CSV manifest; ids and fingerprints.

A study's id names its output folder (DIR/<id>/) and its ledger row, so it is derived from the
path relative to the source (stable across reruns, readable, safe as a folder name), or taken from
the manifest. Its fingerprint says whether the input changed since a study was done: size,
modification time and the first and last MiB of each file (a whole radiograph, mostly), so a rerun
over 10^5 files reads little and a replaced or rewritten file is never taken for the old one.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import SpineAnalysisError

RADIOGRAPH_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom")
CT_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
#: Words naming a label map or mask, not a CT, in VerSe, TotalSegmentator and TPTBox file names.
_MASK_WORDS = {"seg", "msk", "mask", "label", "labels", "labelmap", "segmentation", "totalseg"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_HASHED_BYTES = 1 << 20


@dataclass(frozen=True)
class Study:
    """One study of a cohort: its id, its input (a file, or a DICOM folder) and its centroid file."""

    id: str
    path: str
    centroids: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _id_from(relative: Path) -> str:
    """A folder-safe id from a path relative to the source: separators become "__", no suffix."""
    parts = list(relative.parts)
    if parts:
        parts[-1] = parts[-1][:-len(_suffix(relative))] if _suffix(relative) else parts[-1]
    return _UNSAFE.sub("_", "__".join(parts)).strip("._") or "study"


def _unique_ids(studies: list[Study]) -> list[Study]:
    """Ids made unique (two files differing only in unsafe characters) by a short hash of the path."""
    counts: dict[str, int] = {}
    for study in studies:
        counts[study.id] = counts.get(study.id, 0) + 1
    return [Study(f"{s.id}-{hashlib.sha256(s.path.encode()).hexdigest()[:8]}", s.path, s.centroids)
            if counts[s.id] > 1 else s for s in studies]


def _is_ct_name(stem: str) -> bool:
    """A CT by its file name: a BIDS-style name ending in ``_ct`` (``sub-x_label-22_ct``), else any name
    without a mask word (``sub-x_seg-vert_msk``, ``totalseg_vertebrae``, ``mask`` are label maps)."""
    words = [w.lower() for w in re.split(r"[_\-.]", stem) if w]
    return bool(words) and (words[-1] == "ct" or not _MASK_WORDS & set(words))


def _verse_centroids(ct: Path) -> str | None:
    """The centroid file beside a VerSe-named CT (``sub-X_ct.nii.gz`` with ``sub-X_*ctd.json``), if one."""
    name = ct.name
    if "_ct." not in name:
        return None
    found = sorted(ct.parent.glob(name.split("_ct.")[0] + "_*ctd.json"))
    return str(found[0]) if found else None


def discover_folder(root, task: str, skip=()) -> list[Study]:
    """Every study under ``root``: radiographs for ``cobb``; for the CT tasks CT volumes (label maps and
    masks by their names left out) and folders of DICOM slices, one study each, with a VerSe centroid
    file beside a CT. ``skip`` (the output folder) is not searched."""
    root = Path(root)
    skipped = {Path(s).resolve() for s in skip}
    studies = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() not in skipped)
        files = sorted(f for f in files if not f.startswith("."))
        if task != "cobb" and any(f.lower().endswith((".dcm", ".dicom")) for f in files):
            studies.append(Study(_id_from(here.relative_to(root)) if here != root else _id_from(Path(root.name)),
                                 str(here)))
            dirs[:] = []
            continue
        for name in files:
            path = here / name
            suffix = _suffix(path)
            if task == "cobb" and suffix in RADIOGRAPH_SUFFIXES:
                studies.append(Study(_id_from(path.relative_to(root)), str(path)))
            elif task != "cobb" and suffix in CT_SUFFIXES and _is_ct_name(name[:-len(suffix)]):
                studies.append(Study(_id_from(path.relative_to(root)), str(path), _verse_centroids(path)))
    return _unique_ids(studies)


def read_manifest(path) -> list[Study]:
    """The studies of a CSV manifest: a header with ``path`` and optionally ``id`` and ``centroids``,
    one study per row; relative paths are relative to the manifest's folder."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        if "path" not in columns:
            raise SpineAnalysisError(f"{path}: a manifest needs a header row with a 'path' column "
                                     "(and optionally 'id' and 'centroids')")
        rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    studies = []
    for number, row in enumerate(rows, start=2):
        if not row.get("path"):
            raise SpineAnalysisError(f"{path}, line {number}: no path")
        given = Path(row["path"])
        study_path = given if given.is_absolute() else path.parent / given
        centroids = row.get("centroids") or None
        if centroids and not Path(centroids).is_absolute():
            centroids = str(path.parent / centroids)
        study_id = row.get("id") or _id_from(Path(given.name))
        if _UNSAFE.search(study_id) or study_id.startswith("."):
            raise SpineAnalysisError(f"{path}, line {number}: the id {study_id!r} is not usable as a folder name "
                                     "(letters, digits, '.', '_' and '-' only)")
        studies.append(Study(study_id, str(study_path), centroids))
    given_ids = [s.id for s in studies]
    if any(row.get("id") for row in rows) and len(set(given_ids)) != len(given_ids):
        twice = sorted({i for i in given_ids if given_ids.count(i) > 1})
        raise SpineAnalysisError(f"{path}: ids given twice: {', '.join(twice[:5])}")
    return _unique_ids(studies)


def find_studies(source, task: str, out_dir) -> list[Study]:
    """The studies of ``source`` (a folder or a .csv manifest) for ``task``, with absolute paths (a worker
    elsewhere starts in another folder); none is an error."""
    source = Path(source).absolute()
    if not source.exists():
        raise SpineAnalysisError(f"{source} not found: give a folder of studies or a CSV manifest")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise SpineAnalysisError(f"{source} is a file but not a CSV manifest: give a folder or a .csv manifest")
        studies = read_manifest(source)
    else:
        studies = discover_folder(source, task, skip=[out_dir])
    if not studies:
        kinds = "radiographs" if task == "cobb" else "CTs (NIfTI, NRRD, MHA or DICOM folders)"
        raise SpineAnalysisError(f"{source} holds no {kinds}")
    return studies


def _hash_ends(path: Path, digest) -> None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        digest.update(f.read(_HASHED_BYTES))
        if size > 2 * _HASHED_BYTES:
            f.seek(size - _HASHED_BYTES)
            digest.update(f.read())
        elif size > _HASHED_BYTES:
            digest.update(f.read())


def fingerprint(study: Study) -> str:
    """What says a study's input is unchanged: names, sizes, times and ends of its files (and of its
    centroid file); "missing" when the input is gone (the worker then says why)."""
    digest = hashlib.sha256()
    for given in (study.path, study.centroids):
        if not given:
            continue
        path = Path(given)
        if not path.exists():
            return "missing"
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            stat = file.stat()
            digest.update(f"{file.relative_to(path) if path.is_dir() else file.name}|{stat.st_size}|"
                          f"{stat.st_mtime_ns}\n".encode())
            if not path.is_dir() or file == files[0]:
                _hash_ends(file, digest)
    return digest.hexdigest()[:20]
