"""Vendi score and mean pairwise distance: their defining extreme cases and invariances."""

import numpy as np
import pytest

from storylab.errors import StorylabError
from storylab.metrics import mean_pairwise_distance, vendi_score


def test_vendi_is_one_for_identical_samples():
    x = np.tile(np.array([[0.3, -1.0, 2.0]]), (7, 1))
    assert vendi_score(x) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("n, d", [(5, 5), (4, 10)])
def test_vendi_is_n_for_orthogonal_samples(n, d):
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((d, d)))
    x = q[:n] * np.arange(1, n + 1)[:, None]  # orthogonal rows of different lengths
    assert vendi_score(x) == pytest.approx(n, rel=1e-9)


def test_vendi_counts_two_orthogonal_clusters_as_two():
    x = np.vstack([np.tile([1.0, 0.0, 0.0], (6, 1)), np.tile([0.0, 2.0, 0.0], (6, 1))])  # n > D path
    assert vendi_score(x) == pytest.approx(2.0, rel=1e-9)


def test_vendi_ignores_duplication_and_scale_and_lies_between_one_and_n():
    x = np.random.default_rng(1).standard_normal((40, 16))
    v = vendi_score(x)
    assert 1.0 < v < 40.0
    assert vendi_score(np.vstack([x, x])) == pytest.approx(v, rel=1e-9)
    assert vendi_score(x * np.random.default_rng(2).uniform(0.5, 3.0, (40, 1))) == pytest.approx(v, rel=1e-9)


def test_vendi_rejects_a_zero_vector():
    with pytest.raises(StorylabError, match="all-zero"):
        vendi_score(np.array([[1.0, 0.0], [0.0, 0.0]]))


def test_mean_pairwise_distance_on_known_points_and_translation():
    triangle = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 0.0]])  # pair distances 5, 5, 6
    assert mean_pairwise_distance(triangle) == pytest.approx(16 / 3)
    assert mean_pairwise_distance(triangle + 10.0) == pytest.approx(16 / 3)
    assert mean_pairwise_distance(np.zeros((4, 3))) == 0.0


def test_mean_pairwise_distance_needs_two_rows():
    with pytest.raises(StorylabError, match="at least 2 rows"):
        mean_pairwise_distance(np.zeros((1, 3)))
