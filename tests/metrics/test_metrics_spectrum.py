"""The high-frequency share against cases worked by hand."""

import pytest
import torch

from storylab.metrics.spectrum import high_frequency_share


def test_white_noise_spreads_power_evenly_over_frequencies():
    x = torch.randn(400, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    fy, fx = torch.fft.fftfreq(28), torch.fft.fftfreq(28)
    radius = (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt()
    expected = float((radius >= 0.25).sum()) / (28 * 28 - 1)  # every non-DC bin carries the same expected power
    assert high_frequency_share(x) == pytest.approx(expected, abs=0.01)


def test_a_slow_sinusoid_has_no_high_frequency_power_and_a_checkerboard_only_that():
    i = torch.arange(16, dtype=torch.float64)
    slow = torch.cos(2 * torch.pi * i / 16)[None, None, :, None].expand(1, 1, 16, 16)  # 1/16 cycles/pixel
    checker = ((-1.0) ** (i[:, None] + i[None, :]))[None, None]  # (0.5, 0.5) cycles/pixel
    assert high_frequency_share(slow) == pytest.approx(0.0, abs=1e-12)
    assert high_frequency_share(checker) == pytest.approx(1.0, abs=1e-12)
    assert high_frequency_share(torch.ones(2, 1, 8, 8)) == 0.0  # the mean is removed


def test_cutoff_out_of_range_is_refused():
    with pytest.raises(ValueError, match="cutoff must be in"):
        high_frequency_share(torch.zeros(1, 1, 4, 4), cutoff=0.8)
