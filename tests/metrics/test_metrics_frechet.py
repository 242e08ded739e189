"""Fréchet distance: zero on identical sets, the closed form on Gaussians with known moments, symmetry."""

import numpy as np
import pytest
import scipy.linalg
import torch

from storylab.errors import StorylabError
from storylab.metrics import frechet_distance


def with_moments(mean: np.ndarray, cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n samples whose empirical mean and unbiased covariance are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).standard_normal((n, mean.shape[0]))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whitened: cov(z) = I
    return z @ np.linalg.cholesky(cov).T + mean


def random_cov(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def closed_form(m1, s1, m2, s2) -> float:
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * root))


def test_identical_sets_have_zero_distance():
    x = np.random.default_rng(0).standard_normal((300, 16))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(torch.from_numpy(x).float(), torch.from_numpy(x).float()) == pytest.approx(0.0, abs=1e-5)


def test_rank_deficient_covariance_stays_finite_and_zero_on_itself():
    x = np.random.default_rng(1).standard_normal((10, 32))  # N < D: singular covariance
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_matches_closed_form_of_two_gaussians():
    d = 6
    m1, m2 = np.zeros(d), np.linspace(-1, 2, d)
    s1, s2 = random_cov(d, 1), random_cov(d, 2)
    x, y = with_moments(m1, s1, 400, 3), with_moments(m2, s2, 250, 4)
    assert frechet_distance(x, y) == pytest.approx(closed_form(m1, s1, m2, s2), rel=1e-6)


def test_diagonal_gaussians_match_the_per_axis_formula():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu = np.array([3.0, 0.0, -1.0])
    x, y = with_moments(np.zeros(3), np.diag(a), 500, 5), with_moments(mu, np.diag(b), 500, 6)
    expected = np.sum(mu ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(x, y) == pytest.approx(expected, rel=1e-6)


def test_symmetric_and_a_shift_adds_its_squared_norm():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((200, 5)), rng.standard_normal((150, 5)) * 1.5
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-9)
    assert frechet_distance(x, x + shift) == pytest.approx(np.sum(shift ** 2), rel=1e-9)


@pytest.mark.parametrize("real, fake, fragment", [
    (np.zeros((5, 3)), np.zeros((5, 4)), "differ in dimension"),
    (np.zeros(5), np.zeros((5, 1)), "2-D"),
    (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2 rows"),
    (np.full((5, 3), np.nan), np.zeros((5, 3)), "NaN"),
])
def test_bad_shapes_raise_one_clear_error(real, fake, fragment):
    with pytest.raises(StorylabError, match=fragment):
        frechet_distance(real, fake)
