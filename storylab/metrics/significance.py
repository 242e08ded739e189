"""How much a score on a small test set can be trusted: bootstrap intervals and paired tests.

An ablation on a few dozen clips or questions moves by a whole example at a time, so two rows that
differ by one or two examples are not evidence of a difference. These helpers put a number on that:

* :func:`f1_bootstrap_interval` - percentile bootstrap (Efron & Tibshirani 1993, Ch. 13) of the
  binary F1 over test examples resampled with replacement;
* :func:`mcnemar_exact` - McNemar's test for two classifiers scored on the same examples: under
  "equally accurate", the examples only one of them gets right split 50/50, so the two-sided p-value
  is a binomial test on those discordant examples (exact, as they are few).

Written here because scikit-learn has neither; the binomial tail comes from SciPy.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _f1(labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Binary F1 (positive class 1) along the last axis; 0 where there are no true or predicted positives."""
    tp = (labels & preds).sum(-1)
    denom = labels.sum(-1) + preds.sum(-1)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def f1_bootstrap_interval(labels: np.ndarray, preds: np.ndarray, level: float = 0.95, resamples: int = 2000,
                          seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the binary F1 (funny / positive = 1) at confidence ``level``."""
    labels = np.asarray(labels).astype(bool)
    preds = np.asarray(preds).astype(bool)
    if labels.shape != preds.shape or labels.ndim != 1:
        raise ValueError(f"labels and predictions must be two 1-D arrays of one length, got {labels.shape} and {preds.shape}")
    if len(labels) == 0:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(labels), size=(resamples, len(labels)))
    scores = _f1(labels[idx], preds[idx])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(scores, [tail, 100 - tail])
    return float(low), float(high)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for two classifiers' per-example correctness on the same examples."""
    from scipy.stats import binomtest

    a = np.asarray(correct_a).astype(bool)
    b = np.asarray(correct_b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"both classifiers must be scored on the same examples, got {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, level: float = 0.95, resamples: int = 200,
                       seed: int = 0, method: str = "percentile") -> tuple[float, float]:
    """Bootstrap interval (Efron & Tibshirani 1993, Ch. 13) of ``statistic(indices)`` over ``n`` items.

    ``statistic`` receives one resample of row indices (with replacement) and returns the score of those rows
    (the FID of the resampled generated features against fixed real statistics, the accuracy of resampled
    predictions); the real side is held fixed, so the interval is the sampling error of the generated set.
    ``method="percentile"`` gives the percentiles of the resampled scores; ``"basic"`` reflects them about the
    full-sample score, [2 s - q_high, 2 s - q_low] (Davison & Hinkley 1997, eq. 5.6); ``"centred"`` moves the
    percentile interval so that the resamples' median falls on the full-sample score, [s - (m - q_low),
    s + (q_high - m)]. Resampling with replacement duplicates rows, which shrinks a set's spread, so every
    resampled FID sits well above the full-sample FID (by more than the interval is wide at n = 1,000): the
    percentile interval then misses the score, the basic one subtracts that shift twice, and the centred one
    keeps only the resamples' spread, which is what two cells are compared by.
    """
    if method not in ("percentile", "basic", "centred"):
        raise ValueError(f"unknown bootstrap method '{method}' (percentile, basic or centred)")
    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    scores = [statistic(rng.integers(0, n, size=n)) for _ in range(resamples)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(scores, [tail, 100 - tail])
    if method == "basic":
        full = statistic(np.arange(n))
        low, high = 2 * full - high, 2 * full - low
    elif method == "centred":
        full, median = statistic(np.arange(n)), float(np.median(scores))
        low, high = full - (median - low), full + (high - median)
    return float(low), float(high)
