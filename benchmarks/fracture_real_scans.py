"""Fracture detection's vertebrae and heights on the real ct-spine scans, against their labels.

    python benchmarks/fracture_real_scans.py --found [--data DIR]
    python benchmarks/fracture_real_scans.py --heights [--data DIR]

``--found``: every scan without centroids, as ``spine-analysis fracture CT`` assesses it: the
classifier's vertebrae along the spine (``ct.spine_chain``). Printed: each found vertebra's distance to
the nearest labelled body centroid (``levels.centroids_from_label_map``; a DICOM folder has no labels:
its found vertebrae are listed with their position), and how many body-like parts were left off the
spine.

``--heights``: every labelled vertebra measured twice at its label's body centroid, once from its
label (``--labels``) and once from the body network (centroids, or found), each reduced the same way
(``fracture_heights.body_for_heights``). Printed: both anterior / middle / posterior heights and their
differences, and per height the mean difference (label - network), mean absolute difference, and how
many vertebrae agree within 1 mm. Vertebrae cut by the scan's edge are left out. Little data (see the
ct-spine README): indicative only.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from spine_analysis.ct.fracture_heights import measure_heights
from spine_analysis.ct.fracture_model.inference import fracture_probabilities
from spine_analysis.ct.levels import VERSE_LEVEL_NAMES, centroids_from_label_map
from spine_analysis.ct.scans import _totalseg_v2_levels, find_scans
from spine_analysis.ct.spine_chain import find_vertebrae
from spine_analysis.ct.study import load_ct_model
from spine_analysis.datasets import ct_dir
from spine_analysis.io.ct import read_ct


def verse_labels(sources: dict) -> sitk.Image:
    """The scan's vertebra labels in VerSe numbering, whatever labels it came with (``scans.find_scans``)."""
    if "vertebrae" in sources:
        return sitk.ReadImage(str(sources["vertebrae"]))
    if "bodies" in sources:
        return sitk.ReadImage(str(sources["bodies"]))
    labels = sitk.ReadImage(str(sources["totalseg_v2"]))
    numbers = {name: number for number, name in VERSE_LEVEL_NAMES.items()}
    values = sitk.GetArrayFromImage(labels)
    verse = np.zeros(values.shape, np.uint16)
    for value, level in _totalseg_v2_levels(sources["structures"]).items():
        verse[values == value] = numbers[level]
    image = sitk.GetImageFromArray(verse)
    image.CopyInformation(labels)
    return image


def scans(root: Path) -> list[tuple[str, Path, sitk.Image | None]]:
    """(name, CT path, VerSe labels or None) of every labelled scan under ``root``, and every folder of DICOM
    slices in it (no labels)."""
    found = [(name, ct_path, verse_labels(sources)) for name, ct_path, sources in find_scans(root)]
    folders = sorted({p.parent for p in root.rglob("*.dcm")})
    return found + [(folder.name, folder, None) for folder in folders]


def found_report(root: Path) -> None:
    model = load_ct_model("fracture").network
    for name, ct_path, labels in scans(root):
        ct = read_ct(ct_path)
        found = find_vertebrae(fracture_probabilities(ct, model), model.config)
        reference = centroids_from_label_map(labels)[0] if labels is not None else []
        print(f"{name}: {len(found.centroids)} found, {len(found.off_spine)} body-like parts off the spine; "
              f"{len(reference)} labelled ({', '.join(c.level for c in reference) or 'no labels'})")
        for vertebra in found.centroids:
            where = ", ".join(f"{v:.1f}" for v in vertebra.lps)
            if reference:
                distances = [float(np.linalg.norm(vertebra.lps - c.lps)) for c in reference]
                k = int(np.argmin(distances))
                print(f"  {vertebra.level:<12} ({where}) LPS mm: {distances[k]:5.1f} mm from {reference[k].level}")
            else:
                print(f"  {vertebra.level:<12} ({where}) LPS mm")
        sys.stdout.flush()


def heights_report(root: Path) -> None:
    body_model = load_ct_model("body").network
    config = load_ct_model("fracture").network.config
    differences = []
    for name, ct_path, labels in scans(root):
        if labels is None:
            continue
        ct = read_ct(ct_path)
        centroids, values = centroids_from_label_map(labels)
        from_labels = measure_heights(ct, centroids, labels, values, body_model, config, lambda f, m: None)
        from_network = measure_heights(ct, centroids, None, [0] * len(values), body_model, config,
                                       lambda f, m: None)
        for centroid, (by_label, note), (by_network, other) in zip(centroids, from_labels, from_network):
            if by_label is None or by_network is None:
                print(f"{name:<22} {centroid.level:<4} left out: {note or other}")
                continue
            difference = np.subtract(by_label, by_network)
            differences.append(difference)
            print(f"{name:<22} {centroid.level:<4} label {_mm(by_label)}  network {_mm(by_network)}  "
                  f"difference {_mm(difference)}")
        sys.stdout.flush()
    table = np.array(differences)
    within = np.abs(table) <= 1.0
    print(f"{len(table)} vertebrae, label - network (anterior / middle / posterior): mean {_mm(table.mean(axis=0))}, "
          f"mean absolute {_mm(np.abs(table).mean(axis=0))}, within 1 mm {'/'.join(str(n) for n in within.sum(axis=0))}"
          f", all three within 1 mm {int(within.all(axis=1).sum())}")


def _mm(values) -> str:
    return " / ".join(f"{v:5.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ct_dir(), help="the ct-spine folder")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--found", action="store_true", help="vertebrae found without centroids vs the labels")
    what.add_argument("--heights", action="store_true", help="heights from the labels vs from the body network")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no ct-spine folder at {args.data}: give --data or set SPINE_CT_DIR")
    found_report(args.data) if args.found else heights_report(args.data)


if __name__ == "__main__":
    main()
