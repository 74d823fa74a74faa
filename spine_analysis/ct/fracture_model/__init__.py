"""The fracture network: a MONAI 3D U-Net that labels every voxel of a 1 mm CT as background,
normal vertebral body or fractured vertebral body, after Nicolaes et al. (CSI 2019).

``config`` (every setting that changes a prediction), ``model`` (the network and its input),
``data`` (the labelled scans of ``spine_analysis.ct.scans`` with Genant grades), ``train`` (training
with simulated compression fractures), ``weights_io`` (the model folder, on ``spine_analysis.ml.bundle``),
``inference`` (probability maps over a whole CT). Aggregation per vertebra and patient lives in
``spine_analysis.ct.fracture``.

This file imports nothing heavy, so a front end can name the weights variable cheaply.
"""
from pathlib import Path

#: Environment variable naming another fracture model folder than the shipped one.
WEIGHTS_ENV = "SPINE_ANALYSIS_FRACTURE_WEIGHTS"
#: The model folder shipped inside the package.
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
