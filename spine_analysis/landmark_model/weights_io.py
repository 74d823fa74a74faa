"""Saving and loading a trained landmark model: ``config.json`` + ``landmarks.pt`` + ``MODEL_CARD.md``.

The weights file records a digest of the config it was trained with; ``load_cascade`` refuses
a weights file whose config does not match, so a stray file cannot silently give nonsense.
Weights are stored as float16 to keep the shipped package small; they load as float32.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..errors import ModelError
from ..io import atomic_output
from .model import LandmarkConfig, LandmarkModel

WEIGHTS_ENV = "SPINE_ANALYSIS_LANDMARK_WEIGHTS"
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
WEIGHTS_FILE = "landmarks.pt"
CONFIG_FILE = "config.json"
CARD_FILE = "MODEL_CARD.md"


def config_digest(config: LandmarkConfig) -> str:
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def save_model(model: LandmarkModel, folder, metadata: dict) -> Path:
    """Write config, weights (with metadata) into ``folder``; each file complete or absent."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    payload = {"config_digest": config_digest(model.config), "metadata": metadata, "state": state}
    with atomic_output(folder / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    with atomic_output(folder / WEIGHTS_FILE) as tmp:
        torch.save(payload, tmp)
    return folder


def resolve_weights(path=None) -> Path:
    """The model folder to use: an explicit path, else $SPINE_ANALYSIS_LANDMARK_WEIGHTS, else shipped."""
    chosen = path or os.environ.get(WEIGHTS_ENV) or SHIPPED_DIR
    chosen = Path(chosen)
    return chosen.parent if chosen.is_file() else chosen


def load_model(path=None) -> tuple[LandmarkModel, dict]:
    """Load a landmark model for inference (CPU, eval mode) and its metadata."""
    folder = resolve_weights(path)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not weights_path.is_file() or not config_path.is_file():
        raise ModelError(f"no landmark model in {folder}: expected {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = LandmarkConfig.from_dict(json.loads(config_path.read_text()))
        payload = torch.load(weights_path, map_location="cpu", weights_only=True)
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelError(f"cannot read the landmark model in {folder}: {exc}") from None
    if payload.get("config_digest") != config_digest(config):
        raise ModelError(f"{weights_path} was not trained with {config_path}: config mismatch")
    model = LandmarkModel(config)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in payload["state"].items()})
    except (KeyError, RuntimeError) as exc:
        raise ModelError(f"{weights_path} does not fit the network in {config_path}: {exc}") from None
    if not (model.centre_shape.modes.abs().sum() > 0 and model.corner_shape.modes.abs().sum() > 0
            and model.centre_prior[1].abs().sum() > 0):
        raise ModelError(f"{weights_path} has no fitted shape models: its training did not finish")
    model.eval()
    return model, payload.get("metadata", {})
