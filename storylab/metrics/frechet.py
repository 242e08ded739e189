"""Fréchet distance between two feature sets (Heusel et al. 2017, "GANs trained by a two time-scale
update rule converge to a local Nash equilibrium"), computed by torchmetrics.

FID is the Fréchet distance between Gaussians fitted to Inception features; storylab fits them to
the features of whatever network a wing uses (the digit feature net, CLaTr embeddings, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from storylab.metrics._arrays import as_features, same_width


class _GivenFeatures(nn.Module):
    """Identity "feature extractor" so torchmetrics' FID accepts precomputed feature vectors."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def frechet_distance(real_feats: Any, fake_feats: Any) -> float:
    """Fréchet distance ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2})`` (FID, Heusel et al. 2017).

    ``real_feats`` ``(N, D)`` and ``fake_feats`` ``(M, D)`` are feature vectors (tensors or arrays),
    N, M >= 2. The means, unbiased covariances and the trace of the matrix square root are computed
    by torchmetrics' ``FrechetInceptionDistance`` in float64, given an identity feature extractor;
    its square-root trace is the sum of the square roots of the eigenvalues of ``S_r S_f`` (real part
    kept), which stays finite when the covariances are singular (N <= D) where ``sqrtm`` may not.
    Nothing is hand-written here except the identity module that lets torchmetrics take features.
    The result is clipped at 0: tiny negative values are round-off of a zero distance.

    A finite-sample FID is biased upwards; compare it with :func:`storylab.metrics.real_floor`.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    real = as_features(real_feats, "real", min_rows=2)
    fake = as_features(fake_feats, "fake", min_rows=2)
    same_width(real, fake)
    metric = FrechetInceptionDistance(feature=_GivenFeatures(real.shape[1]))
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    value = float(metric.compute())
    return max(0.0, value) if np.isfinite(value) else value
