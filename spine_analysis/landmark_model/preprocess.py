"""Radiograph preprocessing shared by training and inference: window, resize, CLAHE.

Every radiograph is brought to a fixed working height (aspect kept), so sizes in the cascade
are expressed in working pixels whatever the detector's resolution.
"""
from __future__ import annotations

import numpy as np
from skimage.exposure import equalize_adapthist
from skimage.transform import resize


def working_scale(image_shape: tuple[int, int], working_height: int) -> float:
    """Factor from original pixels to working pixels."""
    return working_height / float(image_shape[0])


def to_working_image(pixels: np.ndarray, working_height: int) -> np.ndarray:
    """Window to the 0.5–99.5 percentiles, resize to ``working_height`` rows, apply CLAHE.

    Returns float32 in [0, 1]. Windowing by percentiles makes 8-bit, 16-bit and DICOM
    radiographs comparable; CLAHE (skimage) is the paper's contrast enhancement.
    """
    pixels = np.asarray(pixels, dtype=np.float32)
    lo, hi = np.percentile(pixels, (0.5, 99.5))
    if hi <= lo:
        hi = lo + 1.0
    scaled = np.clip((pixels - lo) / (hi - lo), 0.0, 1.0)
    scale = working_scale(pixels.shape, working_height)
    width = max(1, int(round(pixels.shape[1] * scale)))
    small = resize(scaled, (working_height, width), order=1, anti_aliasing=scale < 1,
                   preserve_range=True)
    return equalize_adapthist(small, clip_limit=0.01).astype(np.float32)
