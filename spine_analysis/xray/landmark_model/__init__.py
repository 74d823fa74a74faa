"""The X-ray landmark model: 68 vertebral corners (T1–L5) on an AP spine radiograph.

``config`` (every setting that changes a prediction), ``model`` (networks and the cascade),
``heatmaps``, ``level_assignment`` and ``shape_model`` (its parts), ``preprocess`` and
``patches`` (image handling), ``train`` (training from an AASCE-layout folder), ``weights_io``
(the model folder, on ``spine_analysis.ml.bundle``), ``detector`` (inference on one image).

This file imports nothing heavy, so a front end can name the weights variable cheaply.
"""
from pathlib import Path

#: Environment variable naming another landmark model folder than the shipped one.
WEIGHTS_ENV = "SPINE_ANALYSIS_LANDMARK_WEIGHTS"
#: The model folder shipped inside the package.
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
