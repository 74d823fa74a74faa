"""A trained model travels as one folder, read and written only here:

- ``config.json``: every setting that changes a prediction (network shapes, preprocessing,
  thresholds), as the network's config dataclass writes it;
- the weights file: the network's state dict alone (floats stored as float16 to keep the
  package small, loaded as float32);
- ``metadata.json``: how it was trained (date, command, data, history) and ``settings_digest``,
  the digest of ``config.json`` it was trained with;
- ``MODEL_CARD.md``: what it was trained on and how well it does, for people.

A folder whose ``config.json`` no longer matches its digest is refused, so an edited or stray
file cannot silently give other predictions; the digest also names the settings in reports.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import ModelError
from ..io.atomic import atomic_output, write_json

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"


def settings_digest(config: dict) -> str:
    """A short digest of a config dict: equal digests, equal settings."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def resolve_bundle_dir(path, environment_variable: str, shipped: Path) -> Path:
    """The model folder to use: ``path`` if given, else ``$environment_variable``, else ``shipped``.

    A path to a file inside the folder (say the weights) names its folder."""
    chosen = Path(path or os.environ.get(environment_variable) or shipped)
    return chosen.parent if chosen.is_file() else chosen


@dataclass(frozen=True)
class Bundle:
    """A loaded model folder: its config dict, float32 state dict and metadata."""

    folder: Path
    config: dict
    state: dict[str, torch.Tensor]
    metadata: dict

    @property
    def digest(self) -> str:
        return self.metadata["settings_digest"]


def save_bundle(folder, config: dict, state: dict[str, torch.Tensor], metadata: dict,
                weights_file: str) -> Path:
    """Write config, weights and metadata (with the settings digest) into ``folder``.

    Each file is complete or absent; the model card is written by people, not here."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    half = {k: (v.detach().half() if v.is_floating_point() else v.detach()) for k, v in state.items()}
    write_json(config, folder / CONFIG_FILE)
    with atomic_output(folder / weights_file) as tmp:
        torch.save(half, tmp)
    write_json({**metadata, "settings_digest": settings_digest(config)}, folder / METADATA_FILE)
    return folder


def load_bundle(folder, weights_file: str, what: str) -> Bundle:
    """Read a model folder written by ``save_bundle``; ``what`` names the model in messages.

    Raises ``ModelError`` when a file is missing or unreadable or the config was changed
    after training."""
    folder = Path(folder)
    paths = [folder / name for name in (CONFIG_FILE, weights_file, METADATA_FILE)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ModelError(f"no {what} in {folder}: {', '.join(missing)} missing "
                         f"(a model folder holds {CONFIG_FILE}, {weights_file} and {METADATA_FILE})")
    config_path, weights_path, metadata_path = paths
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except (OSError, ValueError, TypeError, RuntimeError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the {what} in {folder}: {exc}") from None
    if not (isinstance(config, dict) and isinstance(metadata, dict) and isinstance(state, dict)):
        raise ModelError(f"the {what} in {folder} is not a model folder written by spine-analysis")
    if metadata.get("settings_digest") != settings_digest(config):
        raise ModelError(f"{weights_path} was not trained with {config_path}: its settings were changed "
                         "after training (digest mismatch)")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return Bundle(folder, config, state, metadata)


def update_settings(folder, changes: dict, note: str) -> dict:
    """Change settings of a trained model folder that do not touch its weights (a calibration fitted
    after training, a threshold): ``config.json`` rewritten with ``changes``, its digest renewed in
    ``metadata.json`` and ``note`` appended to the metadata's ``settings_changes``. Both files complete
    or as they were; returns the new config."""
    folder = Path(folder)
    config = {**json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")), **changes}
    metadata = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    metadata["settings_changes"] = [*metadata.get("settings_changes", []),
                                    {"changes": changes, "note": note, "digest": settings_digest(config)}]
    metadata["settings_digest"] = settings_digest(config)
    write_json(config, folder / CONFIG_FILE)
    write_json(metadata, folder / METADATA_FILE)
    return config


class BundleConfig:
    """Base of a network's frozen config dataclass: to and from the bundle's ``config.json``.

    A ``config.json`` that lacks a setting gets its default (the value older models ran with);
    an unknown key raises ``TypeError`` (a config of another model)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TypeError(f"unknown settings {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class NetworkBundle:
    """One network's model folder: where it is found and what it holds. A network's ``weights_io``
    declares one, so every network is saved and loaded the same way.

    ``what`` names the model in messages; ``environment_variable`` names another folder than
    ``shipped``; ``network_class(config)`` builds the network from its ``config_class``."""

    what: str
    weights_file: str
    environment_variable: str
    shipped: Path
    config_class: type
    network_class: Callable[..., nn.Module]

    def folder(self, path=None) -> Path:
        """The folder to use: ``path``, else ``$environment_variable``, else the shipped one."""
        return resolve_bundle_dir(path, self.environment_variable, self.shipped)

    def save(self, network: nn.Module, folder, metadata: dict) -> Path:
        """Write the network's config, weights and ``metadata`` into ``folder``; each file complete or absent."""
        return save_bundle(folder, network.config.to_dict(), network.state_dict(), metadata, self.weights_file)

    def load(self, path=None) -> tuple[nn.Module, Bundle]:
        """The network of folder ``path`` (see ``folder``) in eval mode on the CPU, with its bundle.
        Raises ``ModelError`` when the folder, its config or its weights do not fit this network."""
        bundle = load_bundle(self.folder(path), self.weights_file, self.what)
        try:
            config = self.config_class.from_dict(bundle.config)
        except TypeError as exc:
            raise ModelError(f"{bundle.folder} does not hold a {self.what} config: {exc}") from None
        network = self.network_class(config)
        try:
            network.load_state_dict(bundle.state)
        except RuntimeError as exc:
            raise ModelError(f"the weights in {bundle.folder} do not fit the network of its config: {exc}") from None
        return network.eval(), bundle
