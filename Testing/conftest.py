"""Shared locations of the research data (tests that need it skip when it is absent), and the fixtures of the
real-MRML suite in Testing/slicer (Slicer's core with the stand-ins of Testing/slicer/harness.py)."""
import sys
from pathlib import Path

import pytest

from spine_analysis.datasets import aasce_dir

sys.path.insert(0, str(Path(__file__).resolve().parent / "slicer"))
import harness  # noqa: E402  (imports nothing of Slicer until a test asks for the app)

requires_aasce = pytest.mark.skipif(
    not (aasce_dir() / "filenames.csv").is_file(),
    reason=f"AASCE training data not found at {aasce_dir()} (set SPINE_AASCE_DIR to the folder "
           "holding images/, filenames.csv, landmarks.csv, angles.csv)")


@pytest.fixture(scope="session")
def app():
    """slicer.app of the harness, set up once per test process; skips when Slicer's core is not here. At the end
    of the session its engine processes end and its temporary folder is removed."""
    reason = harness.unavailableReason()
    if reason:
        pytest.skip(f"Slicer's MRML is not available: {reason}")
    yield harness.start()
    harness.stop()


@pytest.fixture
def scene(app):
    """An empty scene (as after File > Close Scene), no dialogs recorded; closed again after the test."""
    app.resetScene()
    yield app.mrmlScene
    app.resetScene()
