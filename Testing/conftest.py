"""Shared locations of the research data; tests that need it skip when it is absent."""
import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def aasce_dir() -> Path:
    return Path(os.environ.get("SPINE_AASCE_DIR", SHARED / "aasce16" / "train"))


requires_aasce = pytest.mark.skipif(
    not (aasce_dir() / "filenames.csv").is_file(),
    reason=f"AASCE training data not found at {aasce_dir()} (set SPINE_AASCE_DIR to the folder "
           "holding images/, filenames.csv, landmarks.csv, angles.csv)")
