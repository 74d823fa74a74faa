"""Fixtures of the real-MRML suite: Slicer's core (slicer-core) with the harness's stand-ins for the application.

Without slicer-core or Slicer's runtime files every test here skips, saying which is missing."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


@pytest.fixture(scope="session")
def app():
    """slicer.app of the harness, set up once per test process."""
    reason = harness.unavailableReason()
    if reason:
        pytest.skip(f"Slicer's MRML is not available: {reason}")
    return harness.start()


@pytest.fixture
def scene(app):
    """An empty scene (as after File > Close Scene), no dialogs recorded; closed again after the test."""
    app.resetScene()
    yield app.mrmlScene
    app.resetScene()
