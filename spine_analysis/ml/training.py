"""One training loop for every network: seeding, a cosine learning-rate schedule, a checkpoint
after every epoch (rerunning the same command resumes), and a loss history.

A network's own training module supplies what differs: its phases, each a set of parameters
to optimise, a number of epochs and a function that yields the loss of each batch of an epoch
(sampling, augmentation and the loss itself live there). ``train_network`` is the whole run for
a network trained in one phase on random samples (the CT networks): loop, metadata, model folder.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..io.atomic import atomic_output
from .bundle import BundleConfig, NetworkBundle


def cosine_lr(epoch: int, epochs: int, initial: float, final_fraction: float) -> float:
    """Cosine decay from ``initial`` (first epoch) to ``final_fraction * initial`` (last epoch)."""
    t = epoch / max(1, epochs - 1)
    return initial * (final_fraction + (1 - final_fraction) * 0.5 * (1 + np.cos(np.pi * t)))


@dataclass
class Phase:
    """Part of a training run: ``net``'s parameters optimised for ``epochs`` epochs.

    ``batch_losses()`` runs one epoch: it yields the loss tensor of each batch, and the loop
    back-propagates and steps before asking for the next."""

    name: str
    net: nn.Module
    epochs: int
    batch_losses: Callable[[], Iterator[torch.Tensor]]
    learning_rate: float | None = None              # None: the loop's own (fine-tuning asks for less)
    start: Callable[[], object] | None = None       # run once before the first epoch (not on resume):
                                                    # e.g. start ``net`` from another network's weights


class TrainingLoop:
    """Adam with a cosine schedule over phases run one after the other, checkpointed per epoch.

    The network is built by ``make_model`` after torch is seeded, so its initial weights follow
    from ``seed``. ``rng`` is the loop's numpy generator: a network's batch functions draw from
    it, so that a resumed run continues with the same random stream. ``fingerprint`` (config
    and settings as plain data) decides whether a checkpoint on disk belongs to this run.
    """

    def __init__(self, make_model: Callable[[], nn.Module], fingerprint: dict, seed: int, learning_rate: float,
                 final_lr_fraction: float, checkpoint_file=None, log: Callable[[str], object] = print):
        torch.manual_seed(seed)
        self.model, self.fingerprint = make_model(), fingerprint
        self.learning_rate, self.final_lr_fraction = learning_rate, final_lr_fraction
        self.checkpoint_file = Path(checkpoint_file) if checkpoint_file else None
        self.log = log
        self.rng = np.random.default_rng(seed)
        self.history: list[dict] = []

    def run(self, phases: Sequence[Phase]) -> list[dict]:
        """Train every phase not yet done; returns the history (one entry per epoch)."""
        resume = self._resume()
        for index, phase in enumerate(phases):
            if resume and index < resume["phase"]:
                continue
            learning_rate = phase.learning_rate or self.learning_rate
            optimizer = torch.optim.Adam(phase.net.parameters(), lr=learning_rate)
            first = 0
            if resume and index == resume["phase"] and resume["epoch"] > 0:
                optimizer.load_state_dict(resume["optimizer"])
                first = resume["epoch"]
            elif phase.start is not None and phase.epochs > 0:
                phase.start()
            for epoch in range(first, phase.epochs):
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(epoch, phase.epochs, learning_rate, self.final_lr_fraction)
                loss = self._epoch(phase, optimizer, f"{phase.name} step epoch {epoch + 1}/{phase.epochs}")
                self.history.append({"step": phase.name, "epoch": epoch + 1, "loss": loss})
                done = epoch + 1
                self._save(index + (done == phase.epochs), done % phase.epochs, optimizer)
        return self.history

    def _epoch(self, phase: Phase, optimizer, desc: str) -> float:
        phase.net.train()
        losses = []
        bar = tqdm(phase.batch_losses(), desc=desc, unit="batch", leave=False)
        for loss in bar:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        return float(np.mean(losses))

    def _save(self, phase: int, epoch: int, optimizer) -> None:
        if self.checkpoint_file is None:
            return
        state = {"phase": phase, "epoch": epoch, "model": self.model.state_dict(),
                 "optimizer": optimizer.state_dict(), "history": self.history,
                 "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                 "fingerprint": self.fingerprint}
        with atomic_output(self.checkpoint_file) as tmp:
            torch.save(state, tmp)

    def _resume(self) -> dict | None:
        if self.checkpoint_file is None or not self.checkpoint_file.exists():
            return None
        state = torch.load(self.checkpoint_file, map_location="cpu", weights_only=False)
        if state.get("fingerprint") != self.fingerprint:
            self.log(f"ignoring {self.checkpoint_file}: it was made with other settings")
            return None
        self.model.load_state_dict(state["model"])
        self.history = state["history"]
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.log(f"resuming from {self.checkpoint_file}: phase {state['phase']}, {state['epoch']} epochs done")
        return state


def sampled_batches(loop: TrainingLoop, items: Sequence, make_sample: Callable, batch_size: int, batches: int,
                    loss_fn: Callable) -> Callable[[], Iterator[torch.Tensor]]:
    """A ``Phase``'s ``batch_losses`` for networks trained on random samples of ``items``.

    Each of the ``batches`` batches draws ``batch_size`` items with the loop's generator (so a resumed
    run continues the same stream), makes each an (input, target) pair of arrays with
    ``make_sample(item, rng)``, and yields ``loss_fn`` of the loop's model on them (targets get a
    channel axis, as MONAI's losses expect)."""
    def epoch() -> Iterator[torch.Tensor]:
        for _ in range(batches):
            picks = loop.rng.integers(len(items), size=batch_size)
            samples = [make_sample(items[i], loop.rng) for i in picks]
            inputs = torch.from_numpy(np.stack([s[0] for s in samples]))
            targets = torch.from_numpy(np.stack([s[1] for s in samples]))[:, None]
            yield loss_fn(loop.model(inputs), targets)
    return epoch


@dataclass
class RunSettings:
    """What every run of ``train_network`` sets; a network's ``TrainSettings`` adds its sampling and
    augmentation (network shapes live in its config)."""

    epochs: int = 40
    batches_per_epoch: int = 50
    batch_size: int = 2
    learning_rate: float = 2e-3
    final_lr_fraction: float = 0.05
    seed: int = 0


def train_network(network: NetworkBundle, config: BundleConfig, settings: RunSettings, out, phase: str,
                  items: Sequence, make_sample: Callable, loss_fn: Callable, identity: dict, described: dict,
                  command: str = "", log: Callable[[str], object] = print) -> dict:
    """Train ``network.network_class(config)`` in one phase named ``phase`` on random samples of
    ``items`` (``sampled_batches``); writes the model folder ``out`` and returns its metadata.

    A checkpoint is kept in ``out`` after every epoch: rerunning the same command resumes, when
    config, settings and ``identity`` (what the items are, as plain data) are unchanged.
    ``described`` (what it was trained on) goes into the metadata."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = {"config": config.to_dict(), "settings": asdict(settings), **identity}
    loop = TrainingLoop(lambda: network.network_class(config), fingerprint, settings.seed, settings.learning_rate,
                        settings.final_lr_fraction, out / "checkpoint.pt", log)
    batches = sampled_batches(loop, items, make_sample, settings.batch_size, settings.batches_per_epoch, loss_fn)
    started = time.perf_counter()
    history = loop.run([Phase(phase, loop.model, settings.epochs, batches)])
    metadata = {
        "trained": date.today().isoformat(), "command": command,
        "training_minutes": round((time.perf_counter() - started) / 60, 1),
        **described, "settings": asdict(settings), "history": history,
    }
    network.save(loop.model, out, metadata)
    return metadata
