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

Clipping x_0: ``clip_x0=None`` (the default) does not clip. The samplers cannot know the data range,
so they never clip on their own: callers that know it (the images wing, data in [-1, 1]) pass
``clip_x0=1.0``. **Unclipped DDPM/DDIM sampling diverges on the shipped cosine-schedule digit model**
(max |x| = 5.1e3 after 25 DDIM steps, 4.9e3 with DDPM, where the data lies in [-1, 1]: the cosine
schedule's first steps have alpha-bar ~ 1e-9, so any eps error is amplified by 1/sqrt(alpha-bar) in
x_0; bench/foundation_unclipped.py); pass ``clip_x0`` whenever the range is known.
``clip_order`` says where classifier guidance's shift goes when clipping. ``guided-diffusion``
(Dhariwal & Nichol's code): clip the *unguided* x_0, then add the shift unclipped. ``after``: clip
the guided x_0 and re-derive the direction. ``auto`` (default): guided-diffusion's order for the
DDPM mean shift (``condition_mean``, the paper's Algorithm 1, whose shift Sigma_t gamma grad stays
bounded) and ``after`` for the eps (score) shift, because guided-diffusion's order for the score
form divides the unclipped shift by sqrt(alpha-bar) and ruins the shipped cosine-schedule digit
model (300 samples, constant gamma 1, 20 DDIM steps: FID 876 against 23.9 with ``after``; with a
linear schedule, gamma = 0 at the noisiest step and the two orders agree to 0.02 FID). See docs/guidance.md.
"""

from __future__ import annotations

import torch

from storylab.diffusion.contract import GuidedModel, Prediction, StepCallback, StepContext
from storylab.diffusion.schedules import karras_sigmas, sampling_timesteps
from storylab.errors import StorylabError

SAMPLERS = ("ddpm", "ddim", "edm-heun")
CLIP_ORDERS = ("auto", "guided-diffusion", "after")


def _t_batch(value: float | int, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.full((x.shape[0],), value, dtype=dtype, device=x.device)


def _clip(x0: torch.Tensor, clip: float | None) -> torch.Tensor:
    return x0 if clip is None else x0.clamp(-clip, clip)


def _check_clip_order(order: str) -> None:
    if order not in CLIP_ORDERS:
        raise StorylabError(f"unknown clip order '{order}' (choose from {', '.join(CLIP_ORDERS)})")


def _x0_and_direction(ctx: StepContext, pred: Prediction, clip_x0: float | None, clip_order: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The (possibly clipped) x_0 estimate of a step and the eps that re-noises it."""
    if clip_x0 is None:
        return ctx.eps_to_x0(pred.eps), pred.direction
    if pred.eps_shift is not None and clip_order == "guided-diffusion":
        # guided-diffusion's condition_score: clip the unguided x_0, re-derive eps, add the shift unclipped.
        eps = ctx.x0_to_eps(_clip(ctx.eps_to_x0(pred.eps - pred.eps_shift), clip_x0)) + pred.eps_shift
        return ctx.eps_to_x0(eps), eps
    x0 = _clip(ctx.eps_to_x0(pred.eps), clip_x0)
    return x0, (ctx.x0_to_eps(x0) if pred.renoise_eps is None else pred.renoise_eps)


@torch.no_grad()
def ddim_sample(model: GuidedModel, x: torch.Tensor, alpha_bar: torch.Tensor, num_steps: int = 50, eta: float = 0.0,
                clip_x0: float | None = None, generator: torch.Generator | None = None,
                callback: StepCallback | None = None, clip_order: str = "auto") -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12): x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z.

    sigma = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev). ``clip_x0=None`` does not
    clip. **Unclipped sampling diverges on the shipped cosine-schedule digit model** (max |x| 5.1e3
    after 25 steps): pass the data range (``clip_x0=1.0`` for data in [-1, 1]) whenever it is known.
    """
    if eta < 0:
        raise StorylabError(f"eta must be >= 0, got {eta}")
    _check_clip_order(clip_order)
    timesteps = sampling_timesteps(alpha_bar.shape[0], num_steps)
    ab = alpha_bar.to(torch.float64)
    for i, t in enumerate(timesteps.tolist()):
        ab_t = float(ab[t])
        ab_prev = float(ab[timesteps[i + 1]]) if i + 1 < num_steps else 1.0
        ctx = StepContext(x=x, t=_t_batch(t, x, torch.long), step=i, num_steps=num_steps, a=ab_t ** 0.5, s=(1 - ab_t) ** 0.5)
        pred = model(ctx)
        if pred.mean_shift is not None:
            raise StorylabError("a mean-shift prediction (classifier guidance in DDPM form) needs the DDPM sampler")
        x0, direction = _x0_and_direction(ctx, pred, clip_x0, clip_order)
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
                callback: StepCallback | None = None, clip_order: str = "auto") -> torch.Tensor:
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2), the lecture's update with sigma_t z.

    ``variance`` picks sigma_t^2: ``beta`` (beta_t) or ``beta_tilde`` (the posterior variance
    (1 - ab_prev) / (1 - ab_t) beta_t). With fewer steps than the training T, alpha_t is
    ab_t / ab_prev (respacing). A prediction with its own ``renoise_eps`` (CFG++) or a clipped x_0
    moves through the posterior form sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma z,
    which is the same update written differently. The step's Sigma_t (``ctx.variance``) is given to
    the guided model; a ``mean_shift`` (classifier guidance, guided-diffusion's form) is added to the
    mean. ``clip_x0=None`` does not clip. **Unclipped sampling diverges on the shipped cosine-schedule
    digit model** (max |x| 4.9e3 after 25 steps): pass ``clip_x0`` whenever the data range is known.
    """
    if variance not in ("beta", "beta_tilde"):
        raise StorylabError(f"unknown DDPM variance '{variance}' (beta or beta_tilde)")
    _check_clip_order(clip_order)
    num_steps = num_steps or alpha_bar.shape[0]
    timesteps = sampling_timesteps(alpha_bar.shape[0], num_steps)
    ab = alpha_bar.to(torch.float64)
    for i, t in enumerate(timesteps.tolist()):
        ab_t = float(ab[t])
        ab_prev = float(ab[timesteps[i + 1]]) if i + 1 < num_steps else 1.0
        alpha_t = ab_t / ab_prev
        beta_t = 1 - alpha_t
        last = i + 1 == num_steps
        sigma2 = 0.0 if last else (beta_t if variance == "beta" else (1 - ab_prev) / (1 - ab_t) * beta_t)
        ctx = StepContext(x=x, t=_t_batch(t, x, torch.long), step=i, num_steps=num_steps, a=ab_t ** 0.5,
                          s=(1 - ab_t) ** 0.5, variance=sigma2)
        pred = model(ctx)
        # Posterior mean mu~(x_t, x_0) (DDPM eq. 7) coefficients.
        coef_x0 = ab_prev ** 0.5 * beta_t / (1 - ab_t)
        coef_xt = alpha_t ** 0.5 * (1 - ab_prev) / (1 - ab_t)
        shift = pred.mean_shift
        if shift is not None and clip_x0 is not None and clip_order == "after":
            # Fold the mean shift into x_0 (mean = coef_x0 x0 + coef_xt x_t), then clip the guided x_0.
            pred = Prediction(ctx.x0_to_eps(ctx.eps_to_x0(pred.eps) + shift / coef_x0))
            shift = None
        if pred.renoise_eps is None and clip_x0 is None:
            x_new = (x - beta_t / (1 - ab_t) ** 0.5 * pred.eps) / alpha_t ** 0.5
        else:
            x0, direction = _x0_and_direction(ctx, pred, clip_x0, clip_order)
            if pred.renoise_eps is None:
                x_new = coef_x0 * x0 + coef_xt * x
            else:
                x_new = ab_prev ** 0.5 * x0 + max(1 - ab_prev - sigma2, 0.0) ** 0.5 * direction
        x = x_new if shift is None else x_new + shift
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
                ctx2 = StepContext(x=x_next, t=_t_batch(s_next, x, x.dtype), step=i, num_steps=num_steps, a=1.0, s=s_next,
                                   corrector=True)
                d2 = model(ctx2).eps
                x_next = x + (s_next - s_cur) * 0.5 * (d + d2)
            x = x_next
        if callback is not None:
            callback(i, x)
    return x


__all__ = ["CLIP_ORDERS", "SAMPLERS", "Prediction", "StepContext", "ddim_sample", "ddpm_sample", "edm_heun_sample"]
