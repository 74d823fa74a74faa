"""The fracture network and its input: one channel of clipped, scaled HU at 1 mm.

Three output classes per voxel: background, normal vertebral body, fractured vertebral body.
A fixed HU scaling replaces the paper's per-image z-score, so that a scan's field of view
(how much air or soft tissue it holds) does not change what the network sees.
"""
from __future__ import annotations

import numpy as np
import torch
from monai.networks.nets import UNet
from torch import nn

from .config import FractureConfig

BACKGROUND, NORMAL, FRACTURED = 0, 1, 2


class FractureNet(nn.Module):
    """MONAI's 3D U-Net (1 input channel, 3 classes) with its config."""

    def __init__(self, config: FractureConfig):
        super().__init__()
        self.config = config
        self.unet = UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=config.channels,
                         strides=config.strides, num_res_units=config.res_units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(x)


def network_input(hu: np.ndarray, config: FractureConfig) -> np.ndarray:
    """The (1, z, y, x) input: HU clipped to the window and scaled."""
    low, high = config.hu_window
    return (np.clip(hu, low, high).astype(np.float32) / config.hu_scale)[None]
