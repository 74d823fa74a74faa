"""Training the body network on the CPU, and leave-one-scan-out training runs.

Each sample is one vertebra seen from a click: a seed drawn inside its body within
``seed_offset_mm`` of the body's centre, a crop around the seed turned, scaled and resampled
at 1 mm (Klein et al.'s translation, resampling and shape augmentation), HU scaled and shifted
(density-calibrated scans), sometimes with the trabecular interior thinned to as little as a third
of its HU (osteoporotic bone) or holding a simulated lytic or blastic focus (the paper's lesion
augmentation), sometimes coarsened along z (thick slices), sometimes with its surroundings set
to a constant (masked scans) or everything but the vertebra zeroed (finite-element inputs). The
target is that vertebra's shell and centrum; its neighbours are background. Some seeds are placed
where no body is (midway to the next labelled vertebra, i.e. in the disc, or 30-50 mm in front of
or beside the body), with an empty target, so that the network answers "no body here" rather than
segmenting the nearest one.
Loss: Dice (over the batch, so empty targets count) + cross-entropy (MONAI ``DiceCELoss``).

The loop itself (seeding, schedule, checkpoint per epoch, resume) is ``spine_analysis.ml.training``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from monai.losses import DiceCELoss

from ...ml.training import RunSettings, train_network
from ..augment import coarsen_z, osteoporotic, random_rotation, simulated_lesion, vertebra_only
from ..patches import OUTSIDE_HU, patch_grid
from .config import BodyConfig
from .data import Scan, VertebraLabels
from .model import CENTRUM, SHELL, network_input
from .weights_io import BODY_MODEL


@dataclass
class TrainSettings(RunSettings):
    """The run's settings and the body network's sampling and augmentation (shapes: ``BodyConfig``)."""

    batches_per_epoch: int = 60
    crop_xyz: tuple[int, int, int] = (80, 80, 48)
    seed_offset_mm: float = 9.0
    rotation_deg: float = 12.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    hu_scale_range: tuple[float, float] = (0.75, 1.25)
    hu_shift: float = 40.0
    coarse_chance: float = 0.3
    coarse_slice_mm: tuple[float, float] = (2.0, 3.5)
    masked_chance: float = 0.15
    negative_chance: float = 0.15      # seeds in a disc or soft tissue, where the answer is "no body"
    osteoporotic_chance: float = 0.3
    osteoporotic_factor: tuple[float, float] = (1 / 3, 1.0)   # trabecular HU scaled by this
    lesion_chance: float = 0.2         # half lytic, half blastic
    vertebra_only_chance: float = 0.3  # everything but the vertebra set to 0 (after the HU scaling): at 0.1 the
    #   held-out network found half of a zeroed-surroundings body and refused 13 of 14 clicks (model card)


def _seed_in_body(vertebra: VertebraLabels, rng: np.random.Generator, reach_mm: float) -> np.ndarray:
    """A point inside the body within ``reach_mm`` (per axis) of its centre: where a user clicks."""
    for _ in range(50):
        point = vertebra.centre_lps + rng.uniform(-reach_mm, reach_mm, 3)
        index = vertebra.body.TransformPhysicalPointToIndex(tuple(float(v) for v in point))
        if vertebra.body.GetPixel(index) > 0.5:
            return point
    return vertebra.centre_lps


def _seed_off_body(scan: Scan, vertebra: VertebraLabels, rng: np.random.Generator) -> np.ndarray:
    """A point where the answer is "no body": the disc towards a labelled neighbour, or soft tissue
    in front of or beside the body (never behind it, where the arch is, nor above or below)."""
    neighbours = [v for v in scan.vertebrae if v is not vertebra
                  and np.linalg.norm(v.centre_lps - vertebra.centre_lps) < 45]
    if neighbours and rng.random() < 0.5:
        other = neighbours[rng.integers(len(neighbours))]
        return (vertebra.centre_lps + other.centre_lps) / 2 + rng.uniform(-1.5, 1.5, 3)
    angle = rng.uniform(-np.pi, 0.2)           # LPS: -y is anterior, so angles from left via front to right
    distance = rng.uniform(30, 50)
    return vertebra.centre_lps + distance * np.array([np.cos(angle), np.sin(angle), 0.0])


def _mask_surroundings(hu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Everything outside an ellipsoid around the crop's centre set to one value, as masked scans are."""
    shape = np.array(hu.shape)
    radii = shape / 2 * rng.uniform(0.6, 1.0, 3)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    centre = (shape - 1) / 2
    outside = ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 \
        + ((x - centre[2]) / radii[2]) ** 2 > 1
    return np.where(outside, rng.choice([OUTSIDE_HU, 0.0, -1000.0]), hu)


def training_sample(scan: Scan, vertebra: VertebraLabels, rng: np.random.Generator, config: BodyConfig,
                    settings: TrainSettings) -> tuple[np.ndarray, np.ndarray]:
    """One augmented (2, z, y, x) input and its (z, y, x) class target."""
    negative = rng.random() < settings.negative_chance
    seed = _seed_off_body(scan, vertebra, rng) if negative else _seed_in_body(vertebra, rng, settings.seed_offset_mm)
    grid = patch_grid(seed, settings.crop_xyz, config.spacing_mm)
    transform = sitk.AffineTransform(3)
    transform.SetCenter([float(v) for v in seed])
    transform.SetMatrix(
        (random_rotation(rng, settings.rotation_deg) * rng.uniform(*settings.scale_range)).ravel().tolist())

    def resample(image, default):
        return sitk.GetArrayFromImage(sitk.Resample(image, grid, transform, sitk.sitkLinear, default,
                                                    sitk.sitkFloat32))

    hu = resample(scan.ct, OUTSIDE_HU)
    body, centrum = resample(vertebra.body, 0.0) > 0.5, resample(vertebra.centrum, 0.0) > 0.5
    if rng.random() < settings.lesion_chance:
        hu = simulated_lesion(hu, centrum, rng, rng.choice(["lytic", "blastic"]))
    if rng.random() < settings.osteoporotic_chance:
        hu = osteoporotic(hu, centrum, rng.uniform(*settings.osteoporotic_factor))
    if rng.random() < settings.coarse_chance:
        hu = coarsen_z(hu, rng.uniform(*settings.coarse_slice_mm))
    hu = hu * rng.uniform(*settings.hu_scale_range) + rng.uniform(-settings.hu_shift, settings.hu_shift)
    if rng.random() < settings.vertebra_only_chance:
        hu = vertebra_only(hu, (resample(vertebra.own_label, 0.0) > 0.5) | body, 0.0)
    elif rng.random() < settings.masked_chance:
        hu = _mask_surroundings(hu, rng)
    target = np.where(centrum, CENTRUM, np.where(body, SHELL, 0)).astype(np.int64)
    if negative:
        target[:] = 0
    seed_zyx = (np.array(settings.crop_xyz)[::-1] - 1) / 2.0
    return network_input(hu, seed_zyx, config), target


def train_body(scans: list[Scan], out, settings: TrainSettings, config: BodyConfig | None = None,
               command: str = "", log=print) -> dict:
    """Train on every vertebra of ``scans``; writes the model folder ``out`` and returns its metadata.

    A checkpoint is kept in ``out`` after every epoch: rerunning the same command resumes."""
    config = config or BodyConfig()
    vertebrae = [(scan, vertebra) for scan in scans for vertebra in scan.vertebrae]
    return train_network(BODY_MODEL, config, settings, out, "body", vertebrae,
                         lambda item, rng: training_sample(*item, rng, config, settings),
                         DiceCELoss(to_onehot_y=True, softmax=True, batch=True),
                         {"vertebrae": [f"{s.name} {v.level}" for s, v in vertebrae]},
                         {"training_vertebrae": [{"scan": s.name, "level": v.level, "labels": v.source}
                                                 for s, v in vertebrae]},
                         command, log)
