"""The landmark model's folder: ``config.json`` + ``landmarks.pt`` + ``metadata.json`` +
``MODEL_CARD.md``, read and written through ``spine_analysis.ml.bundle``.

Besides the bundle's own checks, loading refuses weights whose shape models were never
fitted (a training run stopped before its end).
"""
from __future__ import annotations

from ...errors import ModelError
from ...ml.bundle import Bundle, NetworkBundle
from . import SHIPPED_DIR, WEIGHTS_ENV
from .config import LandmarkConfig
from .model import LandmarkModel

LANDMARK_MODEL = NetworkBundle("landmark model", "landmarks.pt", WEIGHTS_ENV, SHIPPED_DIR, LandmarkConfig,
                               LandmarkModel)
#: ``save_model(model, folder, metadata)``; ``resolve_weights(path=None)``: the folder to use, path else
#: $SPINE_ANALYSIS_LANDMARK_WEIGHTS else the shipped one.
save_model, resolve_weights = LANDMARK_MODEL.save, LANDMARK_MODEL.folder


def load_model(path=None) -> tuple[LandmarkModel, Bundle]:
    """The landmark model of folder ``path`` (see ``resolve_weights``) for inference on the CPU,
    in eval mode, with its bundle (config, metadata, digest)."""
    model, bundle = LANDMARK_MODEL.load(path)
    if not (model.centre_shape.modes.abs().sum() > 0 and model.corner_shape.modes.abs().sum() > 0
            and model.centre_prior[1].abs().sum() > 0):
        raise ModelError(f"the weights in {bundle.folder} have no fitted shape models: their training did not finish")
    return model, bundle
