"""distribution_report and the real-vs-real FID floor; the foundation imports no wing."""

import subprocess
import sys

import numpy as np
import pytest

from storylab.errors import StorylabError
from storylab.metrics import distribution_report, frechet_distance, real_floor


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def test_report_of_a_set_against_itself():
    x = gaussian(120, 6, 0)
    report = distribution_report(x, x)
    assert set(report) == {"fid", "precision", "recall", "density", "coverage", "vendi", "n_real", "n_fake"}
    assert report["fid"] == pytest.approx(0.0, abs=1e-8)
    assert report["precision"] == report["recall"] == report["coverage"] == 1.0
    assert report["density"] >= 1.0  # each point lies at least in its own k = 5 ball: (>= k) / k
    assert 1.0 < report["vendi"] <= 120.0
    assert (report["n_real"], report["n_fake"]) == (120, 120)


def test_report_passes_k_through():
    real, fake = gaussian(50, 3, 1), gaussian(40, 3, 2)
    with pytest.raises(StorylabError, match="k=45"):
        distribution_report(real, fake, k_pr=45)
    with pytest.raises(StorylabError, match="k=50"):
        distribution_report(real, fake, k_dc=50)


def test_real_floor_of_a_set_with_itself_is_zero_and_shrinks_with_sample_size():
    a, b = gaussian(2000, 8, 3), gaussian(2000, 8, 4)
    assert real_floor(a, a, n=2000, replace=False) == pytest.approx(0.0, abs=1e-8)
    small = real_floor(a, b, n=40, repeats=5)
    large = real_floor(a, b, n=1500, repeats=5)
    assert small > 3 * large > 0.0


def test_real_floor_draws_with_replacement_beyond_the_set_size():
    a, b = gaussian(100, 4, 5), gaussian(100, 4, 6)
    floor = real_floor(a, b, n=300)
    assert floor > 0.0
    assert real_floor(a, b, n=300, seed=1) != floor  # a different draw
    with pytest.raises(StorylabError, match="without replacement"):
        real_floor(a, b, n=300, replace=False)
    with pytest.raises(StorylabError, match="at least 2"):
        real_floor(a, b, n=1)


def test_real_floor_equals_fid_of_the_whole_sets_when_n_is_their_size():
    a, b = gaussian(80, 5, 7), gaussian(80, 5, 8)
    assert real_floor(a, b, n=80, replace=False) == pytest.approx(frechet_distance(a, b), rel=1e-9)


def test_metrics_package_imports_no_wing():
    code = ("import sys, storylab.metrics, storylab.metrics.feature_net, storylab.metrics.distribution; "
            "print(sorted(m for m in sys.modules if m.startswith('storylab.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    wings = ("storylab.images", "storylab.camera", "storylab.humor", "storylab.videoqa")
    assert not [m for m in eval(out) if m.startswith(wings)]
