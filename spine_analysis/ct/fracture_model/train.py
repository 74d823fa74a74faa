"""Training the fracture network on the CPU, with simulated compression fractures.

Each sample is a crop around one labelled vertebra (its centre moved up to ``centre_jitter_mm``)
on a 1 mm grid aligned with the patient's axes. The target labels every labelled vertebral body
in the crop: normal, or fractured when its grade (``data``) is mild or worse; the rest is
background. The vertebra the crop is built around is, with ``fracture_chance``, squeezed into a
simulated fracture (``spine_analysis.ct.deformity``: wedge, biconcave or crush, height loss drawn
from ``loss_range``) and labelled fractured; otherwise, with ``variation_chance``, squeezed by at
most ``variation_loss`` and kept normal, so that ordinary differences in height are not taken
for fractures. Then the paper's augmentations (noise, left-right flips) plus rotation, scaling,
HU scale and shift (calibrated scans) and thick slices.
Loss: Dice + cross-entropy (MONAI ``DiceCELoss``) over the batch.

The loop itself (seeding, schedule, checkpoint per epoch, resume) is ``spine_analysis.ml.training``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from monai.losses import DiceCELoss

from ...ml.training import RunSettings, train_network
from ..augment import coarsen_z, random_rotation
from ..deformity import SHAPES, Deformity, compress
from ..patches import OUTSIDE_HU, patch_grid, sample_patch
from .config import FractureConfig
from .data import GradedScan
from .model import FRACTURED, NORMAL, network_input
from .weights_io import FRACTURE_MODEL

#: The labelled crop is this much larger than the training crop, so rotations never reach past it.
MARGIN_VOX = 16
#: Vertebrae whose centres lie farther than this from the crop's centre are not looked at.
NEIGHBOUR_REACH_MM = 90.0


@dataclass
class TrainSettings(RunSettings):
    """The run's settings and the fracture network's sampling, simulation and augmentation (shapes:
    ``FractureConfig``)."""

    crop_xyz: tuple[int, int, int] = (72, 72, 88)
    centre_jitter_mm: float = 12.0
    fracture_chance: float = 0.5
    loss_range: tuple[float, float] = (0.2, 0.55)
    variation_chance: float = 0.5
    variation_loss: float = 0.1
    rotation_deg: float = 10.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    hu_scale_range: tuple[float, float] = (0.8, 1.2)
    hu_shift: float = 40.0
    noise_hu: float = 20.0
    coarse_chance: float = 0.3
    coarse_slice_mm: tuple[float, float] = (2.0, 3.5)


def _labelled_crop(case: GradedScan, index: int, centre: np.ndarray,
                   size_xyz) -> tuple[np.ndarray, np.ndarray, np.ndarray, sitk.Image]:
    """HU, class labels and the chosen vertebra's body on a 1 mm grid of ``size_xyz`` around ``centre``."""
    grid = patch_grid(centre, size_xyz, 1.0)
    hu = sample_patch(case.scan.ct, grid)
    labels = np.zeros(hu.shape, dtype=np.uint8)
    chosen = np.zeros(hu.shape, dtype=bool)
    for k, vertebra in enumerate(case.scan.vertebrae):
        if np.linalg.norm(vertebra.centre_lps - centre) > NEIGHBOUR_REACH_MM:
            continue
        body = sitk.GetArrayFromImage(sitk.Resample(vertebra.body, grid, sitk.Transform(), sitk.sitkLinear,
                                                    0.0, sitk.sitkFloat32)) > 0.5
        labels[body] = FRACTURED if case.fractured(k) else NORMAL
        if k == index:
            chosen = body
    return hu, labels, chosen, grid


def simulated_fracture(rng: np.random.Generator, settings: TrainSettings) -> Deformity:
    """A random fracture: any Genant shape, height loss in ``settings.loss_range``."""
    return Deformity(SHAPES[rng.integers(len(SHAPES))], float(rng.uniform(*settings.loss_range)))


def training_sample(case: GradedScan, index: int, rng: np.random.Generator, config: FractureConfig,
                    settings: TrainSettings) -> tuple[np.ndarray, np.ndarray]:
    """One augmented (1, z, y, x) input and its (z, y, x) class target."""
    vertebra = case.scan.vertebrae[index]
    centre = vertebra.centre_lps + rng.uniform(-settings.centre_jitter_mm, settings.centre_jitter_mm, 3)
    big_xyz = tuple(int(n) + 2 * MARGIN_VOX for n in settings.crop_xyz)
    hu, labels, chosen, big = _labelled_crop(case, index, centre, big_xyz)
    if chosen.any() and not case.fractured(index):
        if rng.random() < settings.fracture_chance:
            hu, (labels, chosen) = compress(hu, chosen, simulated_fracture(rng, settings), (labels, chosen))
            labels[chosen] = FRACTURED
        elif rng.random() < settings.variation_chance:
            shape = SHAPES[rng.integers(len(SHAPES))]
            hu, (labels,) = compress(hu, chosen, Deformity(shape, float(rng.uniform(0, settings.variation_loss))),
                                     (labels,))

    grid = patch_grid(centre, settings.crop_xyz, config.spacing_mm)
    transform = sitk.AffineTransform(3)
    transform.SetCenter([float(v) for v in centre])
    transform.SetMatrix((random_rotation(rng, settings.rotation_deg) * rng.uniform(*settings.scale_range))
                        .ravel().tolist())

    def resample(values: np.ndarray, interpolator, default, pixel):
        image = sitk.GetImageFromArray(values)
        image.CopyInformation(big)
        return sitk.GetArrayFromImage(sitk.Resample(image, grid, transform, interpolator, default, pixel))

    hu = resample(hu.astype(np.float32), sitk.sitkLinear, OUTSIDE_HU, sitk.sitkFloat32)
    target = resample(labels, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8).astype(np.int64)
    if rng.random() < settings.coarse_chance:
        hu = coarsen_z(hu, rng.uniform(*settings.coarse_slice_mm))
    hu = hu * rng.uniform(*settings.hu_scale_range) + rng.uniform(-settings.hu_shift, settings.hu_shift)
    hu = hu + rng.normal(0, rng.uniform(0, settings.noise_hu), hu.shape)
    if rng.random() < 0.5:   # left-right flip; front-back and head-feet flips would change Genant's shapes
        hu, target = hu[:, :, ::-1], target[:, :, ::-1]
    return network_input(np.ascontiguousarray(hu), config), np.ascontiguousarray(target)


def train_fracture(cases: list[GradedScan], out, settings: TrainSettings, config: FractureConfig | None = None,
                   command: str = "", log=print) -> dict:
    """Train on every vertebra of ``cases``; writes the model folder ``out`` and returns its metadata.

    A checkpoint is kept in ``out`` after every epoch: rerunning the same command resumes."""
    config = config or FractureConfig()
    vertebrae = [(case, k) for case in cases for k, v in enumerate(case.scan.vertebrae) if not v.cut_by_edge]
    return train_network(FRACTURE_MODEL, config, settings, out, "fracture", vertebrae,
                         lambda item, rng: training_sample(*item, rng, config, settings),
                         DiceCELoss(to_onehot_y=True, softmax=True, batch=True),
                         {"vertebrae": [f"{c.scan.name} {c.scan.vertebrae[k].level} {c.grades[k]}"
                                        for c, k in vertebrae]},
                         {"training_vertebrae": [{"scan": c.scan.name, "level": c.scan.vertebrae[k].level,
                                                  "grade": c.grades[k], "labels": c.scan.vertebrae[k].source}
                                                 for c, k in vertebrae]},
                         command, log)
