"""The fracture network over a whole CT: body and fractured-body probabilities on a 1 mm grid.

``spine_analysis.ct.fracture`` turns them into calls per vertebra and patient. The network's
module and MONAI are imported when the network runs, so reusing maps never loads them.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from ..patches import OUTSIDE_HU, ct_grid, sample_patch
from .config import FractureConfig

#: The written probability map's resolution (probabilities are read to two decimals).
MAP_STEP = 0.001

#: ``progress(fraction, message)``: told how far a run is.
Progress = Callable[[float, str], None]


def quiet(fraction: float, message: str) -> None:
    """The default progress callback: says nothing."""


@dataclass
class ProbabilityMaps:
    """The classifier's output on its 1 mm grid: vertebral body and fractured body probabilities."""

    grid: sitk.Image
    body: np.ndarray
    fractured: np.ndarray
    seconds: float
    bone: np.ndarray | None = None    # voxels above ``FractureConfig.min_bone_hu``; None: not known (all count)

    def fractured_on(self, ct: sitk.Image) -> sitk.Image:
        """The fractured-body probability resampled onto the CT's own grid (float32, 0 outside), rounded to
        ``MAP_STEP``: a float's last digits are noise that does not compress (a 512 x 512 x 300 map was
        287 MB and took 12 s to write; 18 MB rounded)."""
        source = sitk.GetImageFromArray(self.fractured.astype(np.float32))
        source.CopyInformation(self.grid)
        reference = sitk.Image(ct.GetSize(), sitk.sitkUInt8)
        reference.CopyInformation(ct)
        resampled = sitk.Resample(source, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        return sitk.Cast(sitk.Round(resampled / MAP_STEP) * MAP_STEP, sitk.sitkFloat32)


def fracture_probabilities(ct: sitk.Image, model, progress: Progress = quiet) -> ProbabilityMaps:
    """The classifier over the whole CT at 1 mm: body and fractured-body probability maps."""
    from ...ml.inference import sliding_window
    from .model import FRACTURED, NORMAL, network_input

    config: FractureConfig = model.config
    started = time.perf_counter()
    grid = ct_grid(ct, config.spacing_mm)
    progress(0.05, "resampling the CT to 1 mm")
    hu = sample_patch(ct, grid, outside=OUTSIDE_HU)
    inputs = torch.from_numpy(network_input(hu, config)[None])
    bone = hu > config.min_bone_hu
    del hu
    progress(0.1, "classifying voxels")
    logits = sliding_window(inputs, model, tuple(reversed(config.window_xyz)), overlap=config.overlap)
    probs = torch.softmax(logits[0], dim=0).numpy()
    progress(0.7, "voxels classified")
    return ProbabilityMaps(grid, probs[NORMAL] + probs[FRACTURED], probs[FRACTURED].copy(),
                           time.perf_counter() - started, bone)
