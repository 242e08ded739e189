"""Diffusion core: schedules, forward process, target conversions and sampler exactness."""


import pytest
import torch

from storylab.diffusion import (Prediction, alphas_cumprod, beta_schedule, ddim_sample, ddpm_sample, diffusion_loss,
                                edm_denoise, edm_heun_sample, karras_sigmas, q_sample, sampling_timesteps, to_eps,
                                to_x0, training_target, vp_coefficients)
from storylab.errors import StorylabError


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_alpha_bar_decreases_from_one_to_near_zero(name):
    ab = alphas_cumprod(beta_schedule(name, 1000))
    assert ab.shape == (1000,)
    assert torch.all(ab[1:] < ab[:-1])
    assert 0.99 < ab[0] <= 1.0
    assert ab[-1] < 1e-3


def test_linear_betas_match_ddpm_endpoints():
    betas = beta_schedule("linear", 1000)
    assert betas[0].item() == pytest.approx(1e-4)
    assert betas[-1].item() == pytest.approx(0.02)


def test_unknown_beta_schedule_is_a_clear_error():
    with pytest.raises(StorylabError, match="unknown beta schedule 'quadratic'"):
        beta_schedule("quadratic")


def test_karras_sigmas_decrease_and_end_at_zero():
    s = karras_sigmas(10, 0.002, 80.0, 40.0)
    assert s.shape == (11,)
    assert s[0].item() == pytest.approx(80.0) and s[-2].item() == pytest.approx(0.002) and s[-1] == 0
    assert torch.all(s[1:] < s[:-1])


def test_sampling_timesteps_go_from_noisiest_to_zero():
    ts = sampling_timesteps(1000, 50)
    assert ts[0] == 999 and ts[-1] == 0 and torch.all(ts[1:] < ts[:-1])
    with pytest.raises(StorylabError):
        sampling_timesteps(1000, 0)


def test_q_sample_has_the_closed_form_moments():
    ab = alphas_cumprod(beta_schedule("linear", 1000))
    x0 = torch.full((20000, 1), 2.0)
    t = torch.full((20000,), 300)
    xt = q_sample(x0, t, ab, torch.randn(20000, 1, generator=torch.Generator().manual_seed(0)))
    assert xt.mean().item() == pytest.approx(2.0 * ab[300].sqrt().item(), abs=0.03)
    assert xt.var().item() == pytest.approx(1 - ab[300].item(), abs=0.03)


@pytest.mark.parametrize("kind", ["eps", "x0", "v"])
def test_prediction_conversions_round_trip(kind):
    gen = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    a, s = vp_coefficients(torch.tensor([0.9, 0.5, 0.2, 0.01]))
    a, s = a.float(), s.float()
    x = a[:, None] * x0 + s[:, None] * eps
    target = training_target(x0, eps, kind, a, s)
    assert torch.allclose(to_eps(target, x, kind, a, s), eps, atol=1e-4)
    assert torch.allclose(to_x0(target, x, kind, a, s), x0, atol=1e-3)


def test_diffusion_loss_is_zero_for_the_oracle():
    ab = alphas_cumprod(beta_schedule("cosine", 100)).float()
    x0 = torch.randn(8, 1, 2, 2)
    noise = torch.randn_like(x0)
    t = torch.randint(0, 100, (8,))
    loss = diffusion_loss(lambda x, tt, c: noise, x0, None, ab, "eps", t=t, noise=noise)
    assert loss.item() == pytest.approx(0.0, abs=1e-10)


def _point_mass_model(target: torch.Tensor):
    """The exact denoiser of a data distribution concentrated on ``target``: eps = (x - a x*) / s."""
    return lambda ctx: Prediction((ctx.x - ctx.a * target) / ctx.s)


def test_ddim_recovers_a_point_mass_exactly():
    ab = alphas_cumprod(beta_schedule("cosine", 1000)).float()
    target = torch.tensor([[0.5, -0.25, 0.75]])
    x = torch.randn(5, 3)
    out = ddim_sample(_point_mass_model(target), x, ab, num_steps=20)
    assert torch.allclose(out, target.expand(5, 3), atol=1e-4)


def test_edm_heun_recovers_a_point_mass_exactly():
    target = torch.tensor([[0.5, -0.25, 0.75]])
    out = edm_heun_sample(_point_mass_model(target), torch.randn(5, 3), num_steps=10, rho=40.0)
    assert torch.allclose(out, target.expand(5, 3), atol=1e-4)


def test_ddpm_lecture_update_equals_ddim_eta_one():
    """x_{t-1} = (x_t - beta/sqrt(1-ab) eps)/sqrt(alpha) + sigma z with the posterior variance is DDIM eta=1."""
    ab = alphas_cumprod(beta_schedule("linear", 1000)).float()
    model = lambda ctx: Prediction(0.3 * ctx.x + 0.1)  # any smooth eps function
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
    a = ddpm_sample(model, x.clone(), ab, num_steps=25, variance="beta_tilde", generator=torch.Generator().manual_seed(7))
    b = ddim_sample(model, x.clone(), ab, num_steps=25, eta=1.0, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(a, b, atol=1e-4)


def test_ddpm_posterior_form_with_renoise_equals_lecture_form():
    ab = alphas_cumprod(beta_schedule("linear", 1000)).float()
    plain = lambda ctx: Prediction(0.2 * ctx.x)
    renoised = lambda ctx: Prediction(0.2 * ctx.x, renoise_eps=0.2 * ctx.x)
    x = torch.randn(3, 4)
    a = ddpm_sample(plain, x.clone(), ab, 10, generator=torch.Generator().manual_seed(0))
    b = ddpm_sample(renoised, x.clone(), ab, 10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(a, b, atol=1e-4)


def test_edm_preconditioning_limits():
    """At sigma -> 0 the denoiser returns its input (c_skip -> 1, c_out -> 0)."""
    x = torch.randn(2, 3)
    out = edm_denoise(lambda xin, c, cond: torch.ones_like(xin), x, torch.full((2,), 1e-6), None)
    assert torch.allclose(out, x, atol=1e-5)
    big = edm_denoise(lambda xin, c, cond: torch.zeros_like(xin), x, torch.full((2,), 1e4), None)
    assert big.abs().max().item() < 1e-6 * 10
