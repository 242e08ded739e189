"""Diversity of one sample set: the Vendi score (Friedman & Dieng 2023) and the mean pairwise distance."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import pdist

from storylab.errors import StorylabError
from storylab.metrics._arrays import as_features


def vendi_score(feats: Any) -> float:
    """Vendi score ``exp(-sum_i l_i log l_i)``, l_i the eigenvalues of ``K / n`` (Friedman & Dieng 2023, TMLR).

    K is the cosine-similarity kernel ``K_ij = <x_i, x_j> / (|x_i| |x_j|)`` of the ``(n, D)`` features,
    so the score is the "effective number of distinct samples": 1 for n identical samples, n for n
    mutually orthogonal ones. Written by hand (an eigen-decomposition and an entropy): the
    ``vendi-score`` package adds nothing beyond these lines. The non-zero eigenvalues of ``X X^T / n``
    equal those of ``X^T X / n``, so the smaller of the two matrices is decomposed.
    """
    x = as_features(feats, "Vendi", min_rows=1)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise StorylabError("Vendi score with a cosine kernel is undefined for an all-zero feature vector")
    x = x / norms
    n = x.shape[0]
    gram = x @ x.T if n <= x.shape[1] else x.T @ x  # (n, n) or (D, D); same non-zero spectrum
    eigenvalues = np.clip(np.linalg.eigvalsh(gram / n), 0.0, None)
    eigenvalues = eigenvalues[eigenvalues > 0]
    return float(np.exp(-np.sum(eigenvalues * np.log(eigenvalues))))


def mean_pairwise_distance(feats: Any) -> float:
    """Mean Euclidean distance over all unordered pairs of rows of the ``(n, D)`` features (n >= 2)."""
    x = as_features(feats, "mean-pairwise-distance", min_rows=2)
    return float(pdist(x, metric="euclidean").mean())
