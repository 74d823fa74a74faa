"""PCA shape model of a point set: fills in doubtful points from the ones that are trusted
(the shape constraint of Wang et al.)."""
from __future__ import annotations

import torch
from torch import nn


class ShapeModel(nn.Module):
    """PCA model of a point set (mean + modes), used to fill in or correct doubtful points."""

    def __init__(self, n_values: int, n_modes: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_values))
        self.register_buffer("modes", torch.zeros(n_modes, n_values))
        self.register_buffer("spread", torch.ones(n_modes))

    def fit(self, shapes: torch.Tensor):
        """``shapes`` (N, n_values): the PCA of the training shapes."""
        mean = shapes.mean(dim=0)
        _, s, vt = torch.linalg.svd((shapes - mean).double(), full_matrices=False)
        k = self.modes.shape[0]
        self.mean.copy_(mean)
        self.modes.copy_(vt[:k].float())
        self.spread.copy_((s[:k] / (len(shapes) - 1) ** 0.5).float().clamp_min(1e-6))

    def reconstruct(self, shapes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Weighted least-squares fit of the model to (B, n_values) with per-value weights;
        coefficients are kept within 3 standard deviations (a plausible shape)."""
        a = self.modes.T[None] * weights[..., None]                      # (B, P, K)
        rhs = ((shapes - self.mean) * weights)[..., None]
        ridge = torch.diag_embed(1e-3 / self.spread ** 2).expand(len(shapes), -1, -1)
        coef = torch.linalg.solve(a.transpose(1, 2) @ a + ridge, a.transpose(1, 2) @ rhs)[..., 0]
        coef = torch.maximum(torch.minimum(coef, 3 * self.spread), -3 * self.spread)
        return self.mean + coef @ self.modes
