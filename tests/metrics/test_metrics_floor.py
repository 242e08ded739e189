"""Class-balanced real-vs-real floor with its spread, FID from stored statistics, the 'FID not meaningful' warning."""

import numpy as np
import pytest

from storylab.errors import StorylabError
from storylab.metrics.floor import MIN_N_PER_DIM, balanced_floor, balanced_subset, fid_warning
from storylab.metrics.frechet import feature_stats, frechet_distance, frechet_distance_to_stats


def gaussian_fid(a: np.ndarray, b: np.ndarray) -> float:
    """FID written out from its definition with scipy's sqrtm (independent of torchmetrics)."""
    from scipy.linalg import sqrtm

    m1, m2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2))))


def test_fid_from_statistics_equals_fid_from_features():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(400, 6)), rng.normal(size=(150, 6)) * 1.3 + 0.2
    expected = gaussian_fid(real, fake)
    assert frechet_distance_to_stats(*feature_stats(real), fake) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-6)


def test_fid_from_statistics_rejects_mismatched_shapes():
    mean, cov, n = feature_stats(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(StorylabError, match="differ in dimension: 3 vs 4"):
        frechet_distance_to_stats(mean, cov, n, np.zeros((5, 4)))


def test_balanced_subset_draws_per_class_rows_of_each_class_without_replacement():
    labels = np.repeat(np.arange(4), 10)
    idx = balanced_subset(labels, 7, np.random.default_rng(0))
    assert len(np.unique(idx)) == 28
    assert np.bincount(labels[idx]).tolist() == [7, 7, 7, 7]
    with pytest.raises(StorylabError, match="has 10 items of class 0, fewer than the 11"):
        balanced_subset(labels, 11, np.random.default_rng(0))


def test_balanced_floor_is_the_mean_and_spread_of_independent_balanced_draws():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 40)
    pool = rng.normal(size=(120, 4)) + labels[:, None]  # class-dependent means
    test = rng.normal(size=(300, 4)) + np.repeat(np.arange(3), 100)[:, None]
    out = balanced_floor(test, pool, labels, per_class=10, repeats=5, seed=3)
    # the same draws, redone by hand with the documented rng order
    draw_rng = np.random.default_rng(3)
    values = [gaussian_fid(test, pool[balanced_subset(labels, 10, draw_rng)]) for _ in range(5)]
    assert out["n"] == 30 and out["repeats"] == 5
    np.testing.assert_allclose(out["fid_values"], values, rtol=1e-5)
    assert out["fid"] == pytest.approx(np.mean(values), rel=1e-5)
    assert out["fid_std"] == pytest.approx(np.std(values, ddof=1), rel=1e-4)
    stats_out = balanced_floor(feature_stats(test), pool, labels, per_class=10, repeats=5, seed=3)
    assert stats_out["fid"] == pytest.approx(out["fid"], rel=1e-6)
    with pytest.raises(StorylabError, match="at least 2 repeats"):
        balanced_floor(test, pool, labels, 10, repeats=1)


def test_fid_warning_below_five_samples_per_dimension():
    assert MIN_N_PER_DIM == 5
    assert fid_warning(320, 64) is None
    message = fid_warning(319, 64)
    assert message.startswith("warning: FID at n = 319 is not meaningful for 64-dimensional features")
    assert "needs n >= 320" in message
