"""Where the research data are looked for (spine_analysis.datasets)."""
from spine_analysis.datasets import SHARED_DATASETS, aasce_dir, ct_dir


def test_environment_variables_win_over_the_shared_copies(tmp_path, monkeypatch):
    monkeypatch.setenv("SPINE_AASCE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("SPINE_CT_DIR", str(tmp_path / "c"))
    assert (aasce_dir(), ct_dir()) == (tmp_path / "a", tmp_path / "c")
    monkeypatch.delenv("SPINE_AASCE_DIR")
    monkeypatch.delenv("SPINE_CT_DIR")
    assert aasce_dir() == SHARED_DATASETS / "aasce16" / "train"
    assert ct_dir() == SHARED_DATASETS / "ct-spine"
