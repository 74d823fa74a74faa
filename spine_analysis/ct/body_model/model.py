"""The body network and its input: CT patch in HU plus a seed channel.

Three output classes: background, the body's shell (cortex and endplates) and the centrum;
the body is shell plus centrum. The second input channel, a Gaussian blob at the click, tells
the network which vertebra is meant, so a click off the body's centre or near a patch edge
still selects the right one.
"""
from __future__ import annotations

import numpy as np

from ...ml.unet import ConfiguredUNet
from .config import BodyConfig

BACKGROUND, SHELL, CENTRUM = 0, 1, 2


class BodyNet(ConfiguredUNet):
    """The body U-Net (``BodyConfig``): HU and the seed channel in, the three classes out."""

    in_channels, out_channels = 2, 3


def seed_channel(shape_zyx, seed_zyx, sigma_vox: float) -> np.ndarray:
    """A Gaussian of peak 1 at voxel ``seed_zyx`` (may be fractional) on a grid of ``shape_zyx``."""
    axes = [np.exp(-0.5 * ((np.arange(n) - c) / sigma_vox) ** 2) for n, c in zip(shape_zyx, seed_zyx)]
    return (axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]).astype(np.float32)


def network_input(hu: np.ndarray, seed_zyx, config: BodyConfig) -> np.ndarray:
    """The (2, z, y, x) input: clipped, scaled HU and the seed channel."""
    low, high = config.hu_window
    scaled = np.clip(hu, low, high).astype(np.float32) / config.hu_scale
    return np.stack([scaled, seed_channel(hu.shape, seed_zyx, config.seed_sigma_mm / config.spacing_mm)])
