"""The fracture model's folder: ``config.json`` + ``fracture.pt`` + ``metadata.json`` + ``MODEL_CARD.md``,
read and written through ``spine_analysis.ml.bundle``."""
from __future__ import annotations

from pathlib import Path

from ...ml.bundle import Bundle, load_bundle, load_network, resolve_bundle_dir, save_bundle
from . import SHIPPED_DIR, WEIGHTS_ENV
from .config import FractureConfig
from .model import FractureNet

WEIGHTS_FILE = "fracture.pt"


def save_model(model: FractureNet, folder, metadata: dict) -> Path:
    """Write the network's config, weights and ``metadata`` into ``folder``; each file complete or absent."""
    return save_bundle(folder, model.config.to_dict(), model.state_dict(), metadata, WEIGHTS_FILE)


def load_model(path=None) -> tuple[FractureNet, Bundle]:
    """The fracture network of folder ``path`` (else $SPINE_ANALYSIS_FRACTURE_WEIGHTS, else the
    shipped one), in eval mode on the CPU, with its bundle."""
    bundle = load_bundle(resolve_bundle_dir(path, WEIGHTS_ENV, SHIPPED_DIR), WEIGHTS_FILE, "fracture model")
    return load_network(bundle, FractureConfig, FractureNet, "fracture model"), bundle
