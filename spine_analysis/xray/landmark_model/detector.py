"""Landmark detection on one radiograph with a trained model (inference only)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ...ml.bundle import Bundle
from ..landmarks import SpineLandmarks
from ..quality import QualityFlag
from .model import Evidence, LandmarkModel
from .preprocess import to_working_image, working_scale
from .weights_io import load_model


@dataclass(frozen=True)
class Detection:
    """What one detection found: the landmarks (pixels), its time, the detector's own flags and
    what the networks saw (the spine check's input)."""

    landmarks: SpineLandmarks
    seconds: float
    flags: tuple[QualityFlag, ...] = ()
    evidence: Evidence | None = None


class LandmarkDetector:
    """A loaded model; ``detect`` maps a 2D radiograph (bright bone) to 68 corner landmarks.

    Corners are averaged over the image and its mirror image (see ``LandmarkModel.predict``).
    """

    def __init__(self, model: LandmarkModel, bundle: Bundle):
        self.model, self.bundle = model, bundle
        self.metadata, self.source = bundle.metadata, str(bundle.folder)

    @classmethod
    def load(cls, weights=None) -> "LandmarkDetector":
        """The model of folder ``weights`` (default: $SPINE_ANALYSIS_LANDMARK_WEIGHTS, else shipped)."""
        return cls(*load_model(weights))

    @property
    def version(self) -> str:
        """The model as a report names it: when and on what it was trained, and its settings digest."""
        return (f"landmark model trained {self.metadata.get('trained', '?')} "
                f"on {self.metadata.get('training_images', '?')} AASCE images, settings {self.bundle.digest}")

    def detect(self, pixels: np.ndarray) -> Detection:
        """The 68 corners of a radiograph (rows, cols; bright bone) in its pixels, with flags."""
        started = time.perf_counter()
        config = self.model.config
        work = torch.from_numpy(to_working_image(pixels, config))
        corners, evidence = self.model.predict(work[None, None])
        points = corners.numpy().astype(float) / working_scale(pixels.shape, config.working_height)
        landmarks = SpineLandmarks(points)
        return Detection(landmarks, time.perf_counter() - started,
                         tuple(self.framing_flags(landmarks, pixels.shape[0])), evidence)

    def framing_flags(self, landmarks: SpineLandmarks, image_height: int) -> list[QualityFlag]:
        """A flag when T1 or L5 lies more than ``framing_limit_sd`` standard deviations from
        where the training radiographs have it (as a share of the image height).

        The model names the levels partly from the framing it was trained on (T1 near the
        top, L5 near the bottom of the image), so such an image may have shifted levels; the
        model card gives the measured effect of reframing.
        """
        mean, spread = (self.model.centre_prior[k, :, 1].numpy() for k in (0, 1))
        y = landmarks.centres[:, 1] / image_height
        flags = []
        for k, level in ((0, "T1"), (len(y) - 1, "L5")):
            if spread[k] > 0 and abs(y[k] - mean[k]) > self.model.config.framing_limit_sd * spread[k]:
                flags.append(QualityFlag(
                    "framing", (level,),
                    f"{level} found at {y[k]:.0%} of the image height, where the training radiographs "
                    f"have it at {mean[k]:.0%} ± {spread[k]:.0%}: the radiograph is framed differently "
                    f"or the levels are shifted; check {level} before trusting the angles"))
        return flags
