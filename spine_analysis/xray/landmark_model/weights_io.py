"""The landmark model's folder: ``config.json`` + ``landmarks.pt`` + ``metadata.json`` +
``MODEL_CARD.md``, read and written through ``spine_analysis.ml.bundle``.

Besides the bundle's own checks, loading refuses weights whose shape models were never
fitted (a training run stopped before its end).
"""
from __future__ import annotations

from pathlib import Path

from ...errors import ModelError
from ...ml.bundle import Bundle, load_bundle, load_network, resolve_bundle_dir, save_bundle
from . import SHIPPED_DIR, WEIGHTS_ENV
from .config import LandmarkConfig
from .model import LandmarkModel

WEIGHTS_FILE = "landmarks.pt"


def save_model(model: LandmarkModel, folder, metadata: dict) -> Path:
    """Write the model's config, weights and ``metadata`` into ``folder``; each file complete or absent."""
    return save_bundle(folder, model.config.to_dict(), model.state_dict(), metadata, WEIGHTS_FILE)


def resolve_weights(path=None) -> Path:
    """The model folder to use: an explicit path, else $SPINE_ANALYSIS_LANDMARK_WEIGHTS, else shipped."""
    return resolve_bundle_dir(path, WEIGHTS_ENV, SHIPPED_DIR)


def load_model(path=None) -> tuple[LandmarkModel, Bundle]:
    """The landmark model of folder ``path`` (see ``resolve_weights``) for inference on the CPU,
    in eval mode, with its bundle (config, metadata, digest)."""
    bundle = load_bundle(resolve_weights(path), WEIGHTS_FILE, "landmark model")
    model = load_network(bundle, LandmarkConfig, LandmarkModel, "landmark model")
    if not (model.centre_shape.modes.abs().sum() > 0 and model.corner_shape.modes.abs().sum() > 0
            and model.centre_prior[1].abs().sum() > 0):
        raise ModelError(f"the weights in {bundle.folder} have no fitted shape models: their training did not finish")
    return model, bundle
