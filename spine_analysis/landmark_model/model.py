"""The two-step landmark model: 17 vertebra centres, then the 4 corners of each vertebra.

Step 1 finds vertebra centres on the whole radiograph (at a quarter of the working
resolution) as one heatmap; its peaks are given their levels T1–L5 by a dynamic programme
that follows the spine from peak to peak with the spacing the mean training spine expects
(a level per channel does not train on a CPU budget: telling T5 from T6 needs the whole
column, which a local detector plus this ordering step supplies); step 2 crops a region around each found centre, aligned with the
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

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet
from torch import nn

from .patches import FLIP_CORNERS, mirror_points, sample_patches

LOCAL_UNIT = 100.0


@dataclass(frozen=True)
class LandmarkConfig:
    """Everything that fixes network shapes and geometry; stored beside the weights."""

    working_height: int = 1024
    n_vertebrae: int = 17
    centre_downsample: int = 4            # step 1 sees the working image at 1/4 scale
    centre_features: tuple[int, ...] = (16, 16, 32, 64, 128, 16)
    centre_sigma: float = 2.0             # heatmap Gaussian, step-1 pixels
    peak_threshold: float = 0.2           # step-1 heatmap peaks below this are ignored
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


def _parabola_offset(before, centre, after):
    """Sub-pixel offset of a peak from log-values at -1, 0, +1 (exact for a Gaussian)."""
    curvature = before - 2 * centre + after
    safe = torch.where(curvature < -1e-6, curvature, torch.full_like(curvature, -1.0))
    return torch.where(curvature < -1e-6, (0.5 * (before - after) / safe).clamp(-0.5, 0.5),
                       torch.zeros_like(curvature))


def _refine(log: torch.Tensor, rows, py, px):
    """Sub-pixel (x, y) of integer peaks (py, px) in the log-heatmaps ``log`` (N, h, w)."""
    h, w = log.shape[-2:]
    centre = log[rows, py, px]
    dx = _parabola_offset(log[rows, py, (px - 1).clamp_min(0)], centre, log[rows, py, (px + 1).clamp_max(w - 1)])
    dy = _parabola_offset(log[rows, (py - 1).clamp_min(0), px], centre, log[rows, (py + 1).clamp_max(h - 1), px])
    return torch.stack([px + dx, py + dy], dim=-1)


def decode_heatmaps(heatmaps: torch.Tensor):
    """Peak of each channel with sub-pixel refinement: (…, 2) as (x, y) and the peak value."""
    *lead, h, w = heatmaps.shape
    flat = heatmaps.reshape(-1, h, w)
    peak, index = flat.reshape(len(flat), -1).max(dim=1)
    rows = torch.arange(len(flat))
    points = _refine(flat.clamp_min(1e-6).log(), rows, index // w, index % w).to(heatmaps.dtype)
    return points.reshape(*lead, 2), peak.reshape(lead)


def heatmap_peaks(heatmap: torch.Tensor, threshold: float, min_distance: int = 2):
    """All local maxima of one heatmap (h, w) above ``threshold``: (m, 2) sub-pixel (x, y), values."""
    pooled = F.max_pool2d(heatmap[None, None], 2 * min_distance + 1, stride=1, padding=min_distance)[0, 0]
    py, px = torch.nonzero((heatmap >= pooled) & (heatmap > threshold), as_tuple=True)
    values = heatmap[py, px]
    rows = torch.zeros_like(py)
    points = _refine(heatmap.clamp_min(1e-6).log()[None], rows, py, px).to(heatmap.dtype)
    return points, values


#: Level-assignment costs (per event, or per unit of step mismatch).
MISSING_LEVEL_COST = 1.5
SKIPPED_PEAK_COST = 1.0          # times the skipped peak's value
STEP_RATIO_WEIGHT = 1.0          # per unit of |log(found step / expected step)|, head to foot
LATERAL_WEIGHT = 0.15            # per spacing of sideways mismatch between a step and the expected one
MAX_LEVEL_GAP = 3
MAX_PEAK_GAP = 4


def _step_scale(pts: np.ndarray, exp: np.ndarray) -> float | None:
    """How much larger this spine's vertebra steps are than the mean spine's (median steps)."""
    if len(pts) < 4:
        return None
    observed = np.median(np.diff(np.sort(pts[:, 1])))
    expected = np.median(np.diff(exp[:, 1]))
    return float(np.clip(observed / expected, 0.7, 1.4)) if expected > 0 and observed > 0 else None


def assign_levels(points: torch.Tensor, values: torch.Tensor, expected: torch.Tensor):
    """Give detected centre peaks their levels: (n, 2) centres and an (n,) matched mask.

    ``expected`` (n, 2) is the mean training spine in this image's pixels: it says what step
    to expect from each level to the next (larger in the lumbar spine). Peaks are visited top
    to bottom; a dynamic programme picks the chain of peaks whose steps best match the
    expected steps (after matching the spine's size), rewarding each peak's heatmap value,
    and paying for every level it leaves unmatched and for every peak it skips (ribs, C7,
    sacrum: the detector gives them lower values). Unmatched levels are left to the shape
    model. A step is judged by the ratio of its length to the expected one: a step of a
    third of a spacing (a second peak on one vertebra) then costs as much as one three times
    too long, where a cost linear in pixels let such half-steps through and shifted every
    level below them (measured on held-out images: levels right in 131 of 184 instead of
    126). There is no absolute position prior (where T1 and L5 usually lie): on held-out
    images it gained 0.2 points of SMAPE as framed but lost 2.4 with 10 % blank rows above,
    where it also hid the framing flag (model card).
    """
    n = len(expected)
    matched = torch.zeros(n, dtype=torch.bool)
    centres = expected.clone()
    if len(points) == 0:
        return centres, matched
    order = torch.argsort(points[:, 1])
    pts = points[order].double().numpy()
    vals = values[order].double().numpy()
    exp = expected.double().numpy()
    if m_scale := _step_scale(pts, exp):
        # Spines differ in size: compare steps after matching the typical step of the peaks.
        exp = exp[:1] + (exp - exp[:1]) * m_scale
    steps = np.linalg.norm(np.diff(exp, axis=0), axis=1)
    spacing = np.concatenate([steps[:1], (steps[1:] + steps[:-1]) / 2, steps[-1:]]).clip(min=1.0)
    m = len(pts)
    unary = np.broadcast_to(-vals[None, :], (n, m))
    skipped_sum = np.concatenate([[0.0], np.cumsum(vals)])
    # A chain may start at any level and peak: the levels above it are missing, the peaks
    # above it skipped, and both are paid for, as are those below its end.
    cost = unary + MISSING_LEVEL_COST * np.arange(n)[:, None] + SKIPPED_PEAK_COST * skipped_sum[None, :m]
    back = {}
    for k in range(1, n):
        for j in range(1, m):
            best, arg = cost[k, j], None
            for dk in range(1, min(MAX_LEVEL_GAP, k) + 1):
                want = exp[k] - exp[k - dk]
                for dj in range(1, min(MAX_PEAK_GAP, j) + 1):
                    got = pts[j] - pts[j - dj]
                    total = (cost[k - dk, j - dj]
                             + STEP_RATIO_WEIGHT * abs(np.log(max(got[1], 1e-3) / max(want[1], 1e-3)))
                             + LATERAL_WEIGHT * abs(got[0] - want[0]) / spacing[k]
                             + MISSING_LEVEL_COST * (dk - 1)
                             + SKIPPED_PEAK_COST * (skipped_sum[j] - skipped_sum[j - dj + 1])
                             + unary[k, j])
                    if total < best:
                        best, arg = total, (k - dk, j - dj)
            if arg is not None:
                cost[k, j] = best
                back[(k, j)] = arg
    final = (cost + MISSING_LEVEL_COST * (n - 1 - np.arange(n))[:, None]
             + SKIPPED_PEAK_COST * (skipped_sum[-1] - skipped_sum[None, 1:]))
    k, j = np.unravel_index(int(np.argmin(final)), final.shape)
    while True:
        centres[k] = torch.from_numpy(pts[j]).to(centres.dtype)
        matched[k] = True
        if (k, j) not in back:
            break
        k, j = back[(k, j)]
    return centres, matched


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
        self.centre_net = _unet(1, c.centre_features)
        self.corner_net = _unet(4, c.corner_features)
        self.centre_shape = ShapeModel(2 * c.n_vertebrae, c.centre_modes)
        # Where each level lies in the image: mean and spread of (x / width, y / height)
        # over the training spines; the mean gives the expected steps between levels.
        self.register_buffer("centre_prior", torch.zeros(2, c.n_vertebrae, 2))
        self.corner_shape = ShapeModel(8, c.corner_modes)

    # -- step 1 ---------------------------------------------------------------------------
    def centre_input(self, images: torch.Tensor) -> torch.Tensor:
        """Working images (B, 1, H, W) -> step-1 input at 1/``centre_downsample`` scale."""
        k = self.config.centre_downsample
        return F.avg_pool2d(images, k, ceil_mode=True)

    def centre_heatmap(self, images: torch.Tensor) -> torch.Tensor:
        """Step-1 heatmap of vertebra centres, (B, h, w) at 1/``centre_downsample`` scale."""
        small = self.centre_input(images)
        return self.centre_net(_pad16(small))[:, 0, :small.shape[-2], :small.shape[-1]]

    def find_centres(self, images: torch.Tensor, widths: torch.Tensor):
        """Centres (B, n, 2) in working pixels, each level's peak value (0 if unmatched)."""
        c = self.config
        k = c.centre_downsample
        heat = self.centre_heatmap(images)
        size = torch.stack([widths.to(images.dtype), torch.full_like(widths, images.shape[-2], dtype=images.dtype)], 1)
        mean = self.centre_prior[0]
        centres, confidence = [], []
        for b in range(len(images)):
            points, values = heatmap_peaks(heat[b], c.peak_threshold)
            found, matched = assign_levels((points + 0.5) * k - 0.5, values, mean * size[b])
            centres.append(found)
            level_values = torch.zeros(len(found))
            if matched.any():
                nearest = ((found[matched, None] - ((points + 0.5) * k - 0.5)[None]).norm(dim=-1)).argmin(dim=1)
                level_values[matched] = values[nearest]
            confidence.append(level_values)
        centres, confidence = torch.stack(centres), torch.stack(confidence)
        return self.constrain_centres(centres, confidence, widths), confidence

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
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        """Corners (n, 4, 2) in working pixels of one working image (1, 1, H, W).

        The centres are found once; the corners are found on the image and on its mirror
        image around the same (mirrored) centres and averaged, which halves their variance
        without letting the two views disagree about the levels.
        """
        width = torch.tensor([float(image.shape[-1])])
        centres, _ = self.find_centres(image, width)
        images = image.expand(2, -1, -1, -1)
        widths = width.expand(2)
        both = torch.cat([centres, mirror_points(centres, width)])
        corners = self.find_corners(images, both, torch.tensor([False, True]), widths)
        unflipped = mirror_points(corners[1:], width)[:, :, FLIP_CORNERS]
        return self.straighten_turned_vertebrae((corners[0] + unflipped[0]) / 2, width)

    def straighten_turned_vertebrae(self, corners: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        """Anatomy-aided correction: a vertebra turned against both its neighbours by more
        than the quality limit (corners that slid onto a rib or the image edge) is replaced by
        the mean vertebra shape, centred where the spine's shape model puts it given the other
        vertebrae, in the local frame of the spine there."""
        from ..quality import MAX_NEIGHBOUR_TILT_DEG

        mid = (corners[:, [1, 3]].mean(dim=1) - corners[:, [0, 2]].mean(dim=1))
        tilt = torch.rad2deg(torch.atan2(mid[:, 1], mid[:, 0]))
        n = len(corners)
        turned = []
        for k in range(n):
            neighbours = [j for j in (k - 1, k + 1) if 0 <= j < n]
            diffs = [abs(float((tilt[k] - tilt[j] + 180) % 360 - 180)) for j in neighbours]
            if min(diffs) > MAX_NEIGHBOUR_TILT_DEG:
                turned.append(k)
        if not turned:
            return corners
        trusted = torch.ones(1, n)
        trusted[0, turned] = 0
        centres = self.constrain_centres(corners.mean(dim=1)[None], trusted, width)
        template = self.corner_shape.mean.reshape(1, 1, 4, 2).expand(1, n, 4, 2)
        fallback = from_local(template, centres, *local_frames(centres))[0]
        fixed = corners.clone()
        fixed[turned] = fallback[turned]
        return fixed


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
