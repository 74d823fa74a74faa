"""The fracture model's folder: ``config.json`` + ``fracture.pt`` + ``metadata.json`` + ``MODEL_CARD.md``,
read and written through ``spine_analysis.ml.bundle``."""
from __future__ import annotations

from ...ml.bundle import NetworkBundle
from . import SHIPPED_DIR, WEIGHTS_ENV
from .config import FractureConfig
from .model import FractureNet

FRACTURE_MODEL = NetworkBundle("fracture model", "fracture.pt", WEIGHTS_ENV, SHIPPED_DIR, FractureConfig, FractureNet)
#: ``save_model(network, folder, metadata)``; ``load_model(path=None) -> (network, bundle)``, path
#: else $SPINE_ANALYSIS_FRACTURE_WEIGHTS else the shipped folder.
save_model, load_model = FRACTURE_MODEL.save, FRACTURE_MODEL.load
