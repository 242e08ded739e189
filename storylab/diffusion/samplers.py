"""Samplers with one contract: ``sample(model, x, ...)`` where ``model(ctx) -> Prediction``.

* :func:`ddpm_sample` - ancestral sampling, the lecture's update
  x_{t-1} = (x_t - (1 - alpha_t) / sqrt(1 - alpha-bar_t) eps) / sqrt(alpha_t) + sigma_t z
  (Ho et al. 2020, Algorithm 2), on any sub-sequence of the training timesteps (alpha_t is then
  alpha-bar_t / alpha-bar_prev).
* :func:`ddim_sample` - DDIM (Song et al. 2021, eq. 12) with stochasticity eta (eta = 0 is
  deterministic; eta = 1 with the posterior variance is ancestral sampling).
* :func:`edm_heun_sample` - EDM's deterministic 2nd-order Heun sampler in sigma space
  (Karras et al. 2022, Algorithm 1), used by the camera wing's DIRECTOR.

None of them knows what it draws: the guided model hides the network, the condition and the guidance.
"""

from __future__ import annotations

import torch

from storylab.diffusion.contract import GuidedModel, Prediction, StepCallback, StepContext
from storylab.diffusion.schedules import karras_sigmas, sampling_timesteps
from storylab.errors import StorylabError

SAMPLERS = ("ddpm", "ddim", "edm-heun")


def _t_batch(value: float | int, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.full((x.shape[0],), value, dtype=dtype, device=x.device)


def _clip(x0: torch.Tensor, clip: float | None) -> torch.Tensor:
    return x0 if clip is None else x0.clamp(-clip, clip)


@torch.no_grad()
def ddim_sample(model: GuidedModel, x: torch.Tensor, alpha_bar: torch.Tensor, num_steps: int = 50, eta: float = 0.0,
                clip_x0: float | None = None, generator: torch.Generator | None = None,
                callback: StepCallback | None = None) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12): x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z.

    sigma = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev).
    """
    if eta < 0:
        raise StorylabError(f"eta must be >= 0, got {eta}")
    timesteps = sampling_timesteps(alpha_bar.shape[0], num_steps)
    ab = alpha_bar.to(torch.float64)
    for i, t in enumerate(timesteps.tolist()):
        ab_t = float(ab[t])
        ab_prev = float(ab[timesteps[i + 1]]) if i + 1 < num_steps else 1.0
        ctx = StepContext(x=x, t=_t_batch(t, x, torch.long), step=i, num_steps=num_steps, a=ab_t ** 0.5, s=(1 - ab_t) ** 0.5)
        pred = model(ctx)
        x0 = _clip(ctx.eps_to_x0(pred.eps), clip_x0)
        direction = pred.direction if clip_x0 is None or pred.renoise_eps is not None else ctx.x0_to_eps(x0)
        sigma = eta * ((1 - ab_prev) / (1 - ab_t)) ** 0.5 * (1 - ab_t / ab_prev) ** 0.5 if i + 1 < num_steps else 0.0
        x = ab_prev ** 0.5 * x0 + max(1 - ab_prev - sigma ** 2, 0.0) ** 0.5 * direction
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if callback is not None:
            callback(i, x)
    return x


@torch.no_grad()
def ddpm_sample(model: GuidedModel, x: torch.Tensor, alpha_bar: torch.Tensor, num_steps: int | None = None,
                variance: str = "beta_tilde", clip_x0: float | None = None, generator: torch.Generator | None = None,
                callback: StepCallback | None = None) -> torch.Tensor:
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2), the lecture's update with sigma_t z.

    ``variance`` picks sigma_t^2: ``beta`` (beta_t) or ``beta_tilde`` (the posterior variance
    (1 - ab_prev) / (1 - ab_t) beta_t). With fewer steps than the training T, alpha_t is
    ab_t / ab_prev (respacing). A prediction with its own ``renoise_eps`` (CFG++) or a clipped x_0
    moves through the posterior form sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z,
    which is the same update written differently.
    """
    if variance not in ("beta", "beta_tilde"):
        raise StorylabError(f"unknown DDPM variance '{variance}' (beta or beta_tilde)")
    num_steps = num_steps or alpha_bar.shape[0]
    timesteps = sampling_timesteps(alpha_bar.shape[0], num_steps)
    ab = alpha_bar.to(torch.float64)
    for i, t in enumerate(timesteps.tolist()):
        ab_t = float(ab[t])
        ab_prev = float(ab[timesteps[i + 1]]) if i + 1 < num_steps else 1.0
        alpha_t = ab_t / ab_prev
        beta_t = 1 - alpha_t
        ctx = StepContext(x=x, t=_t_batch(t, x, torch.long), step=i, num_steps=num_steps, a=ab_t ** 0.5, s=(1 - ab_t) ** 0.5)
        pred = model(ctx)
        last = i + 1 == num_steps
        sigma2 = 0.0 if last else (beta_t if variance == "beta" else (1 - ab_prev) / (1 - ab_t) * beta_t)
        if pred.renoise_eps is None and clip_x0 is None:
            x = (x - beta_t / (1 - ab_t) ** 0.5 * pred.eps) / alpha_t ** 0.5
        else:
            x0 = _clip(ctx.eps_to_x0(pred.eps), clip_x0)
            # Posterior mean mu~(x_t, x_0) (DDPM eq. 7), with eps direction from the prediction.
            coef_x0 = ab_prev ** 0.5 * beta_t / (1 - ab_t)
            coef_xt = alpha_t ** 0.5 * (1 - ab_prev) / (1 - ab_t)
            if pred.renoise_eps is None:
                x = coef_x0 * x0 + coef_xt * x
            else:
                x = ab_prev ** 0.5 * x0 + max(1 - ab_prev - sigma2, 0.0) ** 0.5 * pred.renoise_eps
        if sigma2 > 0:
            x = x + sigma2 ** 0.5 * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if callback is not None:
            callback(i, x)
    return x


@torch.no_grad()
def edm_heun_sample(model: GuidedModel, x: torch.Tensor, num_steps: int = 18, sigma_min: float = 0.002,
                    sigma_max: float = 80.0, rho: float = 7.0, callback: StepCallback | None = None,
                    scale_noise: bool = True) -> torch.Tensor:
    """EDM Heun sampler (Karras et al. 2022, Algorithm 1, deterministic), x_t = x_0 + sigma eps.

    ``x`` is standard normal noise; with ``scale_noise`` it is multiplied by sigma_max first. The model
    time input is sigma. Each step costs two evaluations except the last (Euler to sigma = 0). A
    prediction with ``renoise_eps`` (CFG++) takes a DDIM-like step x_next = x0 + sigma_next eps_renoise.
    """
    sigmas = karras_sigmas(num_steps, sigma_min, sigma_max, rho).tolist()
    x = x * sigmas[0] if scale_noise else x
    for i in range(num_steps):
        s_cur, s_next = sigmas[i], sigmas[i + 1]
        ctx = StepContext(x=x, t=_t_batch(s_cur, x, x.dtype), step=i, num_steps=num_steps, a=1.0, s=s_cur)
        pred = model(ctx)
        if pred.renoise_eps is not None:
            x = ctx.eps_to_x0(pred.eps) + s_next * pred.renoise_eps
        else:
            d = pred.eps  # dx/dsigma = (x - D(x; sigma)) / sigma = eps
            x_next = x + (s_next - s_cur) * d
            if s_next > 0:
                ctx2 = StepContext(x=x_next, t=_t_batch(s_next, x, x.dtype), step=i, num_steps=num_steps, a=1.0, s=s_next)
                d2 = model(ctx2).eps
                x_next = x + (s_next - s_cur) * 0.5 * (d + d2)
            x = x_next
        if callback is not None:
            callback(i, x)
    return x


__all__ = ["SAMPLERS", "Prediction", "StepContext", "ddim_sample", "ddpm_sample", "edm_heun_sample"]
