"""Shared locations of the research data; tests that need it skip when it is absent."""
import pytest

from spine_analysis.datasets import aasce_dir


requires_aasce = pytest.mark.skipif(
    not (aasce_dir() / "filenames.csv").is_file(),
    reason=f"AASCE training data not found at {aasce_dir()} (set SPINE_AASCE_DIR to the folder "
           "holding images/, filenames.csv, landmarks.csv, angles.csv)")
