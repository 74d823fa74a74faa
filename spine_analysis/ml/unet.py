"""The 3D U-Net both CT networks are: MONAI's ``UNet`` built from a network's config.

One wrapper, so the body and fracture networks differ only in their channels; the U-Net sits
under ``unet.``, the keys their shipped weights were saved with.
"""
from __future__ import annotations

import torch
from monai.networks.nets import UNet
from torch import nn


class ConfiguredUNet(nn.Module):
    """MONAI's 3D U-Net of ``config.channels``, ``strides`` and ``res_units``, keeping ``config``
    for inference; a subclass names its ``in_channels`` and ``out_channels``."""

    in_channels: int
    out_channels: int

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.unet = UNet(spatial_dims=3, in_channels=self.in_channels, out_channels=self.out_channels,
                         channels=config.channels, strides=config.strides, num_res_units=config.res_units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet(x)
