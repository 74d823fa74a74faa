"""The networks a cohort task runs, where their folders are, and one digest naming them all.

A ledger row records the digest of the model folders that produced it, so a rerun with other
weights (retrained, or another ``--*-weights`` folder) measures every study again. The digest is
over every file of each folder but its model card (config, weights, metadata): two trainings with
the same settings still differ. Nothing here imports torch; folders are found as the networks'
own loaders find them (option, else environment variable, else the shipped folder).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import SpineAnalysisError
from ..ct import body_model, fracture_model
from ..xray import landmark_model

#: kind -> the package naming its environment variable and shipped folder.
_PACKAGES = {"landmark": landmark_model, "body": body_model, "fracture": fracture_model}


def task_models(task: str, has_centroids: bool) -> tuple[str, ...]:
    """The kinds of network ``task`` runs on a study (``centra`` without centroids finds the
    vertebrae with the fracture classifier first)."""
    if task == "cobb":
        return ("landmark",)
    if task == "fracture":
        return ("fracture", "body")
    return ("body",) if has_centroids else ("fracture", "body")


def model_folder(kind: str, given=None) -> Path:
    """The folder the ``kind`` network loads from: ``given``, else its environment variable, else shipped."""
    package = _PACKAGES[kind]
    chosen = Path(given or os.environ.get(package.WEIGHTS_ENV) or package.SHIPPED_DIR)
    return chosen.parent if chosen.is_file() else chosen


def worker_weights(weights: dict[str, str | None]) -> dict[str, str | None]:
    """The folders to send to the workers: those named by an option or an environment variable on this
    machine, as absolute paths (a worker elsewhere sees the same shared path); None for the shipped
    ones, which each worker takes from its own installation."""
    chosen = {}
    for kind, package in _PACKAGES.items():
        given = weights.get(kind) or os.environ.get(package.WEIGHTS_ENV)
        chosen[kind] = str(Path(given).resolve()) if given else None
    return chosen


def folder_digest(folder: Path) -> str:
    """The sha256 (16 hex digits) of a model folder's files, model card aside."""
    if not folder.is_dir():
        raise SpineAnalysisError(f"model folder {folder} not found")
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() != ".md"):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def models_digest(kinds, weights: dict[str, str | None]) -> str:
    """One text naming the networks ``kinds`` of ``weights`` (kind -> folder or None): ``kind:digest``
    joined by spaces, so a reader of the ledger sees which network changed."""
    return " ".join(f"{kind}:{folder_digest(model_folder(kind, weights.get(kind)))}" for kind in kinds)
