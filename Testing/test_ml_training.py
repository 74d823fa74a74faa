"""The shared training loop (spine_analysis.ml.training) on a problem with a known answer."""
import pytest
import torch

from spine_analysis.ml.training import Phase, TrainingLoop, cosine_lr

TRUE_WEIGHT = torch.tensor([[2.0, -1.0]])


def _loop(tmp_path, logs, seed=0, fingerprint=None):
    return TrainingLoop(lambda: torch.nn.Linear(2, 1, bias=False), fingerprint or {"task": "line"}, seed,
                        learning_rate=0.1, final_lr_fraction=0.1, checkpoint_file=tmp_path / "checkpoint.pt",
                        log=logs.append)


def _phase(loop, epochs):
    def batch_losses():
        for _ in range(8):
            x = torch.from_numpy(loop.rng.normal(size=(16, 2))).float()
            yield ((loop.model(x) - x @ TRUE_WEIGHT.T) ** 2).mean()
    return Phase("fit", loop.model, epochs, batch_losses)


def test_cosine_schedule_runs_from_the_initial_to_the_final_rate():
    assert cosine_lr(0, 10, 1e-3, 0.05) == pytest.approx(1e-3)
    assert cosine_lr(9, 10, 1e-3, 0.05) == pytest.approx(5e-5)
    assert cosine_lr(0, 10, 1e-3, 0.05) > cosine_lr(4, 10, 1e-3, 0.05) > cosine_lr(9, 10, 1e-3, 0.05)


def test_loop_learns_records_history_and_resumes_instead_of_retraining(tmp_path):
    logs = []
    loop = _loop(tmp_path, logs)
    history = loop.run([_phase(loop, 30)])
    assert [h["epoch"] for h in history] == list(range(1, 31))
    assert history[-1]["loss"] < 0.01 * history[0]["loss"]
    torch.testing.assert_close(loop.model.weight.detach(), TRUE_WEIGHT, atol=0.05, rtol=0)
    # The same run again resumes from its finished checkpoint: same weights, no new epochs.
    again = _loop(tmp_path, logs)
    assert len(again.run([_phase(again, 30)])) == 30
    assert any("resuming" in line for line in logs)
    torch.testing.assert_close(again.model.weight, loop.model.weight)


def test_a_checkpoint_of_other_settings_is_ignored(tmp_path):
    logs = []
    loop = _loop(tmp_path, logs)
    loop.run([_phase(loop, 2)])
    other = _loop(tmp_path, logs, fingerprint={"task": "other"})
    assert len(other.run([_phase(other, 3)])) == 3
    assert any("ignoring" in line for line in logs)


def test_the_seed_fixes_the_initial_weights():
    first = TrainingLoop(lambda: torch.nn.Linear(4, 3), {}, 5, 0.1, 0.1).model.weight
    second = TrainingLoop(lambda: torch.nn.Linear(4, 3), {}, 5, 0.1, 0.1).model.weight
    third = TrainingLoop(lambda: torch.nn.Linear(4, 3), {}, 6, 0.1, 0.1).model.weight
    assert torch.equal(first, second) and not torch.equal(first, third)


def test_a_phase_can_start_from_another_networks_weights_with_its_own_rate_also_when_resumed(tmp_path):
    """A fine-tuning phase: ``start`` copies the first network into the second before its first epoch
    (also when a run stopped between the two phases is resumed), at the phase's own learning rate."""
    def make():
        return torch.nn.ModuleDict({"a": torch.nn.Linear(2, 1, bias=False), "b": torch.nn.Linear(2, 1, bias=False)})

    def phases(loop, rate):
        def losses(net):
            def batch_losses():
                for _ in range(8):
                    x = torch.from_numpy(loop.rng.normal(size=(16, 2))).float()
                    yield ((net(x) - x @ TRUE_WEIGHT.T) ** 2).mean()
            return batch_losses
        a, b = loop.model["a"], loop.model["b"]
        return [Phase("a", a, 20, losses(a)),
                Phase("b", b, 2, losses(b), rate, lambda: b.load_state_dict(a.state_dict()))]

    for stop_between in (False, True):
        folder = tmp_path / str(stop_between)
        folder.mkdir()
        loop = TrainingLoop(make, {}, 0, 0.1, 0.1, folder / "checkpoint.pt", log=lambda line: None)
        if stop_between:
            loop.run(phases(loop, 1e-9)[:1])
            loop = TrainingLoop(make, {}, 0, 0.1, 0.1, folder / "checkpoint.pt", log=lambda line: None)
        loop.run(phases(loop, 1e-9))
        torch.testing.assert_close(loop.model["a"].weight.detach(), TRUE_WEIGHT, atol=0.05, rtol=0)
        torch.testing.assert_close(loop.model["b"].weight, loop.model["a"].weight, atol=1e-6, rtol=0)
