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

from storylab.errors import StorylabError
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


def feature_stats(feats: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean ``(D,)``, unbiased covariance ``(D, D)`` (float64) and count of a feature set ``(N, D)``, N >= 2.

    What a data set's reference needs to be kept for FID without its images (the "statistics" file
    of the original FID code, Heusel et al. 2017).
    """
    arr = as_features(feats, "features", min_rows=2)
    return arr.mean(axis=0), np.cov(arr, rowvar=False).reshape(arr.shape[1], arr.shape[1]), int(arr.shape[0])


def frechet_distance_to_stats(mean: Any, cov: Any, count: int, fake_feats: Any) -> float:
    """FID of ``fake_feats`` ``(M, D)`` against a real set known only by its mean, covariance and size.

    The real side is loaded into torchmetrics' ``FrechetInceptionDistance`` through its running
    sums (sum = n mu, sum of outer products = (n - 1) S + n mu mu^T), so that it computes exactly
    what :func:`frechet_distance` computes on the real features themselves.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    fake = as_features(fake_feats, "fake", min_rows=2)
    mu = np.asarray(mean, dtype=np.float64).reshape(-1)
    sigma = np.asarray(cov, dtype=np.float64)
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise StorylabError(f"reference covariance must be ({mu.shape[0]}, {mu.shape[0]}), got {sigma.shape}")
    if mu.shape[0] != fake.shape[1]:
        raise StorylabError(f"reference and fake features differ in dimension: {mu.shape[0]} vs {fake.shape[1]}")
    if count < 2:
        raise StorylabError(f"reference statistics need a count of at least 2, got {count}")
    metric = FrechetInceptionDistance(feature=_GivenFeatures(fake.shape[1]))
    metric.real_features_sum = torch.from_numpy(count * mu).to(metric.real_features_sum.dtype)
    metric.real_features_cov_sum = torch.from_numpy((count - 1) * sigma + count * np.outer(mu, mu)).to(
        metric.real_features_cov_sum.dtype)
    metric.real_features_num_samples = torch.tensor(count, dtype=metric.real_features_num_samples.dtype)
    metric.update(torch.from_numpy(fake), real=False)
    value = float(metric.compute())
    return max(0.0, value) if np.isfinite(value) else value
