"""An ensemble landmark model: the networks of several models trained on the same images with
different seeds, in one model folder.

Each member is trained on its own (``train-landmarks --seed K``, resumable, one core each); this
module joins finished members. Both steps then answer with the mean heatmap of their members
(``ml.inference.MeanOfNetworks``) before peaks are taken, so the level assignment and the corner
read-out see one averaged heatmap instead of voting over answers. The config names every member
by its seed (``member_seeds``), so the settings digest names the ensemble. The shape models are
fitted to the training spines alone, so members trained on the same images share them; members
trained on different images or with different settings are refused.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from ...errors import ModelError
from ...io.atomic import atomic_output
from .model import LandmarkModel
from .weights_io import LANDMARK_MODEL, load_model, save_model

HELDOUT_FILE = "heldout.txt"
SHARED_BUFFERS = ("centre_shape.", "corner_shape.", "centre_prior")


def _check_same_training(models, bundles) -> None:
    """Refuse members that differ in anything but their seed."""
    first, first_bundle = models[0], bundles[0]
    for model, bundle in zip(models, bundles):
        if model.config.member_seeds:
            raise ModelError(f"{bundle.folder} is an ensemble already: join single models")
    for model, bundle in zip(models[1:], bundles[1:]):
        if model.config != first.config:
            raise ModelError(f"{bundle.folder} has other settings than {first_bundle.folder}: "
                             "ensemble members must differ only in their seed")
        held = [(b.folder / HELDOUT_FILE).read_text() if (b.folder / HELDOUT_FILE).exists() else ""
                for b in (first_bundle, bundle)]
        same_images = (held[0] == held[1] and bundle.metadata.get("training_images")
                       == first_bundle.metadata.get("training_images"))
        theirs, ours = model.state_dict(), first.state_dict()
        if not same_images or not all(torch.allclose(theirs[k], ours[k], atol=1e-3)
                                      for k in ours if k.startswith(SHARED_BUFFERS)):
            raise ModelError(f"{bundle.folder} was trained on other images than {first_bundle.folder} "
                             "(another held-out split or training folder)")
    seeds = [b.metadata.get("settings", {}).get("seed") for b in bundles]
    if None in seeds or len(set(seeds)) != len(seeds):
        raise ModelError(f"ensemble members need distinct recorded seeds, found {seeds}")


def join_members(member_dirs, out_dir, command: str = "") -> dict:
    """Write the ensemble of the single models in ``member_dirs`` into ``out_dir`` (which must not
    hold a model yet); returns its metadata. The held-out list, if the members have one, goes along."""
    if len(member_dirs) < 2:
        raise ModelError("an ensemble joins at least two trained models")
    out_dir = Path(out_dir)
    if (out_dir / LANDMARK_MODEL.weights_file).exists():
        raise ModelError(f"{out_dir} already holds a landmark model: choose an empty folder")
    loaded = [load_model(folder) for folder in member_dirs]
    models, bundles = [m for m, _ in loaded], [b for _, b in loaded]
    _check_same_training(models, bundles)
    seeds = tuple(int(b.metadata["settings"]["seed"]) for b in bundles)
    ensemble = LandmarkModel(dataclasses.replace(models[0].config, member_seeds=seeds))
    state = {k: v for k, v in models[0].state_dict().items() if k.startswith(SHARED_BUFFERS)}
    for k, model in enumerate(models):
        for net in ("centre_net", "corner_net", *(("end_corner_net",) if ensemble.config.end_levels else ())):
            state.update({f"{net}.members.{k}.{name}": value
                          for name, value in getattr(model, net).state_dict().items()})
    ensemble.load_state_dict(state)
    first = bundles[0].metadata
    metadata = {
        "trained": time.strftime("%Y-%m-%d"), "command": command,
        **{key: first[key] for key in ("training_images", "excluded_implausible_labels", "heldout_images", "split")
           if key in first},
        "members": [{"folder": str(b.folder), "seed": seed, "trained": b.metadata.get("trained"),
                     "command": b.metadata.get("command"), "training_minutes": b.metadata.get("training_minutes"),
                     "settings_digest": b.digest} for b, seed in zip(bundles, seeds)],
        "training_minutes": round(sum(b.metadata.get("training_minutes", 0) for b in bundles), 1),
    }
    held = bundles[0].folder / HELDOUT_FILE
    if held.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(out_dir / HELDOUT_FILE) as tmp:
            tmp.write_text(held.read_text())
    save_model(ensemble, out_dir, metadata)
    return metadata
