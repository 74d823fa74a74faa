"""The body network on one patch: body and centrum probabilities for a seed.

``spine_analysis.ct.vertebral_body`` turns them into the body and centrum at a click. The network's
module (MONAI) is imported when the network runs, so the classical method never loads it.
"""
from __future__ import annotations

import numpy as np
import torch


def body_probabilities(model, hu: np.ndarray, seed_zyx) -> tuple[np.ndarray, np.ndarray]:
    """Body (shell + centrum) and centrum probabilities on the patch ``hu``, seed at voxel ``seed_zyx``."""
    from .model import CENTRUM, SHELL, network_input

    inputs = torch.from_numpy(network_input(hu, seed_zyx, model.config)[None])
    with torch.no_grad():
        probs = torch.softmax(model(inputs), dim=1)[0].numpy()
    return probs[SHELL] + probs[CENTRUM], probs[CENTRUM]
