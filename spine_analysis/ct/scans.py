"""Labelled CT scans found on disk, the training data of both CT networks: per vertebra, a body
and a centrum label on a 1 mm LPS grid around it (``spine_analysis.ct.body_labels`` says how each
label is made).

A folder is searched recursively for three kinds of case:

- VerSe / TPTBox layout: ``<name>_ct.nii.gz`` with ``<name>_seg-vert_msk.nii.gz`` (VerSe
  numbering) and, when present, ``<name>_seg-subreg_msk.nii.gz`` (VerSe 2020 keeps masks under
  ``derivatives/``; the names still match). With sub-regions 49/50 the body and centrum come
  from them (manual); otherwise the body is derived from the vertebra mask.
- TotalSegmentator output: ``totalseg_vertebrae_pp_refined.nii.gz`` (vertebral bodies, VerSe
  numbering) beside its CT; the centrum is the body less its shell (predicted labels).
- TotalSegmentator v2 masks: ``mask.nii.gz`` with ``structures.csv`` naming ``vertebrae_<level>``
  beside a CT; bodies are derived from the whole vertebrae (predicted labels).

Vertebrae cut by the scan's edge, and bodies the rules do not trust, are left out and listed.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import SpineAnalysisError
from ..io.ct import read_ct
from .body_labels import body_from_vertebra, centrum_from_body
from .levels import VERSE_LEVEL_NAMES
from .patches import patch_grid, reaches_edge

#: Side of the 1 mm grid each vertebra's labels are kept on (x, y, z voxels).
LABEL_GRID_XYZ = (112, 112, 96)
_LEVEL_LABELS = {name: label for label, name in VERSE_LEVEL_NAMES.items()}


@dataclass
class VertebraLabels:
    """One vertebra's body and centrum (float32 0/1 images on a 1 mm LPS grid), its centre, and
    its own label (the whole vertebra, or the body where only bodies are labelled)."""

    level: str
    source: str
    body: sitk.Image
    centrum: sitk.Image
    centre_lps: np.ndarray
    own_label: sitk.Image
    cut_by_edge: bool = False


@dataclass
class Scan:
    """A CT (float32 HU) and its labelled vertebrae."""

    name: str
    ct: sitk.Image
    vertebrae: list[VertebraLabels] = field(default_factory=list)


def _on_grid(mask: sitk.Image, grid: sitk.Image, geometry: sitk.Image | None = None) -> np.ndarray:
    """A binary image on ``grid``, linearly interpolated and thresholded (smooth on a coarse scan);
    ``geometry`` gives ``mask`` its physical placement when it has none of its own."""
    if geometry is not None:
        mask.CopyInformation(geometry)
    resampled = sitk.Resample(sitk.Cast(mask, sitk.sitkFloat32), grid, sitk.Transform(),
                              sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled) > 0.5


def _as_image(values: np.ndarray, grid: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(values.astype(np.float32))
    image.CopyInformation(grid)
    return image


def _labelled_vertebrae(labels: sitk.Image, wanted: dict[int, str], kind: str,
                        subregions: sitk.Image | None, skipped: list[str], name: str,
                        keep_cut: bool = False) -> list[VertebraLabels]:
    """``kind`` is "vertebra" (whole-vertebra masks) or "body" (vertebral-body masks); with
    ``keep_cut`` vertebrae cut by the scan's edge are kept, marked ``cut_by_edge``."""
    labels = sitk.Cast(labels, sitk.sitkUInt16)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    found = []
    for label in sorted(set(stats.GetLabels()) & set(wanted)):
        level = wanted[label]
        grid = patch_grid(np.array(stats.GetCentroid(label)), LABEL_GRID_XYZ, 1.0)
        mask = _on_grid(labels == label, grid)
        if subregions is not None:
            sub = sitk.GetArrayFromImage(sitk.Resample(subregions, grid, sitk.Transform(),
                                                       sitk.sitkNearestNeighbor, 0))
            body, centrum = mask & np.isin(sub, (49, 50)), mask & (sub == 50)
            source = "manual sub-regions 49/50"
        elif kind == "body":
            body, source = mask, "body label, shell removed"
            centrum = centrum_from_body(body)
        else:
            body, source = body_from_vertebra(mask), "body derived from the vertebra label, shell removed"
            centrum = centrum_from_body(body) if body is not None else None
        if body is None or centrum.sum() < 1000:
            skipped.append(f"{name} {level}: no trustworthy body in its label")
            continue
        cut = reaches_edge(body, grid, labels)
        if cut and not keep_cut:
            skipped.append(f"{name} {level}: its body is cut by the scan's edge")
            continue
        centre_index = np.argwhere(body).mean(axis=0)[::-1]
        centre = np.array(grid.TransformContinuousIndexToPhysicalPoint([float(v) for v in centre_index]))
        found.append(VertebraLabels(level, source, _as_image(body, grid), _as_image(centrum, grid), centre,
                                    _as_image(mask, grid), cut))
    return found


def _ct_beside(folder: Path, exclude: set[Path]) -> Path | None:
    """The largest image beside a label file that is not itself a label (TotalSegmentator's own
    outputs start with "totalseg")."""
    candidates = [p for p in folder.glob("*.nii*") if p not in exclude and not p.name.startswith("totalseg")
                  and "seg" not in p.name.lower() and "mask" not in p.name.lower()]
    return max(candidates, key=lambda p: p.stat().st_size) if candidates else None


def find_scans(root) -> list[tuple[str, Path, dict]]:
    """Every labelled scan under ``root``: (name, CT path, how its labels are read)."""
    root = Path(root)
    if not root.is_dir():
        raise SpineAnalysisError(f"{root}: not a folder")
    found = []
    masks = {p.name: p for p in root.rglob("*seg-vert*msk.nii*")}
    subregs = {p.name: p for p in root.rglob("*seg-subreg*msk.nii*")}
    for ct_path in sorted(root.rglob("*_ct.nii*")):
        suffix = ct_path.name.split("_ct", 1)[1]
        stem = ct_path.name.split("_ct", 1)[0]
        head, _, tail = stem.partition("_")
        # sub-x_ct -> sub-x_seg-vert_msk; sub-ct_label-22_ct -> sub-ct_seg-vert_label-22_msk
        for prefix, rest in ((stem, ""), (head, "_" + tail if tail else "")):
            vert = masks.get(f"{prefix}_seg-vert{rest}_msk{suffix}")
            if vert is not None:
                sub = subregs.get(f"{prefix}_seg-subreg{rest}_msk{suffix}")
                found.append((stem, ct_path, {"vertebrae": vert, "subregions": sub}))
                break
    for bodies in sorted(root.rglob("totalseg_vertebrae_pp_refined.nii*")):
        ct_path = _ct_beside(bodies.parent, {bodies})
        if ct_path is not None:
            found.append((bodies.parent.name, ct_path, {"bodies": bodies}))
    for structures in sorted(root.rglob("structures.csv")):
        mask = structures.parent / "mask.nii.gz"
        ct_path = _ct_beside(structures.parent, {mask})
        if mask.exists() and ct_path is not None:
            found.append((structures.parent.name, ct_path, {"totalseg_v2": mask, "structures": structures}))
    return found


def _totalseg_v2_levels(structures: Path) -> dict[int, str]:
    with open(structures, newline="") as handle:
        rows = list(csv.DictReader(handle))
    levels = {}
    for row in rows:
        name = row.get("structure", "")
        if name.startswith("vertebrae_") and name[len("vertebrae_"):] in _LEVEL_LABELS:
            levels[int(row["id"])] = name[len("vertebrae_"):]
    return levels


def load_scan(name: str, ct_path: Path, sources: dict, skipped: list[str], keep_cut: bool = False) -> Scan:
    """Read one scan found by ``find_scans`` and make its vertebrae's labels (``keep_cut``: see
    ``load_scans``)."""
    ct = sitk.Cast(read_ct(ct_path), sitk.sitkFloat32)
    if "vertebrae" in sources:
        labels = sitk.ReadImage(str(sources["vertebrae"]))
        sub = sitk.ReadImage(str(sources["subregions"])) if sources.get("subregions") else None
        vertebrae = _labelled_vertebrae(labels, VERSE_LEVEL_NAMES, "vertebra", None, skipped, name, keep_cut)
        if sub is not None:   # sub-regions cover some vertebrae only: those get the manual labels
            manual = _labelled_vertebrae(labels, VERSE_LEVEL_NAMES, "vertebra", sub, [], name)
            by_level = {v.level: v for v in manual if v.source.startswith("manual")}
            vertebrae = [by_level.get(v.level, v) for v in vertebrae]
    elif "bodies" in sources:
        vertebrae = _labelled_vertebrae(sitk.ReadImage(str(sources["bodies"])), VERSE_LEVEL_NAMES,
                                        "body", None, skipped, name, keep_cut)
    else:
        levels = _totalseg_v2_levels(sources["structures"])
        vertebrae = _labelled_vertebrae(sitk.ReadImage(str(sources["totalseg_v2"])), levels,
                                        "vertebra", None, skipped, name, keep_cut)
    return Scan(name, ct, vertebrae)


def load_scans(root, log=print, keep_cut: bool = False) -> list[Scan]:
    """Every labelled scan under ``root`` with at least one usable vertebra. With ``keep_cut``
    vertebrae cut by the scan's edge are kept (marked ``cut_by_edge``): a network that labels every
    body in view must not learn a cut one as background."""
    scans, skipped = [], []
    for name, ct_path, sources in find_scans(root):
        scan = load_scan(name, ct_path, sources, skipped, keep_cut)
        if scan.vertebrae:
            scans.append(scan)
            log(f"{name}: "
                f"{', '.join(v.level + (' (cut by the edge)' if v.cut_by_edge else '') for v in scan.vertebrae)}")
    for reason in skipped:
        log(f"left out: {reason}")
    if not scans:
        raise SpineAnalysisError(f"{root} holds no CT with usable vertebra labels "
                                 "(VerSe layout, TotalSegmentator bodies or masks)")
    return scans
