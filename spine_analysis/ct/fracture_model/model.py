"""The fracture network and its input: one channel of clipped, scaled HU at 1 mm.

Three output classes per voxel: background, normal vertebral body, fractured vertebral body.
A fixed HU scaling replaces the paper's per-image z-score, so that a scan's field of view
(how much air or soft tissue it holds) does not change what the network sees.
"""
from __future__ import annotations

import numpy as np

from ...ml.unet import ConfiguredUNet
from .config import FractureConfig

BACKGROUND, NORMAL, FRACTURED = 0, 1, 2


class FractureNet(ConfiguredUNet):
    """The fracture U-Net (``FractureConfig``): scaled HU in, the three classes out."""

    in_channels, out_channels = 1, 3


def network_input(hu: np.ndarray, config: FractureConfig) -> np.ndarray:
    """The (1, z, y, x) input: HU clipped to the window and scaled."""
    low, high = config.hu_window
    return (np.clip(hu, low, high).astype(np.float32) / config.hu_scale)[None]
