"""Distribution metrics on feature arrays, shared by every wing (images, camera, model zoo).

All functions take plain tensors or arrays of shape ``(N, D)`` (one feature vector per sample) and
always in the order ``(real, fake)``. :func:`distribution_report` gathers them; :func:`real_floor`
gives the FID two *real* sets of the model's sample size reach, without which a finite-sample FID
cannot be read (FID is biased upwards at small N; Chong & Forsyth 2020, "Effectively unbiased FID").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from storylab.errors import StorylabError
from storylab.metrics._arrays import as_features
from storylab.metrics.diversity import mean_pairwise_distance, vendi_score
from storylab.metrics.frechet import frechet_distance
from storylab.metrics.manifold import density_coverage, knn_radii, precision_recall

__all__ = ["density_coverage", "distribution_report", "draw_rows", "frechet_distance", "knn_radii",
           "mean_pairwise_distance", "precision_recall", "real_floor", "vendi_score"]


def distribution_report(real: Any, fake: Any, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    """FID, precision, recall, density, coverage and the fake set's Vendi score, as one dict.

    Keys: ``fid``, ``precision``, ``recall`` (k = ``k_pr``, Kynkäänniemi et al. 2019), ``density``,
    ``coverage`` (k = ``k_dc``, Naeem et al. 2020), ``vendi`` (of ``fake``), ``n_real``, ``n_fake``.
    """
    real_arr = as_features(real, "real", min_rows=2)
    fake_arr = as_features(fake, "fake", min_rows=2)
    precision, recall = precision_recall(real_arr, fake_arr, k=k_pr)
    density, coverage = density_coverage(real_arr, fake_arr, k=k_dc)
    return {"fid": frechet_distance(real_arr, fake_arr), "precision": precision, "recall": recall,
            "density": density, "coverage": coverage, "vendi": vendi_score(fake_arr),
            "n_real": int(real_arr.shape[0]), "n_fake": int(fake_arr.shape[0])}


def draw_rows(feats: np.ndarray, n: int, rng: np.random.Generator, replace: bool | None = None) -> np.ndarray:
    """``n`` rows of ``feats`` drawn at random; with replacement when ``replace`` or when ``n`` exceeds the rows."""
    if n < 2:
        raise StorylabError(f"sample size must be at least 2, got {n}")
    with_replacement = n > feats.shape[0] if replace is None else replace
    if not with_replacement and n > feats.shape[0]:
        raise StorylabError(f"cannot draw {n} rows without replacement from {feats.shape[0]}")
    return feats[rng.choice(feats.shape[0], size=n, replace=with_replacement)]


def real_floor(real_a: Any, real_b: Any, n: int, seed: int = 0, replace: bool | None = None,
               repeats: int = 1) -> float:
    """FID between ``n`` rows of ``real_a`` and ``n`` rows of ``real_b`` (mean over ``repeats`` draws).

    Use it beside a model's FID at sample size ``n``: two independent real sets already differ by
    this much (e.g. the train and test splits of the digits). By default each set is drawn from
    without replacement, and only a set with fewer than ``n`` rows with replacement (``replace`` forces either;
    duplicated rows raise the finite-sample bias, so a floor drawn with replacement is markedly higher:
    about 2x on the digits at n = 360). The floor varies from draw to draw; average ``repeats`` draws.
    When ``n`` equals a set's size without replacement, that whole set is used.
    """
    a = as_features(real_a, "real_a", min_rows=2)
    b = as_features(real_b, "real_b", min_rows=2)
    if repeats < 1:
        raise StorylabError(f"repeats must be at least 1, got {repeats}")
    rng = np.random.default_rng(seed)
    values = [frechet_distance(draw_rows(a, n, rng, replace), draw_rows(b, n, rng, replace)) for _ in range(repeats)]
    return float(np.mean(values))
