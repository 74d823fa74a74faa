"""The model bundle every network is saved and loaded with (spine_analysis.ml.bundle)."""
import json

import pytest
import torch

from spine_analysis.errors import ModelError
from spine_analysis.ml.bundle import (CONFIG_FILE, METADATA_FILE, load_bundle, resolve_bundle_dir, save_bundle,
                                      settings_digest)


def _state():
    net = torch.nn.Conv3d(1, 2, 3)
    torch.nn.init.constant_(net.weight, 0.125)
    return {**net.state_dict(), "steps": torch.tensor([3, 4])}


def test_bundle_round_trip_keeps_weights_config_and_metadata_apart(tmp_path):
    config = {"features": [8, 16], "threshold": 0.2}
    save_bundle(tmp_path, config, _state(), {"trained": "today", "history": [1.5, 0.5]}, "net.pt")
    assert json.loads((tmp_path / CONFIG_FILE).read_text()) == config
    metadata = json.loads((tmp_path / METADATA_FILE).read_text())
    assert metadata["trained"] == "today" and metadata["settings_digest"] == settings_digest(config)
    stored = torch.load(tmp_path / "net.pt", weights_only=True)
    assert set(stored) == {"weight", "bias", "steps"} and stored["weight"].dtype == torch.float16
    bundle = load_bundle(tmp_path, "net.pt", "test model")
    assert bundle.config == config and bundle.metadata["history"] == [1.5, 0.5]
    assert bundle.state["weight"].dtype == torch.float32 and bundle.state["steps"].tolist() == [3, 4]
    torch.testing.assert_close(bundle.state["weight"], torch.full((2, 1, 3, 3, 3), 0.125))
    assert bundle.digest == settings_digest(config)


def test_digest_changes_with_any_setting_and_not_with_key_order():
    assert settings_digest({"a": 1, "b": 2}) == settings_digest({"b": 2, "a": 1})
    assert settings_digest({"a": 1, "b": 2}) != settings_digest({"a": 1, "b": 2.5})


def test_a_changed_config_or_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ModelError, match="no test model in .*config.json, net.pt, metadata.json missing"):
        load_bundle(tmp_path, "net.pt", "test model")
    save_bundle(tmp_path, {"threshold": 0.2}, _state(), {}, "net.pt")
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"threshold": 0.3}))
    with pytest.raises(ModelError, match="settings were changed after training"):
        load_bundle(tmp_path, "net.pt", "test model")
    (tmp_path / METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="cannot read the test model"):
        load_bundle(tmp_path, "net.pt", "test model")


def test_explicit_path_then_environment_then_shipped(tmp_path, monkeypatch):
    shipped, chosen, from_env = (tmp_path / name for name in ("shipped", "chosen", "env"))
    for folder in (shipped, chosen, from_env):
        folder.mkdir()
    (chosen / "net.pt").write_bytes(b"")
    monkeypatch.delenv("TEST_WEIGHTS", raising=False)
    assert resolve_bundle_dir(None, "TEST_WEIGHTS", shipped) == shipped
    monkeypatch.setenv("TEST_WEIGHTS", str(from_env))
    assert resolve_bundle_dir(None, "TEST_WEIGHTS", shipped) == from_env
    assert resolve_bundle_dir(chosen, "TEST_WEIGHTS", shipped) == chosen
    assert resolve_bundle_dir(chosen / "net.pt", "TEST_WEIGHTS", shipped) == chosen
