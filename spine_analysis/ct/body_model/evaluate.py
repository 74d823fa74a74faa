"""Scoring body segmentations against the labels of ``data``: Dice of the centrum on the CT's
own grid, for the network and the classical method side by side."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ...errors import SpineAnalysisError
from ..patches import patch_to_scan
from ..vertebral_body import segment_vertebral_body
from .data import Scan, VertebraLabels


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean arrays (1 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total


def on_scan(label: sitk.Image, scan: Scan) -> np.ndarray:
    """A vertebra's 1 mm label (``VertebraLabels.body`` or ``.centrum``) on the scan's grid."""
    return patch_to_scan(sitk.GetArrayViewFromImage(label), label, scan.ct)


def centrum_dice(scan: Scan, vertebra: VertebraLabels, method: str, model=None, seed_lps=None) -> float:
    """Dice of the centrum segmented from ``seed_lps`` (default: the body's centre); 0 when the
    method refuses the seed."""
    seed = vertebra.centre_lps if seed_lps is None else seed_lps
    try:
        result = segment_vertebral_body(scan.ct, seed, "lps", method, model)
    except SpineAnalysisError:
        return 0.0
    return dice(result.centrum, on_scan(vertebra.centrum, scan))


def evaluate_scan(scan: Scan, model) -> list[dict]:
    """One row per labelled vertebra: its level, label source and both methods' Dice."""
    return [{"scan": scan.name, "level": v.level, "labels": v.source,
             "dice_unet": centrum_dice(scan, v, "unet", model),
             "dice_classical": centrum_dice(scan, v, "classical")} for v in scan.vertebrae]
