"""Landmark detection on one radiograph with a trained model (inference only)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..landmarks import SpineLandmarks
from .model import LandmarkModel
from .preprocess import to_working_image, working_scale
from .weights_io import load_model, resolve_weights


@dataclass(frozen=True)
class Detection:
    landmarks: SpineLandmarks
    seconds: float


class LandmarkDetector:
    """A loaded model; ``detect`` maps a 2D radiograph (bright bone) to 68 corner landmarks.

    Corners are averaged over the image and its mirror image (see ``LandmarkModel.predict``).
    """

    def __init__(self, model: LandmarkModel, metadata: dict, source: str):
        self.model, self.metadata, self.source = model, metadata, source

    @classmethod
    def load(cls, weights=None) -> "LandmarkDetector":
        model, metadata = load_model(weights)
        return cls(model, metadata, str(resolve_weights(weights)))

    @property
    def version(self) -> str:
        return (f"landmark model trained {self.metadata.get('trained', '?')} "
                f"on {self.metadata.get('training_images', '?')} AASCE images")

    def detect(self, pixels: np.ndarray) -> Detection:
        started = time.perf_counter()
        height = self.model.config.working_height
        work = torch.from_numpy(to_working_image(pixels, height))
        corners = self.model.predict(work[None, None])
        points = corners.numpy().astype(float) / working_scale(pixels.shape, height)
        return Detection(SpineLandmarks(points), time.perf_counter() - started)
