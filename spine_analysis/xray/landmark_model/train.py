"""Training the two-step landmark model on an AASCE-layout folder, on the CPU.

Step 1 (a vertebra-centre heatmap of the whole radiograph) and step 2 (corner heatmaps in regions
around each vertebra) are trained one after the other, then, when the config names end levels,
step 2's network is fine-tuned on the end vertebrae's regions alone into their own network
(``add_end_network`` does that for a model trained without one); last the two PCA shape models
are fitted to the training spines. Horizontal flips (left/right corners swapped) and, for step 2,
jittered region centres make the networks robust to each other's errors.

Images whose labels break anatomy (a vertebra above the one before it, implausible spacing:
the AASCE training labels hold a few such rows) are left out of training and counted.
The loop itself (seeding, learning-rate schedule, checkpoints after every epoch so that rerunning
the same command resumes, history) is the shared ``spine_analysis.ml.training``; this module
supplies the two phases, their batches and losses.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from ...errors import ModelError
from ...io.aasce import read_aasce_folder
from ...io.atomic import atomic_output
from ...io.xray import read_xray
from ...ml.inference import pad_to_multiple
from ...ml.training import Phase, TrainingLoop
from ..quality import quality_flags
from .config import LandmarkConfig
from .heatmaps import gaussian_heatmaps
from .model import UNET_STRIDE, LandmarkModel, _mirror_images, local_frames, to_local
from .patches import FLIP_CORNERS, mirror_points, sample_patches
from .preprocess import to_working_image, working_scale


@dataclass
class TrainSettings:
    """Optimisation settings (network shapes live in ``LandmarkConfig``)."""

    centre_epochs: int = 16
    corner_epochs: int = 20
    centre_batch: int = 8
    corner_batch_images: int = 4
    end_epochs: int = 30                 # the end levels' corner network (``LandmarkConfig.end_levels``),
    end_batch_images: int = 24           # fine-tuned from the corner step's network
    end_learning_rate: float = 5e-4
    learning_rate: float = 2e-3
    final_lr_fraction: float = 0.05
    centre_jitter: float = 0.12          # step-2 region centre jitter, in spacings
    reframe_chance: float = 0.0          # step-1 images shown with other margins above and below
    reframe_margins: tuple[float, float] = (-0.03, 0.15)   # margin range, fraction of the height
    shape_loss_weight: float = 0.0       # bipartite-distance loss on step-2 corners (0: off)
    holdout_fraction: float = 0.0
    seed: int = 0                        # the networks' initialisation and augmentation
    split_seed: int | None = None        # which patients are held out (None: ``seed``), so that
                                         # ensemble members on one split can differ in ``seed``
    max_images: int | None = None


def case_group(filename: str) -> str:
    """Images of one patient share a case number ("...-162 A AP.jpg", "...-162 B AP.jpg")."""
    match = re.search(r"-(\d+)\s*[A-Z]?\s*AP", filename)
    return match.group(1) if match else filename


def split_indices(filenames: list[str], holdout_fraction: float, seed: int):
    """A fixed, patient-grouped split: (train indices, held-out indices)."""
    if holdout_fraction <= 0:
        return list(range(len(filenames))), []
    groups = sorted({case_group(f) for f in filenames})
    rng = np.random.default_rng(seed)
    held = set(rng.choice(groups, size=max(1, round(len(groups) * holdout_fraction)),
                          replace=False).tolist())
    train = [i for i, f in enumerate(filenames) if case_group(f) not in held]
    test = [i for i, f in enumerate(filenames) if case_group(f) in held]
    return train, test


@dataclass
class TrainingImages:
    """Preprocessed images on one padded canvas plus ground truth in working pixels."""

    canvas: torch.Tensor          # (N, 1, H, W) uint8
    widths: torch.Tensor          # (N,) working widths
    corners: torch.Tensor         # (N, 2, n, 4, 2): [as is, mirrored] ground truth

    def images(self, idx) -> torch.Tensor:
        return self.canvas[idx].float() / 255.0


def load_training_images(folder, indices, config: LandmarkConfig, cache_file=None) -> TrainingImages:
    """Read, preprocess (as ``config`` says) and cache the chosen images of an AASCE folder."""
    working_height = config.working_height
    data = read_aasce_folder(folder)
    if data.landmarks is None:
        raise ValueError(f"{folder} has no landmarks.csv: training needs labelled images")
    if cache_file is not None and Path(cache_file).exists():
        cached = np.load(cache_file)
        if list(cached["indices"]) == list(indices):
            return _assemble(cached["images"], cached["widths"], cached["corners"])
    images, widths, corners = [], [], []
    for i in tqdm(indices, desc="preprocessing radiographs", unit="img"):
        pixels = read_xray(data.image_path(i)).pixels
        work = to_working_image(pixels, config)
        images.append(np.round(work * 255).astype(np.uint8))
        widths.append(work.shape[1])
        corners.append(data.landmarks_px(i).points * working_scale(pixels.shape, working_height))
    stack = np.zeros((len(images), working_height, max(widths)), np.uint8)
    for k, img in enumerate(images):
        stack[k, :, :img.shape[1]] = img
    widths, corners = np.array(widths, np.float32), np.array(corners, np.float32)
    if cache_file is not None:
        with atomic_output(cache_file) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, images=stack, widths=widths, corners=corners, indices=np.array(indices))
    return _assemble(stack, widths, corners)


def _assemble(stack, widths, corners) -> TrainingImages:
    widths_t = torch.from_numpy(np.asarray(widths, np.float32))
    gt = torch.from_numpy(np.asarray(corners, np.float32))
    mirrored = mirror_points(gt, widths_t)[:, :, FLIP_CORNERS]
    return TrainingImages(torch.from_numpy(np.asarray(stack))[:, None], widths_t,
                          torch.stack([gt, mirrored], dim=1))


def plausible_labels(folder, indices) -> tuple[list[int], list[int]]:
    """Split indices into images whose labels keep the vertebrae in order with uncrossed
    corners, and the rest (label glitches that would teach the networks nonsense)."""
    data = read_aasce_folder(folder)
    good, bad = [], []
    for i in indices:
        try:
            flags = quality_flags(data.landmarks_px(i))
        except ValueError:
            bad.append(i)
            continue
        (bad if any(f.code in ("order", "crossed") for f in flags) else good).append(i)
    return good, bad


def _weighted_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Heatmap loss: squared error, weighted up near the targets so peaks are not drowned."""
    return ((pred - target) ** 2 * (1 + 9 * target)).mean()


def soft_argmax(heatmaps: torch.Tensor, power: float = 4.0) -> torch.Tensor:
    """Differentiable peak positions (…, 2) as (x, y): centroid of relu(heatmap)^power."""
    *lead, h, w = heatmaps.shape
    weights = heatmaps.clamp_min(0).pow(power).reshape(*lead, h * w)
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-8)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=heatmaps.dtype), torch.arange(w, dtype=heatmaps.dtype),
                            indexing="ij")
    return torch.stack([(weights * xs.reshape(-1)).sum(-1), (weights * ys.reshape(-1)).sum(-1)], dim=-1)


def bipartite_distance(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Imran et al.'s shape loss for vertebra corners (…, 4, 2) in TL, TR, BL, BR order:
    mean |d - d_hat| over the edges joining the left corners (TL, BL) to the right ones (TR, BR)."""
    left, right = [0, 2], [1, 3]
    d_pred = (pred[..., left, None, :] - pred[..., None, right, :]).norm(dim=-1)
    d_true = (truth[..., left, None, :] - truth[..., None, right, :]).norm(dim=-1)
    return (d_pred - d_true).abs().mean()


class Trainer:
    """Trains step 1, then step 2 (two phases of the shared ``TrainingLoop``), then fits the shape models."""

    def __init__(self, data: TrainingImages, config: LandmarkConfig, settings: TrainSettings,
                 checkpoint_file=None, log=print):
        self.data, self.config, self.settings = data, config, settings
        self.loop = TrainingLoop(lambda: LandmarkModel(config),
                                 {"config": config.to_dict(), "settings": asdict(settings)},
                                 settings.seed, settings.learning_rate, settings.final_lr_fraction,
                                 checkpoint_file, log)
        self.model, self.rng = self.loop.model, self.loop.rng

    @property
    def history(self) -> list[dict]:
        return self.loop.history

    def run(self) -> LandmarkModel:
        """Train (or resume) both steps and fit the shape models; returns the model in eval mode."""
        st, model = self.settings, self.model
        self.loop.run([
            Phase("centre", model.centre_net, st.centre_epochs,
                  lambda: self._batch_losses(model.centre_net, self._centre_batch, st.centre_batch)),
            Phase("corner", model.corner_net, st.corner_epochs,
                  lambda: self._batch_losses(model.corner_net, self._corner_batch, st.corner_batch_images)),
            *([Phase("end", model.end_corner_net, st.end_epochs,
                     lambda: self._batch_losses(model.end_corner_net, self._end_batch, st.end_batch_images),
                     st.end_learning_rate,
                     lambda: model.end_corner_net.load_state_dict(model.corner_net.state_dict()))]
              if model.end_corner_net is not None else []),
        ])
        self._fit_shape_models()
        self.model.eval()
        return self.model

    def _batch_losses(self, net, batch_fn: Callable, batch: int) -> Iterator[torch.Tensor]:
        """One epoch in random order, half the images mirrored: the loss of each batch."""
        n = len(self.data.widths)
        order = torch.from_numpy(self.rng.permutation(n))
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            flips = torch.from_numpy(self.rng.random(len(idx)) < 0.5)
            inputs, target, points = batch_fn(idx, flips)
            heat = net(inputs)
            loss = _weighted_mse(heat, target)
            if points is not None and self.settings.shape_loss_weight > 0:
                loss = loss + self.settings.shape_loss_weight * bipartite_distance(soft_argmax(heat), points)
            yield loss

    def _centre_batch(self, idx, flips):
        c, data = self.config, self.data
        images = data.images(idx)
        view = torch.where(flips[:, None, None, None], _mirror_images(images, data.widths[idx]), images)
        small = pad_to_multiple(self.model.centre_input(view), UNET_STRIDE)
        # Random brightness/contrast (gamma) so exposure differences do not matter.
        gamma = torch.from_numpy(np.exp(self.rng.normal(0, 0.25, len(idx))).astype(np.float32))
        small = small.clamp_min(0) ** gamma[:, None, None, None]
        centres = data.corners[idx, flips.long()].mean(dim=2)
        k = c.centre_downsample
        small, centres = self._reframe(small, (centres + 0.5) / k - 0.5, c.working_height / k)
        target = gaussian_heatmaps(centres, small.shape[-2:], c.centre_sigma)
        return small, target.amax(dim=1, keepdim=True), None

    def _reframe(self, small: torch.Tensor, centres: torch.Tensor, height: float):
        """Show some images as if framed with other margins above and below the spine (more of
        the neck or pelvis in view, black borders, a tighter crop): the image is shrunk or
        enlarged about its top-left corner and shifted, as resizing a differently framed
        radiograph to the working height would.

        Off by default: it makes the levels less tied to the AASCE framing but costs accuracy on
        radiographs framed like the training ones (the model card has both measurements)."""
        if self.settings.reframe_chance <= 0:
            return small, centres
        st = self.settings
        n = len(small)
        low, high = st.reframe_margins
        top, bottom = (torch.from_numpy(self.rng.uniform(low, high, n).astype(np.float32)) for _ in range(2))
        active = torch.from_numpy(self.rng.random(n) < st.reframe_chance)
        scale = torch.where(active, 1 / (1 + top + bottom), torch.ones(n))
        shift = torch.where(active, top * height, torch.zeros(n))
        rows, cols = small.shape[-2:]
        middle = torch.tensor([(cols - 1) / 2, (rows - 1) / 2])
        source_centre = middle[None] / scale[:, None] - torch.stack([torch.zeros(n), shift], dim=1)
        step = (1 / scale)[:, None, None] * torch.eye(2)[None]
        framed = sample_patches(small, source_centre[:, None], step[:, None, 0], step[:, None, 1], (rows, cols))
        moved = (centres + torch.stack([torch.zeros(n), shift], dim=1)[:, None]) * scale[:, None, None]
        return framed, moved

    def _corner_batch(self, idx, flips):
        c, data = self.config, self.data
        truth = data.corners[idx, flips.long()]                       # (B, n, 4, 2) sample space
        centres = truth.mean(dim=2)
        _, _, spacing = local_frames(centres)
        noise = torch.from_numpy(self.rng.normal(0, self.settings.centre_jitter,
                                                 centres.shape).astype(np.float32))
        centres = centres + noise * spacing[..., None]
        rois = self.model.crop_rois(data.images(idx), centres, flips, data.widths[idx])
        right, down = self.model.roi_geometry(centres)
        d = truth - centres[:, :, None]
        half = (c.roi_size - 1) / 2
        in_roi = torch.stack([(d * right[:, :, None]).sum(-1) / right.pow(2).sum(-1)[..., None],
                              (d * down[:, :, None]).sum(-1) / down.pow(2).sum(-1)[..., None]],
                             dim=-1) + half
        b, n = centres.shape[:2]
        target = gaussian_heatmaps(in_roi.reshape(b * n, 4, 2), (c.roi_size, c.roi_size), c.corner_sigma)
        return rois.reshape(b * n, 1, c.roi_size, c.roi_size), target, in_roi.reshape(b * n, 4, 2)

    def _end_batch(self, idx, flips):
        """The corner step's batch, kept to the end levels' regions."""
        rois, target, points = self._corner_batch(idx, flips)
        b, n, ends = len(idx), self.config.n_vertebrae, list(self.config.end_levels)
        return tuple(t.reshape(b, n, *t.shape[1:])[:, ends].reshape(b * len(ends), *t.shape[1:])
                     for t in (rois, target, points))

    def _fit_shape_models(self):
        """PCA shape models of the training spines (both flips), in the units the model uses."""
        gt = self.data.corners.reshape(-1, *self.data.corners.shape[2:])     # (2N, n, 4, 2)
        widths = self.data.widths.repeat_interleave(2)
        centres = gt.mean(dim=2)
        self.model.centre_shape.fit((centres / widths[:, None, None]).reshape(len(gt), -1))
        size = torch.stack([widths, torch.full_like(widths, self.data.canvas.shape[-2])], dim=1)
        normalised = centres / size[:, None, :]
        self.model.centre_prior.copy_(torch.stack([normalised.mean(0), normalised.std(0)]))
        frames = (centres, *local_frames(centres))
        local = to_local(gt, *frames).reshape(-1, 8)
        self.model.corner_shape.fit(local)


#: What a newly trained model predicts with, as the shipped one does, chosen on the held-out splits
#: (weights/MODEL_CARD.md, "Tilt smoothing", "End vertebrae"); older configs without them keep 0 / none.
RECIPE_CONFIG = LandmarkConfig(tilt_smoothing=0.05, end_levels=(0, 16))


def train_landmarks(aasce_dir, out_dir, settings: TrainSettings, config: LandmarkConfig | None = None,
                    command: str = "", log=print) -> dict:
    """Train a model from an AASCE-layout folder into ``out_dir`` (resumable); returns metadata.

    With ``settings.holdout_fraction > 0`` a patient-grouped part of the folder is left out
    and listed in ``heldout.txt`` so it can be evaluated with ``spine-analysis evaluate``.
    """
    from .weights_io import save_model

    config = config or RECIPE_CONFIG
    if config.member_seeds:
        raise ValueError("an ensemble is not trained at once: train its members with different seeds, "
                         "then join them (landmark_model.ensemble)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = read_aasce_folder(aasce_dir).filenames
    split_seed = settings.seed if settings.split_seed is None else settings.split_seed
    train_idx, held_idx = split_indices(names, settings.holdout_fraction, split_seed)
    train_idx, excluded = plausible_labels(aasce_dir, train_idx)
    if settings.max_images:
        train_idx = train_idx[:settings.max_images]
    log(f"training on {len(train_idx)} images ({len(excluded)} left out for implausible labels), "
        f"{len(held_idx)} held out")
    started = time.time()
    data = load_training_images(aasce_dir, train_idx, config, out_dir / "cache-preprocessed.npz")
    trainer = Trainer(data, config, settings, out_dir / "checkpoint.pt", log)
    model = trainer.run()
    metadata = {
        "trained": time.strftime("%Y-%m-%d"), "command": command,
        "training_images": len(train_idx), "excluded_implausible_labels": [names[i] for i in excluded],
        "heldout_images": len(held_idx),
        "split": (f"patient-grouped, seed {split_seed}, {settings.holdout_fraction:.0%} of cases held out"
                  if held_idx else "none: trained on every image of the folder"),
        "settings": asdict(settings), "history": trainer.history,
        "training_minutes": round((time.time() - started) / 60, 1),
    }
    if held_idx:
        with atomic_output(out_dir / "heldout.txt") as tmp:
            tmp.write_text("".join(f"{names[i]}\n" for i in held_idx))
    save_model(model, out_dir, metadata)
    return metadata


def add_end_network(model_dir, aasce_dir, out_dir, settings: TrainSettings,
                    end_levels: tuple[int, ...] = RECIPE_CONFIG.end_levels, command: str = "", log=print) -> dict:
    """Give a model trained without one the end levels' corner network (``LandmarkConfig.end_levels``),
    fine-tuned from its corner network on the images it was trained on (its split and exclusions, as
    its metadata records them); every other weight is kept. Written to ``out_dir`` (resumable);
    returns the new metadata."""
    from .weights_io import LANDMARK_MODEL, load_model, save_model

    out_dir = Path(out_dir)
    if (out_dir / LANDMARK_MODEL.weights_file).exists():
        raise ModelError(f"{out_dir} already holds a landmark model: choose a new folder")
    model, bundle = load_model(model_dir)
    if model.config.member_seeds:
        raise ModelError(f"{bundle.folder} is an ensemble: give its members end networks, then join them")
    if model.config.end_levels:
        raise ModelError(f"{bundle.folder} has an end network already")
    config = replace(model.config, end_levels=tuple(end_levels))
    trained = bundle.metadata.get("settings", {})
    names = read_aasce_folder(aasce_dir).filenames
    split_seed = trained.get("split_seed")
    train_idx, held_idx = split_indices(names, trained.get("holdout_fraction", 0.0),
                                        trained.get("seed", 0) if split_seed is None else split_seed)
    excluded = set(bundle.metadata.get("excluded_implausible_labels", []))
    train_idx = [i for i in train_idx if names[i] not in excluded][:trained.get("max_images") or None]
    if len(train_idx) != bundle.metadata.get("training_images"):
        raise ModelError(f"{aasce_dir} gives {len(train_idx)} training images where {bundle.folder} was trained "
                         f"on {bundle.metadata.get('training_images')}: give the folder it was trained on")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    data = load_training_images(aasce_dir, train_idx, config, out_dir / "cache-preprocessed.npz")
    trainer = Trainer(data, config, replace(settings, centre_epochs=0, corner_epochs=0), out_dir / "checkpoint.pt",
                      log)
    trainer.model.load_state_dict(model.state_dict(), strict=False)
    tuned = trainer.run()
    result = LandmarkModel(config)
    result.load_state_dict({**model.state_dict(), **{f"end_corner_net.{k}": v
                                                     for k, v in tuned.end_corner_net.state_dict().items()}})
    metadata = {**bundle.metadata, "end_network": {
        "trained": time.strftime("%Y-%m-%d"), "command": command, "from": str(bundle.folder),
        "from_settings_digest": bundle.digest, "end_levels": list(end_levels),
        "settings": {k: v for k, v in asdict(settings).items() if k.startswith("end_") or k == "seed"},
        "history": trainer.history, "training_minutes": round((time.time() - started) / 60, 1)}}
    if held_idx:
        with atomic_output(out_dir / "heldout.txt") as tmp:
            tmp.write_text("".join(f"{names[i]}\n" for i in held_idx))
    save_model(result.eval(), out_dir, metadata)
    return metadata
