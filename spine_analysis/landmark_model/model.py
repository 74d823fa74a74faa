"""The two-step landmark model: 17 vertebra centres, then the 4 corners of each vertebra.

Step 1 finds the centres on the whole radiograph (at a quarter of the working resolution)
as one heatmap per level; step 2 crops a region around each found centre, aligned with the
spine's local axis and scaled by the local vertebra spacing, and finds its 4 corners as
heatmaps; step 2 runs in stages, each re-cropping around the centre of the corners the
previous stage found. Both steps are held to a PCA shape model of the training spines:
a point whose heatmap is weak or that strays from the shape the others imply is replaced
by the shape model's estimate (the shape constraint of Wang et al.).

Networks are MONAI ``BasicUNet``s. Coordinates: working pixels (x, y) of the preprocessed
image (see ``preprocess``); corner-step "local units": 100 = one vertebra spacing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet
from torch import nn

from .patches import mirror_points, sample_patches

LOCAL_UNIT = 100.0


@dataclass(frozen=True)
class LandmarkConfig:
    """Everything that fixes network shapes and geometry; stored beside the weights."""

    working_height: int = 1024
    n_vertebrae: int = 17
    centre_downsample: int = 4            # step 1 sees the working image at 1/4 scale
    centre_features: tuple[int, ...] = (16, 16, 32, 64, 128, 16)
    centre_sigma: float = 2.0             # heatmap Gaussian, step-1 pixels
    roi_spacings: float = 2.0             # step-2 region side, in vertebra spacings
    roi_size: int = 64                    # step-2 region, pixels
    corner_features: tuple[int, ...] = (16, 16, 32, 64, 128, 16)
    corner_sigma: float = 2.0             # heatmap Gaussian, step-2 pixels
    corner_stages: int = 2
    centre_modes: int = 12                # PCA modes of the centre shape model
    corner_modes: int = 6                 # PCA modes of the corner shape model
    min_confidence: float = 0.25          # weaker heatmap peaks are replaced by the shape model
    max_shape_deviation: float = 0.5      # in spacings; farther points are replaced too

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LandmarkConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def local_frames(centres: torch.Tensor):
    """Per vertebra unit "right" and "down" axes along the spine and the local spacing.

    ``centres`` (B, n, 2) top to bottom. "down" follows the centre line (central
    differences, one-sided at the ends); "right" is perpendicular to it (+x on an upright
    spine). Spacing is the mean distance to the neighbouring centres.
    """
    tangent = torch.empty_like(centres)
    tangent[:, 1:-1] = centres[:, 2:] - centres[:, :-2]
    tangent[:, 0] = centres[:, 1] - centres[:, 0]
    tangent[:, -1] = centres[:, -1] - centres[:, -2]
    down = tangent / tangent.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    right = torch.stack([down[..., 1], -down[..., 0]], dim=-1)
    gaps = (centres[:, 1:] - centres[:, :-1]).norm(dim=-1)
    spacing = torch.empty(centres.shape[:2], dtype=centres.dtype)
    spacing[:, 1:-1] = (gaps[:, 1:] + gaps[:, :-1]) / 2
    spacing[:, 0] = gaps[:, 0]
    spacing[:, -1] = gaps[:, -1]
    return right, down, spacing.clamp_min(1.0)


def to_local(points, centres, right, down, spacing):
    """Working pixels (B, n, k, 2) -> local units in each vertebra's frame."""
    d = points - centres[:, :, None]
    scale = (LOCAL_UNIT / spacing)[:, :, None]
    return torch.stack([(d * right[:, :, None]).sum(-1) * scale,
                        (d * down[:, :, None]).sum(-1) * scale], dim=-1)


def from_local(local, centres, right, down, spacing):
    """Inverse of ``to_local``."""
    scale = (spacing / LOCAL_UNIT)[:, :, None, None]
    return (centres[:, :, None]
            + scale * (local[..., :1] * right[:, :, None] + local[..., 1:] * down[:, :, None]))


def decode_heatmaps(heatmaps: torch.Tensor, window: int = 2):
    """Peak of each channel with sub-pixel refinement: (…, 2) as (x, y) and the peak value.

    The refinement is the centroid of the positive values in a (2w+1)² window around the
    maximum, so the result is not tied to the pixel grid.
    """
    *lead, h, w = heatmaps.shape
    flat = heatmaps.reshape(-1, h, w)
    peak, index = flat.reshape(len(flat), -1).max(dim=1)
    py, px = index // w, index % w
    offsets = torch.arange(-window, window + 1)
    ys = (py[:, None] + offsets).clamp(0, h - 1)
    xs = (px[:, None] + offsets).clamp(0, w - 1)
    patch = flat[torch.arange(len(flat))[:, None, None], ys[:, :, None], xs[:, None, :]].clamp_min(0)
    total = patch.sum(dim=(1, 2)).clamp_min(1e-6)
    x = (patch.sum(dim=1) * xs).sum(dim=1) / total
    y = (patch.sum(dim=2) * ys).sum(dim=1) / total
    return torch.stack([x, y], dim=-1).reshape(*lead, 2), peak.reshape(lead)


def gaussian_heatmaps(points: torch.Tensor, size: tuple[int, int], sigma: float) -> torch.Tensor:
    """Training targets: one Gaussian (peak 1) per point; points (B, k, 2) -> (B, k, h, w)."""
    h, w = size
    ys = torch.arange(h, dtype=points.dtype)[None, None, :, None]
    xs = torch.arange(w, dtype=points.dtype)[None, None, None, :]
    d2 = (xs - points[..., 0, None, None]) ** 2 + (ys - points[..., 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma ** 2))


class ShapeModel(nn.Module):
    """PCA model of a point set (mean + modes), used to fill in or correct doubtful points."""

    def __init__(self, n_values: int, n_modes: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_values))
        self.register_buffer("modes", torch.zeros(n_modes, n_values))
        self.register_buffer("spread", torch.ones(n_modes))

    def fit(self, shapes: torch.Tensor):
        """``shapes`` (N, n_values): the PCA of the training shapes."""
        mean = shapes.mean(dim=0)
        _, s, vt = torch.linalg.svd((shapes - mean).double(), full_matrices=False)
        k = self.modes.shape[0]
        self.mean.copy_(mean)
        self.modes.copy_(vt[:k].float())
        self.spread.copy_((s[:k] / (len(shapes) - 1) ** 0.5).float().clamp_min(1e-6))

    def reconstruct(self, shapes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Weighted least-squares fit of the model to (B, n_values) with per-value weights;
        coefficients are kept within 3 standard deviations (a plausible shape)."""
        a = self.modes.T[None] * weights[..., None]                      # (B, P, K)
        rhs = ((shapes - self.mean) * weights)[..., None]
        ridge = torch.diag_embed(1e-3 / self.spread ** 2).expand(len(shapes), -1, -1)
        coef = torch.linalg.solve(a.transpose(1, 2) @ a + ridge, a.transpose(1, 2) @ rhs)[..., 0]
        coef = torch.maximum(torch.minimum(coef, 3 * self.spread), -3 * self.spread)
        return self.mean + coef @ self.modes


def _unet(out_channels: int, features) -> BasicUNet:
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=out_channels,
                     features=tuple(features))


class LandmarkModel(nn.Module):
    """Networks and shape models of both steps; tensors in, tensors out, no file I/O."""

    def __init__(self, config: LandmarkConfig):
        super().__init__()
        self.config = config
        c = config
        self.centre_net = _unet(c.n_vertebrae, c.centre_features)
        self.corner_net = _unet(4, c.corner_features)
        self.centre_shape = ShapeModel(2 * c.n_vertebrae, c.centre_modes)
        self.corner_shape = ShapeModel(8, c.corner_modes)

    # -- step 1 ---------------------------------------------------------------------------
    def centre_input(self, images: torch.Tensor) -> torch.Tensor:
        """Working images (B, 1, H, W) -> step-1 input at 1/``centre_downsample`` scale."""
        k = self.config.centre_downsample
        return F.avg_pool2d(images, k, ceil_mode=True)

    def find_centres(self, images: torch.Tensor, widths: torch.Tensor):
        """Centres (B, n, 2) in working pixels and their heatmap confidence (B, n)."""
        k = self.config.centre_downsample
        small = self.centre_input(images)
        points, peak = decode_heatmaps(self.centre_net(_pad16(small))[..., :small.shape[-2], :small.shape[-1]])
        centres = (points + 0.5) * k - 0.5
        return self.constrain_centres(centres, peak, widths), peak

    def constrain_centres(self, centres, confidence, widths):
        """Replace weak or implausible centres by the shape model's estimate."""
        c = self.config
        b, n, _ = centres.shape
        scale = widths.to(centres.dtype)[:, None, None]          # shape model in units of width
        flat = (centres / scale).reshape(b, -1)
        trusted = (confidence >= c.min_confidence).to(centres.dtype)
        weights = trusted.repeat_interleave(2, dim=1)
        model = self.centre_shape.reconstruct(flat, weights).reshape(b, n, 2) * scale
        _, _, spacing = local_frames(model)
        stray = (centres - model).norm(dim=-1) > c.max_shape_deviation * spacing
        keep = (trusted > 0) & ~stray
        return torch.where(keep[..., None], centres, model)

    # -- step 2 ---------------------------------------------------------------------------
    def roi_geometry(self, centres: torch.Tensor):
        """Per vertebra the ROI centre and the source step of one ROI pixel along its axes."""
        right, down, spacing = local_frames(centres)
        step = (self.config.roi_spacings * spacing / self.config.roi_size)[..., None]
        return right * step, down * step

    def crop_rois(self, images, centres, flipped, widths):
        """(B, n, roi, roi) regions around every centre, aligned with the local spine axis."""
        right, down = self.roi_geometry(centres)
        src_c, src_r, src_d = centres, right, down
        if bool(flipped.any()):
            mask = flipped[:, None, None]
            mirror = torch.tensor([-1.0, 1.0], dtype=centres.dtype)
            src_c = torch.where(mask, mirror_points(centres, widths), centres)
            src_r = torch.where(mask, right * mirror, right)
            src_d = torch.where(mask, down * mirror, down)
        size = self.config.roi_size
        return sample_patches(images, src_c, src_r, src_d, (size, size))

    def roi_to_image(self, points_roi, centres):
        """ROI pixel coordinates (B, n, k, 2) -> working pixels, given the ROI centres."""
        right, down = self.roi_geometry(centres)
        half = (self.config.roi_size - 1) / 2
        d = points_roi - half
        return centres[:, :, None] + d[..., :1] * right[:, :, None] + d[..., 1:] * down[:, :, None]

    def find_corners(self, images, centres, flipped, widths):
        """Corners (B, n, 4, 2) around the given centres, after ``corner_stages`` stages."""
        c = self.config
        b, n, _ = centres.shape
        for _ in range(c.corner_stages):
            rois = self.crop_rois(images, centres, flipped, widths)
            heat = self.corner_net(rois.reshape(b * n, 1, c.roi_size, c.roi_size))
            points, peak = decode_heatmaps(heat)
            corners = self.roi_to_image(points.reshape(b, n, 4, 2), centres)
            corners = self.constrain_corners(corners, peak.reshape(b, n, 4), centres)
            centres = corners.mean(dim=2)
        return corners

    def constrain_corners(self, corners, confidence, centres):
        """Replace weak or implausible corners by the per-vertebra shape model's estimate."""
        c = self.config
        b, n = corners.shape[:2]
        frames = (centres, *local_frames(centres))
        local = to_local(corners, *frames).reshape(b * n, 8)
        trusted = (confidence >= c.min_confidence).reshape(b * n, 4).to(corners.dtype)
        model = self.corner_shape.reconstruct(local, trusted.repeat_interleave(2, dim=1))
        stray = (local - model).reshape(-1, 4, 2).norm(dim=-1) > c.max_shape_deviation * LOCAL_UNIT
        keep = ((trusted > 0) & ~stray).reshape(b * n, 4, 1)
        fixed = torch.where(keep, local.reshape(-1, 4, 2), model.reshape(-1, 4, 2))
        return from_local(fixed.reshape(b, n, 4, 2), *frames)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, widths: torch.Tensor, flipped: torch.Tensor):
        """Corners (B, n, 4, 2) in working pixels of sample space (mirrored if ``flipped``)."""
        view = torch.where(flipped[:, None, None, None], _mirror_images(images, widths), images)
        centres, _ = self.find_centres(view, widths)
        return self.find_corners(images, centres, flipped, widths)


def _pad16(x: torch.Tensor) -> torch.Tensor:
    """Pad height and width up to a multiple of 16 (the U-Net halves them four times)."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % 16, 0, (-h) % 16))


def _mirror_images(images: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Mirror each image within its own width (images are left-aligned on a padded canvas)."""
    out = torch.zeros_like(images)
    for i, w in enumerate(widths.long().tolist()):
        out[i, ..., :w] = images[i, ..., :w].flip(-1)
    return out
