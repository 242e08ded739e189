"""Denoising training loss with eps, x_0 or v targets (Ho et al. 2020, simple loss; Salimans & Ho 2022),
uniformly weighted over timesteps or with Min-SNR-gamma weighting (Hang et al. 2023)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from storylab.diffusion.forward import PREDICTIONS, q_sample, training_target, vp_coefficients
from storylab.errors import StorylabError

LOSS_WEIGHTINGS = ("uniform", "min-snr")


def min_snr_weight(alpha_bar_t: torch.Tensor, prediction: str, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma loss weight of each timestep (Hang et al. 2023, eq. 9), for the network's target.

    With SNR_t = alpha-bar_t / (1 - alpha-bar_t), the x_0-space weight min(SNR_t, gamma) becomes
    min(SNR_t, gamma) / SNR_t for an eps target (||eps error||^2 = SNR ||x_0 error||^2) and
    min(SNR_t, gamma) / (SNR_t + 1) for a v target (||v error||^2 = (SNR + 1) ||x_0 error||^2).
    """
    if gamma <= 0:
        raise StorylabError(f"the Min-SNR gamma must be > 0, got {gamma}")
    snr = alpha_bar_t / (1 - alpha_bar_t)
    clipped = snr.clamp(max=gamma)
    if prediction == "eps":
        return clipped / snr
    if prediction == "x0":
        return clipped
    if prediction == "v":
        return clipped / (snr + 1)
    raise StorylabError(f"unknown prediction type '{prediction}' ({', '.join(PREDICTIONS)})")


def diffusion_loss(model: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor], x0: torch.Tensor, cond: Any,
                   alpha_bar: torch.Tensor, prediction: str = "eps", t: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None, weighting: str = "uniform", snr_gamma: float = 5.0
                   ) -> torch.Tensor:
    """E_{t, eps} w_t || target - model(x_t, t, cond) ||^2 with t uniform on {0..T-1}.

    ``weighting="uniform"`` (w_t = 1) is DDPM's L_simple; ``"min-snr"`` uses :func:`min_snr_weight`.
    """
    if weighting not in LOSS_WEIGHTINGS:
        raise StorylabError(f"unknown loss weighting '{weighting}' ({', '.join(LOSS_WEIGHTINGS)})")
    batch = x0.shape[0]
    if t is None:
        t = torch.randint(0, alpha_bar.shape[0], (batch,), device=x0.device)
    noise = torch.randn_like(x0) if noise is None else noise
    x_t = q_sample(x0, t, alpha_bar, noise)
    ab_t = alpha_bar.to(x0.device)[t]
    a, s = vp_coefficients(ab_t)
    target = training_target(x0, noise, prediction, a.to(x0.dtype), s.to(x0.dtype))
    per_sample = ((model(x_t, t, cond) - target) ** 2).reshape(batch, -1).mean(dim=1)
    if weighting == "uniform":
        return per_sample.mean()
    return (min_snr_weight(ab_t.double(), prediction, snr_gamma).to(per_sample.dtype) * per_sample).mean()
