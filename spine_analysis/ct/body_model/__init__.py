"""The vertebral-body network: a seeded MONAI 3D U-Net that segments the trabecular centrum
(and the whole body) of the vertebra under a click, after Klein et al. (CSI 2019).

``config`` (every setting that changes a prediction), ``model`` (the network and its input),
``data`` (training cases: the labelled scans of ``spine_analysis.ct.scans``), ``train`` (training),
``evaluate`` (Dice against the labels), ``weights_io`` (the model folder, on ``spine_analysis.ml.bundle``),
``inference`` (probabilities on one patch; ``spine_analysis.ct.vertebral_body`` reads them).

This file imports nothing heavy, so a front end can name the weights variable cheaply.
"""
from pathlib import Path

#: Environment variable naming another body model folder than the shipped one.
WEIGHTS_ENV = "SPINE_ANALYSIS_BODY_WEIGHTS"
#: The model folder shipped inside the package.
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
