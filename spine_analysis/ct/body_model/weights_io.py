"""The body model's folder: ``config.json`` + ``body.pt`` + ``metadata.json`` + ``MODEL_CARD.md``,
read and written through ``spine_analysis.ml.bundle``."""
from __future__ import annotations

from ...ml.bundle import NetworkBundle
from . import SHIPPED_DIR, WEIGHTS_ENV
from .config import BodyConfig
from .model import BodyNet

BODY_MODEL = NetworkBundle("body model", "body.pt", WEIGHTS_ENV, SHIPPED_DIR, BodyConfig, BodyNet)
#: ``save_model(network, folder, metadata)``; ``load_model(path=None) -> (network, bundle)``, path
#: else $SPINE_ANALYSIS_BODY_WEIGHTS else the shipped folder.
save_model, load_model = BODY_MODEL.save, BODY_MODEL.load
