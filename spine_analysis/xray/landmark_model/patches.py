"""Patch sampling for the cascade: oriented, scaled, optionally mirrored crops in one call.

Every patch is described by its centre and two step vectors (one output pixel to the right,
one down) in source-image pixels, so axis-aligned crops (centre step), crops aligned with
the spine's local axis (corner step) and horizontal flips (augmentation) are one operation:
bilinear ``torch.nn.functional.grid_sample`` over a padded batch of images.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


#: Corner order after a horizontal flip: left and right swap (TL, TR, BL, BR -> TR, TL, BR, BL).
FLIP_CORNERS = [1, 0, 3, 2]


def mirror_points(points: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Mirror x about each image's vertical mid-line: x -> width - 1 - x.

    ``points`` (B, ..., 2); ``widths`` (B,) image widths in the same pixels.
    """
    out = points.clone()
    shape = (-1,) + (1,) * (points.dim() - 2)
    out[..., 0] = widths.reshape(shape).to(points.dtype) - 1 - points[..., 0]
    return out


def sample_patches(images: torch.Tensor, centres: torch.Tensor, right: torch.Tensor,
                   down: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """Crop ``n`` patches from each of ``B`` images.

    images: (B, 1, H, W); centres, right, down: (B, n, 2) in source pixels (x, y), where
    ``right``/``down`` are the source displacement of one output pixel along the patch's
    columns/rows. Returns (B, n, rows, cols). Outside the image the patch is 0 (black).
    """
    b, n, _ = centres.shape
    rows, cols = out_size
    dtype = images.dtype
    ii = torch.arange(rows, dtype=dtype) - (rows - 1) / 2
    jj = torch.arange(cols, dtype=dtype) - (cols - 1) / 2
    # (B, n, rows, cols, 2) source positions
    pos = (centres[:, :, None, None, :]
           + jj[None, None, None, :, None] * right[:, :, None, None, :]
           + ii[None, None, :, None, None] * down[:, :, None, None, :])
    h, w = images.shape[-2:]
    grid = torch.empty_like(pos)
    grid[..., 0] = (pos[..., 0] + 0.5) * (2.0 / w) - 1.0
    grid[..., 1] = (pos[..., 1] + 0.5) * (2.0 / h) - 1.0
    sampled = F.grid_sample(images, grid.reshape(b, n * rows, cols, 2), mode="bilinear",
                            padding_mode="zeros", align_corners=False)
    return sampled.reshape(b, n, rows, cols)
