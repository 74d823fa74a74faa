"""The two-step landmark model: 17 vertebra centres, then the 4 corners of each vertebra.

Step 1 finds vertebra centres on the whole radiograph (at a quarter of the working
resolution) as one heatmap; its peaks are given their levels T1–L5 by a dynamic programme
that follows the spine from peak to peak with the spacing the mean training spine expects
(a level per channel does not train on a CPU budget: telling T5 from T6 needs the whole
column, which a local detector plus this ordering step supplies); step 2 crops a region around each
found centre, aligned with the spine's local axis and scaled by the local vertebra spacing, and
finds its 4 corners as heatmaps; step 2 runs in stages, each re-cropping around the centre of the
corners the previous stage found. The end vertebrae (``end_levels``: T1 and L5, which set the
second and third AASCE angles of most spines) may have a corner network of their own, fine-tuned
from the general one on their regions alone. Both steps are held to a PCA shape model of the training spines:
a point whose heatmap is weak or that strays from the shape the others imply is replaced
by the shape model's estimate (the shape constraint of Wang et al.).

Networks are MONAI ``BasicUNet``s. Coordinates: working pixels (x, y) of the preprocessed
image (see ``preprocess``); corner-step "local units": 100 = one vertebra spacing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet
from torch import nn

from ...ml.inference import MeanOfNetworks, pad_to_multiple
from ..landmarks import neighbour_turns_deg, smooth_tilts
from .config import LandmarkConfig
from .heatmaps import decode_heatmaps, heatmap_peaks
from .level_assignment import assign_levels
from .patches import FLIP_CORNERS, mirror_points, sample_patches
from .shape_model import ShapeModel

LOCAL_UNIT = 100.0
#: Both U-Nets halve their input four times: sides must be multiples of 16.
UNET_STRIDE = 16


def local_frames(centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


def to_local(points: torch.Tensor, centres: torch.Tensor, right: torch.Tensor, down: torch.Tensor,
             spacing: torch.Tensor) -> torch.Tensor:
    """Working pixels (B, n, k, 2) -> local units in each vertebra's frame."""
    d = points - centres[:, :, None]
    scale = (LOCAL_UNIT / spacing)[:, :, None]
    return torch.stack([(d * right[:, :, None]).sum(-1) * scale,
                        (d * down[:, :, None]).sum(-1) * scale], dim=-1)


def from_local(local: torch.Tensor, centres: torch.Tensor, right: torch.Tensor, down: torch.Tensor,
               spacing: torch.Tensor) -> torch.Tensor:
    """Inverse of ``to_local``."""
    scale = (spacing / LOCAL_UNIT)[:, :, None, None]
    return (centres[:, :, None]
            + scale * (local[..., :1] * right[:, :, None] + local[..., 1:] * down[:, :, None]))



@dataclass(frozen=True)
class Evidence:
    """How sure the networks were on one image: the spine check's inputs (``xray.spine_check``)."""

    matched_levels: int          # levels T1–L5 the chain of centre peaks reached
    centre_confidence: float     # mean centre-peak value over the 17 levels (0 for unmatched)
    corner_confidence: float     # median corner-peak value of the last corner stage, both views
    corner_spread: float         # median share of a corner region above half its heatmap's peak
    extra_peaks: int             # centre peaks the chain left out
    mirror_disagreement: float   # median gap between a vertebra's corners found on the image and
                                 # on its mirror image, in vertebra spacings


def _unet(out_channels: int, features, members: int = 1) -> nn.Module:
    """One ``BasicUNet``, or ``members`` of them averaged (an ensemble, ``LandmarkConfig.member_seeds``)."""
    def one() -> BasicUNet:
        return BasicUNet(spatial_dims=2, in_channels=1, out_channels=out_channels, features=tuple(features))
    return one() if members <= 1 else MeanOfNetworks([one() for _ in range(members)])


class LandmarkModel(nn.Module):
    """Networks and shape models of both steps; tensors in, tensors out, no file I/O."""

    def __init__(self, config: LandmarkConfig):
        super().__init__()
        self.config = config
        c = config
        self.centre_net = _unet(1, c.centre_features, len(c.member_seeds))
        self.corner_net = _unet(4, c.corner_features, len(c.member_seeds))
        # T1 and L5 set two of the three AASCE angles of most spines (the tilts at both ends) and
        # sit beside the neck, ribs and pelvis: a corner network tuned to them (``end_levels``).
        self.end_corner_net = _unet(4, c.corner_features, len(c.member_seeds)) if c.end_levels else None
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

    def _averaged(self, net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """``net``'s heatmaps of ``inputs`` (values 0..1), averaged over the gammas of ``tta_gammas``
        (test-time augmentation: exposure differences, the same augmentation as in training)."""
        gammas = (1.0, *self.config.tta_gammas)
        return torch.stack([net(inputs.clamp_min(0) ** g if g != 1.0 else inputs) for g in gammas]).mean(dim=0)

    def centre_heatmap(self, images: torch.Tensor) -> torch.Tensor:
        """Step-1 heatmap of vertebra centres, (B, h, w) at 1/``centre_downsample`` scale."""
        small = self.centre_input(images)
        heat = self._averaged(self.centre_net, pad_to_multiple(small, UNET_STRIDE))
        return heat[:, 0, :small.shape[-2], :small.shape[-1]]

    def find_centres(self, images: torch.Tensor, widths: torch.Tensor):
        """Centres (B, n, 2) in working pixels, each level's peak value (0 if unmatched) and
        how many heatmap peaks each image has (the spine check compares them with the levels)."""
        c = self.config
        k = c.centre_downsample
        heat = self.centre_heatmap(images)
        size = torch.stack([widths.to(images.dtype), torch.full_like(widths, images.shape[-2], dtype=images.dtype)], 1)
        mean = self.centre_prior[0]
        centres, confidence, n_peaks = [], [], []
        for b in range(len(images)):
            points, values = heatmap_peaks(heat[b], c.peak_threshold, c.peak_min_distance)
            n_peaks.append(len(points))
            found, matched = assign_levels((points + 0.5) * k - 0.5, values, mean * size[b], c)
            centres.append(found)
            level_values = torch.zeros(len(found))
            if matched.any():
                nearest = ((found[matched, None] - ((points + 0.5) * k - 0.5)[None]).norm(dim=-1)).argmin(dim=1)
                level_values[matched] = values[nearest]
            confidence.append(level_values)
        centres, confidence = torch.stack(centres), torch.stack(confidence)
        return self.constrain_centres(centres, confidence, widths), confidence, torch.tensor(n_peaks)

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

    def corner_heatmaps(self, rois: torch.Tensor) -> torch.Tensor:
        """Corner heatmaps (B * n, 4, roi, roi) of regions (B, n, roi, roi): the end levels' from
        ``end_corner_net``, the others' from ``corner_net``."""
        b, n, size = rois.shape[0], rois.shape[1], self.config.roi_size
        ends = list(self.config.end_levels) if self.end_corner_net is not None else []
        rest = [k for k in range(n) if k not in ends]
        heat = rois.new_empty((b, n, 4, size, size))
        for levels, net in ((rest, self.corner_net), (ends, self.end_corner_net)):
            if levels:
                heat[:, levels] = self._averaged(net, rois[:, levels].reshape(-1, 1, size, size)).reshape(
                    b, len(levels), 4, size, size)
        return heat.reshape(b * n, 4, size, size)

    def find_corners(self, images, centres, flipped, widths):
        """Corners (B, n, 4, 2) around the given centres, after ``corner_stages`` stages; and of the
        last stage's heatmaps (B, n, 4) their peak values and their spread: the share of the region
        above half the peak (a real corner gives a sharp peak, an image without vertebrae a broad one)."""
        c = self.config
        b, n, _ = centres.shape
        for _ in range(c.corner_stages):
            rois = self.crop_rois(images, centres, flipped, widths)
            heat = self.corner_heatmaps(rois)
            points, peak = decode_heatmaps(heat)
            corners = self.roi_to_image(points.reshape(b, n, 4, 2), centres)
            corners = self.constrain_corners(corners, peak.reshape(b, n, 4), centres)
            centres = corners.mean(dim=2)
        flat = heat.flatten(2)
        spread = (flat > 0.5 * flat.amax(dim=-1, keepdim=True)).float().mean(dim=-1)
        return corners, peak.reshape(b, n, 4), spread.reshape(b, n, 4)

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
    def predict(self, image: torch.Tensor) -> tuple[torch.Tensor, Evidence]:
        """Corners (n, 4, 2) in working pixels of one working image (1, 1, H, W), and what the
        networks saw on the way (``Evidence``, for the spine check).

        The centres are found once; the corners are found on the image and on its mirror
        image around the same (mirrored) centres and averaged, which halves their variance
        without letting the two views disagree about the levels. Vertebrae turned against both
        neighbours are replaced, then the tilts are smoothed along the spine (``tilt_smoothing``).
        """
        width = torch.tensor([float(image.shape[-1])])
        centres, confidence, n_peaks = self.find_centres(image, width)
        images = image.expand(2, -1, -1, -1)
        widths = width.expand(2)
        both = torch.cat([centres, mirror_points(centres, width)])
        corners, corner_peaks, corner_spread = self.find_corners(images, both, torch.tensor([False, True]), widths)
        unflipped = mirror_points(corners[1:], width)[:, :, FLIP_CORNERS]
        disagreement = (corners[0] - unflipped[0]).norm(dim=-1).mean(dim=1)
        _, _, spacing = local_frames(centres)
        evidence = Evidence(
            matched_levels=int((confidence[0] > 0).sum()),
            centre_confidence=float(confidence[0].mean()),
            corner_confidence=float(corner_peaks.median()),
            corner_spread=float(corner_spread.median()),
            extra_peaks=int(n_peaks[0]) - int((confidence[0] > 0).sum()),
            mirror_disagreement=float((disagreement / spacing[0]).median()))
        corners = self.straighten_turned_vertebrae((corners[0] + unflipped[0]) / 2, width)
        smoothed = smooth_tilts(corners.numpy(), self.config.tilt_smoothing)
        return torch.from_numpy(smoothed).to(corners.dtype), evidence

    def straighten_turned_vertebrae(self, corners: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        """Anatomy-aided correction of corners (n, 4, 2): a vertebra turned against both its
        neighbours by more than ``turned_vertebra_limit_deg`` (corners that slid onto a rib or
        the image edge) is replaced by the mean vertebra shape, centred where the spine's shape
        model puts it given the other vertebrae, in the local frame of the spine there."""
        turns = neighbour_turns_deg(corners.numpy())
        n = len(corners)
        turned = [k for k in range(n)
                  if min(turns[j] for j in (k - 1, k) if 0 <= j < n - 1) > self.config.turned_vertebra_limit_deg]
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


def _mirror_images(images: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Mirror each image within its own width (images are left-aligned on a padded canvas)."""
    out = torch.zeros_like(images)
    for i, w in enumerate(widths.long().tolist()):
        out[i, ..., :w] = images[i, ..., :w].flip(-1)
    return out
