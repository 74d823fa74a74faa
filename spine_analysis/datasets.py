"""Where the research data sets are: one lookup for tests, benchmarks and training defaults.

``$SPINE_AASCE_DIR`` (an AASCE-layout folder) and ``$SPINE_CT_DIR`` (the ct-spine folder) win;
otherwise the copies in ``shared/datasets`` beside a source checkout. The data are never
shipped: on a fresh clone these folders are absent and whatever needs them says so.
"""
from __future__ import annotations

import os
from pathlib import Path

#: ``shared/datasets`` beside the repository that holds this package (a source checkout).
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def aasce_dir() -> Path:
    """The AASCE 2019 training split (images/, filenames.csv, landmarks.csv, angles.csv)."""
    return Path(os.environ.get("SPINE_AASCE_DIR") or SHARED_DATASETS / "aasce16" / "train")


def ct_dir() -> Path:
    """The folder of real spine CTs with vertebra labels (see its README)."""
    return Path(os.environ.get("SPINE_CT_DIR") or SHARED_DATASETS / "ct-spine")
