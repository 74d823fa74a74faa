"""Radiograph preprocessing shared by training and inference: window, resize, CLAHE.

Every radiograph is brought to a fixed working height (aspect kept), so sizes in the cascade
are expressed in working pixels whatever the detector's resolution. A radiograph of four working
heights or more is first reduced by whole blocks, so time and memory follow the working size,
not the file's.
"""
from __future__ import annotations

import numpy as np
from skimage.exposure import equalize_adapthist
from skimage.transform import downscale_local_mean, resize

from .config import LandmarkConfig


def block_factor(rows: int, working_height: int) -> int:
    """Side of the pixel blocks averaged before the resize: the largest that keeps at least
    twice the working height (1 below four working heights: such images are resized as they are)."""
    return max(1, rows // (2 * working_height))


def working_scale(image_shape: tuple[int, int], working_height: int) -> float:
    """Factor from original pixels to working pixels.

    The rows a block reduction leaves over at the bottom (fewer than a block) are cut off, not
    stretched in, so the factor is that of the rows kept."""
    k = block_factor(image_shape[0], working_height)
    return working_height / float(image_shape[0] // k * k)


def to_working_image(pixels: np.ndarray, config: LandmarkConfig) -> np.ndarray:
    """A radiograph (rows, cols) windowed to ``config.window_percentiles``, resized to
    ``config.working_height`` rows and contrast-enhanced (CLAHE): float32 in [0, 1].

    Windowing by percentiles makes 8-bit, 16-bit and DICOM radiographs comparable; CLAHE
    (skimage) is the paper's contrast enhancement.
    """
    working_height = config.working_height
    pixels = np.asarray(pixels, dtype=np.float32)
    k = block_factor(pixels.shape[0], working_height)
    if k > 1:   # a view of whole blocks: no full-size copy
        pixels = downscale_local_mean(pixels[:pixels.shape[0] // k * k, :pixels.shape[1] // k * k], (k, k))
    lo, hi = np.percentile(pixels, config.window_percentiles)
    if hi <= lo:
        hi = lo + 1.0
    scaled = np.clip((pixels - lo) / (hi - lo), 0.0, 1.0)
    scale = working_scale(pixels.shape, working_height)
    width = max(1, int(round(pixels.shape[1] * scale)))
    small = resize(scaled, (working_height, width), order=1, anti_aliasing=scale < 1,
                   preserve_range=True)
    return equalize_adapthist(small, clip_limit=config.clahe_clip_limit).astype(np.float32)
