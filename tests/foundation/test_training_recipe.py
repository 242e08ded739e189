"""The training recipe's pieces, each against its formula written out: Min-SNR-gamma weights (Hang et al. 2023),
the EMA warm-up, and DDPM's sampler against diffusers' DDPMScheduler step by step."""

from __future__ import annotations

import pytest
import torch

from storylab.diffusion import alphas_cumprod, beta_schedule, ddpm_sample, diffusion_loss, min_snr_weight
from storylab.diffusion.contract import Prediction
from storylab.errors import StorylabError
from storylab.training.loop import ema_decay_at, make_ema


def test_min_snr_weights_are_the_papers_per_target_forms():
    ab = torch.tensor([0.999, 0.9, 0.5, 0.1, 1e-4], dtype=torch.float64)
    gamma = 5.0
    snr = [a / (1 - a) for a in ab.tolist()]
    clip = [min(s, gamma) for s in snr]
    assert min_snr_weight(ab, "eps", gamma).tolist() == pytest.approx([c / s for c, s in zip(clip, snr)], rel=1e-12)
    assert min_snr_weight(ab, "x0", gamma).tolist() == pytest.approx(clip, rel=1e-12)
    assert min_snr_weight(ab, "v", gamma).tolist() == pytest.approx([c / (s + 1) for c, s in zip(clip, snr)], rel=1e-12)
    # the three weightings are one x_0-space weight: ||eps err||^2 = SNR ||x0 err||^2, ||v err||^2 = (SNR+1) ||x0 err||^2
    x0_space = min_snr_weight(ab, "x0", gamma)
    assert torch.allclose(min_snr_weight(ab, "eps", gamma) * torch.tensor(snr, dtype=torch.float64), x0_space)
    assert torch.allclose(min_snr_weight(ab, "v", gamma) * (torch.tensor(snr, dtype=torch.float64) + 1), x0_space)


def test_min_snr_loss_is_the_weighted_mean_of_per_sample_errors():
    torch.manual_seed(0)
    ab = alphas_cumprod(beta_schedule("cosine", 100)).float()
    x0, noise = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    t = torch.tensor([0, 10, 50, 99])
    net = lambda x, tt, c: 0.3 * x  # noqa: E731 - any fixed function of x_t
    a, s = ab[t].sqrt().view(-1, 1, 1, 1), (1 - ab[t]).sqrt().view(-1, 1, 1, 1)
    x_t = a * x0 + s * noise
    target = a * noise - s * x0  # v
    err = ((net(x_t, t, None) - target) ** 2).mean(dim=(1, 2, 3))
    snr = ab[t] / (1 - ab[t])
    weights = snr.clamp(max=5.0) / (snr + 1)
    got = diffusion_loss(net, x0, None, ab, "v", t=t, noise=noise, weighting="min-snr", snr_gamma=5.0)
    assert float(got) == pytest.approx(float((weights * err).mean()), rel=1e-5)
    plain = diffusion_loss(net, x0, None, ab, "v", t=t, noise=noise)
    assert float(plain) == pytest.approx(float(err.mean()), rel=1e-5)


def test_unknown_weighting_and_bad_gamma_are_clear_errors():
    ab = alphas_cumprod(beta_schedule("cosine", 10)).float()
    with pytest.raises(StorylabError, match="unknown loss weighting 'snr'"):
        diffusion_loss(lambda x, t, c: x, torch.zeros(1, 1, 2, 2), None, ab, weighting="snr")
    with pytest.raises(StorylabError, match="gamma must be > 0"):
        min_snr_weight(ab.double(), "eps", 0.0)


def test_ema_warmup_follows_the_recursion_written_out():
    assert ema_decay_at(1, 0.995) == pytest.approx(2 / 11)
    assert ema_decay_at(10_000, 0.995) == 0.995
    assert ema_decay_at(1, 0.995, warmup=False) == 0.995
    model = torch.nn.Linear(1, 1, bias=False)
    values = [1.0, 2.0, 4.0, -1.0, 0.5]
    with torch.no_grad():
        model.weight.fill_(values[0])
    ema = make_ema(model, 0.9)
    expected = values[0]  # the first update copies the weights
    ema.update_parameters(model)
    for n, v in enumerate(values[1:], start=1):
        with torch.no_grad():
            model.weight.fill_(v)
        ema.update_parameters(model)
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * v
    assert float(ema.module.weight.detach()) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("steps", [50, 10])
def test_ddpm_sampler_matches_diffusers_ddpm_scheduler_step_by_step(steps):
    """Ho et al. 2020, Algorithm 2 (posterior variance beta-tilde), respaced to ``steps`` of T = 50, against diffusers."""
    from diffusers import DDPMScheduler

    T = 50
    betas = beta_schedule("linear", T)
    ab = alphas_cumprod(betas)
    sched = DDPMScheduler(num_train_timesteps=T, trained_betas=betas.numpy(), variance_type="fixed_small",
                          clip_sample=False, prediction_type="epsilon", timestep_spacing="linspace")
    sched.set_timesteps(steps)
    eps_net = lambda x, t: 0.1 * x + 0.01 * t.view(-1, 1, 1, 1).to(x.dtype)  # noqa: E731
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    trace = []
    ours = ddpm_sample(lambda ctx: Prediction(eps_net(ctx.x, ctx.t)), x.clone(), ab, steps,
                       generator=torch.Generator().manual_seed(2), callback=lambda i, xi: trace.append(xi.clone()))
    theirs, gen = x.clone(), torch.Generator().manual_seed(2)
    assert [int(t) for t in sched.timesteps] == [int(t) for t in torch.linspace(T - 1, 0, steps).round()]
    for i, t in enumerate(sched.timesteps):
        theirs = sched.step(eps_net(theirs, torch.full((3,), int(t))), t, theirs, generator=gen).prev_sample
        assert torch.allclose(trace[i], theirs, atol=1e-6), f"step {i}"
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_auto_sampler_is_heun_for_v_models_and_ddpm_for_eps_models():
    from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, sample_digits
    from storylab.images.networks.unet import UNetConfig

    labels = torch.tensor([0, 1])
    for prediction, expected in (("v", "edm-heun"), ("x0", "edm-heun"), ("eps", "ddpm")):
        torch.manual_seed(0)
        model = DigitDiffusion(DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4),
                                                    prediction=prediction)).eval()
        auto = sample_digits(model, labels, "cfg", 2.0, "constant", "auto", 3, 5)
        assert torch.equal(auto, sample_digits(model, labels, "cfg", 2.0, "constant", expected, 3, 5)), prediction
        other = "ddpm" if expected == "edm-heun" else "edm-heun"
        assert not torch.equal(auto, sample_digits(model, labels, "cfg", 2.0, "constant", other, 3, 5)), prediction


def test_vp_heun_queries_the_network_at_the_timestep_of_each_sigma():
    """The VP model inside EDM Heun sees x_t = x_sigma / sqrt(1 + sigma^2) at the t whose sigma_t is sigma."""
    from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, _vp_heun
    from storylab.images.networks.unet import UNetConfig

    model = DigitDiffusion(DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4)))
    ab = model.alpha_bar.double()
    table = ((1 - ab) / ab).sqrt()
    seen = []

    def guided(ctx):
        seen.append((float(ctx.t[0]), ctx.a, ctx.s))
        return Prediction(torch.zeros_like(ctx.x))

    _vp_heun(guided, torch.zeros(1, 1, 8, 8), model, 4)
    for t, a, s in seen:
        sigma = s / a
        lo = int(t)
        w = t - lo
        hi = min(lo + 1, ab.shape[0] - 1)
        interp = torch.exp((1 - w) * table[lo].log() + w * table[hi].log())  # log-sigma interpolation
        assert float(interp) == pytest.approx(sigma, rel=1e-5)  # t reaches the network in float32
        assert a == pytest.approx((1 + sigma ** 2) ** -0.5) and a ** 2 + s ** 2 == pytest.approx(1.0)
