"""Precision/recall and density/coverage: definitions on a hand-checked example, argument order, limits."""

import numpy as np
import pytest
import torch

from storylab.errors import StorylabError
from storylab.metrics import density_coverage, precision_recall


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def test_hand_checked_one_dimensional_example():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # k = 1: every real ball has radius 1
    fake = np.array([[0.5], [10.0]])  # k = 1 among fake: both radii 9.5
    precision, recall = precision_recall(real, fake, k=1)
    density, coverage = density_coverage(real, fake, k=1)
    assert precision == 0.5  # 0.5 lies in the balls of 0 and 1; 10 in none
    assert recall == 1.0  # every real point lies within 9.5 of 0.5
    assert density == 1.0  # (2 balls + 0 balls) / (k * 2 fakes)
    assert coverage == 0.5  # nearest fake of 0, 1 is 0.5 away (<= 1); of 2, 3 it is 1.5, 2.5 away


def test_fake_subset_of_real_has_full_precision():
    real = gaussian(300, 8, 0)
    precision, _ = precision_recall(real, real[:60], k=3)
    density, _ = density_coverage(real, real[:60], k=5)
    assert precision == 1.0
    assert density >= 1.0 / 5  # each copied point lies at least in its own ball


def test_mode_collapse_onto_one_real_point_keeps_precision_but_loses_recall_and_coverage():
    real = gaussian(300, 8, 1)
    collapsed = np.repeat(real[:1], 100, axis=0)
    precision, recall = precision_recall(real, collapsed, k=3)
    _, coverage = density_coverage(real, collapsed, k=5)
    assert precision == 1.0
    assert recall == pytest.approx(1 / 300)  # fake balls have radius 0: only real[0] itself is recalled
    assert coverage < 0.05


def test_argument_order_matters_swapping_exchanges_precision_and_recall():
    real, fake = gaussian(300, 8, 2), gaussian(100, 8, 3) * 0.3  # concentrated fake: plausible, not diverse
    p, r = precision_recall(real, fake, k=3)
    p_swapped, r_swapped = precision_recall(fake, real, k=3)
    assert (p_swapped, r_swapped) == (r, p)
    assert p > 0.9 and r < 0.5


def test_same_distribution_scores_high_and_disjoint_scores_zero():
    real, fake = gaussian(800, 4, 4), gaussian(800, 4, 5)
    precision, recall = precision_recall(real, fake)
    density, coverage = density_coverage(real, fake)
    assert precision > 0.8 and recall > 0.8
    assert 0.8 < density < 1.2
    assert coverage > 0.9
    far = gaussian(200, 4, 6, shift=50.0)
    assert precision_recall(real, far) == (0.0, 0.0)
    assert density_coverage(real, far) == (0.0, 0.0)


def test_accepts_torch_tensors():
    real = gaussian(50, 3, 7)
    assert precision_recall(torch.from_numpy(real), torch.from_numpy(real)) == (1.0, 1.0)


@pytest.mark.parametrize("fn, k", [(precision_recall, 3), (density_coverage, 5)])
def test_k_not_below_sample_size_is_a_clear_error(fn, k):
    with pytest.raises(StorylabError, match=f"k={k} needs more than k samples in the real set, got {k}"):
        fn(gaussian(k, 2, 0), gaussian(20, 2, 1), k=k)


def test_k_not_below_fake_size_is_a_clear_error_for_recall():
    with pytest.raises(StorylabError, match="fake set"):
        precision_recall(gaussian(20, 2, 0), gaussian(3, 2, 1), k=3)


@pytest.mark.parametrize("real, fake, fragment", [
    (np.zeros((10, 3)), np.zeros((10, 2)), "differ in dimension"),
    (np.zeros((10, 3, 1)), np.zeros((10, 3)), "2-D"),
    (np.zeros((10, 3)), np.full((10, 3), np.inf), "infinite"),
])
def test_bad_shapes_raise_one_clear_error(real, fake, fragment):
    with pytest.raises(StorylabError, match=fragment):
        precision_recall(real, fake, k=3)


def test_k_must_be_a_positive_integer():
    with pytest.raises(StorylabError, match="positive integer"):
        density_coverage(gaussian(20, 2, 0), gaussian(20, 2, 1), k=0)
