"""Bootstrap F1 intervals and the exact McNemar test."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from storylab.metrics.significance import _f1, f1_bootstrap_interval, mcnemar_exact


def test_vectorised_f1_matches_scikit_learn():
    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 2, (50, 30)).astype(bool), rng.integers(0, 2, (50, 30)).astype(bool)
    expected = [f1_score(y, p, zero_division=0) for y, p in zip(labels, preds)]
    np.testing.assert_allclose(_f1(labels, preds), expected)


def test_bootstrap_interval_brackets_the_score_and_narrows_with_more_examples():
    rng = np.random.default_rng(1)
    def interval(n):
        labels = rng.integers(0, 2, n)
        preds = np.where(rng.random(n) < 0.85, labels, 1 - labels)  # 85 % correct
        return f1_score(labels, preds), f1_bootstrap_interval(labels, preds)
    f_small, (lo_small, hi_small) = interval(60)
    f_big, (lo_big, hi_big) = interval(6000)
    assert lo_small <= f_small <= hi_small and lo_big <= f_big <= hi_big
    assert hi_big - lo_big < (hi_small - lo_small) / 5
    assert f1_bootstrap_interval(np.ones(10), np.ones(10)) == (1.0, 1.0)
    with pytest.raises(ValueError, match="one length"):
        f1_bootstrap_interval(np.ones(3), np.ones(4))


def test_mcnemar_exact_values():
    same = np.array([1, 0, 1, 1], bool)
    assert mcnemar_exact(same, same) == 1.0
    a = np.array([1] * 6 + [1] * 10, bool)
    b = np.array([0] * 6 + [1] * 10, bool)
    assert mcnemar_exact(a, b) == pytest.approx(2 * 0.5 ** 6)  # six discordant examples, all for a
    one_apart = np.array([1, 1, 0], bool), np.array([1, 0, 0], bool)
    assert mcnemar_exact(*one_apart) == pytest.approx(1.0)


def test_bootstrap_interval_of_a_mean_matches_the_normal_theory_width():
    from storylab.metrics.significance import bootstrap_interval

    x = np.random.default_rng(3).normal(size=2000)
    low, high = bootstrap_interval(lambda idx: float(x[idx].mean()), len(x), resamples=2000)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # the normal-theory 95 % half-width of a mean
    assert low < x.mean() < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)


def test_basic_bootstrap_reflects_the_percentiles_about_the_full_sample_score():
    from storylab.metrics.significance import bootstrap_interval

    x = np.random.default_rng(4).normal(size=300)
    stat = lambda idx: float(x[idx].std(ddof=0))  # noqa: E731 - biased low under resampling, like FID is biased high
    p_low, p_high = bootstrap_interval(stat, len(x), resamples=500, seed=1)
    b_low, b_high = bootstrap_interval(stat, len(x), resamples=500, seed=1, method="basic")
    full = float(x.std(ddof=0))
    assert (b_low, b_high) == pytest.approx((2 * full - p_high, 2 * full - p_low))
    c_low, c_high = bootstrap_interval(stat, len(x), resamples=500, seed=1, method="centred")
    rng = np.random.default_rng(1)
    median = float(np.median([stat(rng.integers(0, len(x), size=len(x))) for _ in range(500)]))
    assert (c_low, c_high) == pytest.approx((full - (median - p_low), full + (p_high - median)))
    assert c_low < full < c_high
    with pytest.raises(ValueError, match="unknown bootstrap method"):
        bootstrap_interval(stat, len(x), method="bca")
