"""EDM Heun on Gaussian data, where the probability-flow ODE has a closed-form solution.

For data x0 ~ N(mu, s0^2) and x = x0 + sigma eps, the exact denoiser is
D(x; sigma) = mu + s0^2 / (s0^2 + sigma^2) (x - mu), so dx/dsigma = (x - D) / sigma = sigma (x - mu) / (s0^2 + sigma^2)
and (x - mu) / sqrt(s0^2 + sigma^2) is constant along the ODE: from x at sigma_max the exact end point is
mu + (x - mu) s0 / sqrt(s0^2 + sigma_max^2). A point mass (s0 = 0) is solved exactly by Euler too; a
Gaussian is not, so this test separates Heun (2nd order) from Euler (1st order).
"""

import math

import torch

from storylab.diffusion import edm_heun_sample, karras_sigmas
from storylab.diffusion.contract import Prediction

MU, S0 = 0.3, 0.5


class GaussianDenoiser:
    """eps(x; sigma) of N(MU, S0^2) data, counting its evaluations."""

    def __init__(self):
        self.calls = 0

    def __call__(self, ctx):
        self.calls += 1
        sigma = ctx.s
        return Prediction(sigma * (ctx.x - MU) / (S0 ** 2 + sigma ** 2))


def _euler(x, sigmas):
    """First-order reference written out here: x += (sigma_next - sigma) dx/dsigma."""
    for s_cur, s_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (s_next - s_cur) * s_cur * (x - MU) / (S0 ** 2 + s_cur ** 2)
    return x


def _errors(n, sigma_max=80.0):
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = MU + (noise * sigma_max - MU) * S0 / math.sqrt(S0 ** 2 + sigma_max ** 2)
    model = GaussianDenoiser()
    heun = edm_heun_sample(model, noise.clone(), num_steps=n, sigma_max=sigma_max)
    euler = _euler(noise * sigma_max, karras_sigmas(n, sigma_max=sigma_max).tolist())
    return (heun - exact).abs().max().item(), (euler - exact).abs().max().item(), model.calls


def test_edm_heun_solves_the_gaussian_ode_to_second_order_with_2n_minus_1_evaluations():
    heun_24, euler_24, calls = _errors(24)
    heun_48, euler_48, _ = _errors(48)
    assert calls == 2 * 24 - 1  # two per step, one for the last (Euler to sigma = 0)
    assert 1.7 < euler_24 / euler_48 < 2.5  # the reference is first order: half the error for twice the steps
    assert heun_24 / heun_48 > 3.5  # Heun is second order: a quarter of the error
    assert heun_48 < euler_48 / 5 and heun_48 < 0.02
