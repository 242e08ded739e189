"""EDM preconditioning and training loss (Karras et al. 2022, Table 1, "EDM" column).

D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma)) with
c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2),
c_noise = ln(sigma) / 4; training draws ln sigma ~ N(P_mean, P_std^2) and weights the x_0 error by
lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2. DIRECTOR uses sd = 0.5, P_mean = -1.2, P_std = 1.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from storylab.diffusion.forward import _expand


@dataclass
class EDMConfig:
    """EDM constants: data std, log-normal sigma sampling for training, sampler range."""

    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0


def edm_denoise(network: Callable[..., torch.Tensor], x: torch.Tensor, sigma: torch.Tensor, cond: Any,
                sigma_data: float = 0.5) -> torch.Tensor:
    """The preconditioned denoiser D(x; sigma) = c_skip x + c_out F(c_in x, c_noise, cond): an x_0 estimate."""
    sigma = sigma.to(x.dtype)
    sd2 = sigma_data ** 2
    c_skip = sd2 / (sigma ** 2 + sd2)
    c_out = sigma * sigma_data / (sigma ** 2 + sd2).sqrt()
    c_in = 1 / (sigma ** 2 + sd2).sqrt()
    c_noise = sigma.log() / 4
    out = network(_expand(c_in, x) * x, c_noise, cond)
    return _expand(c_skip, x) * x + _expand(c_out, x) * out


def edm_loss(network: Callable[..., torch.Tensor], x0: torch.Tensor, cond: Any, config: EDMConfig,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    """EDM training loss: lambda(sigma) || D(x0 + sigma n; sigma) - x0 ||^2 with ln sigma ~ N(P_mean, P_std^2).

    ``mask`` (same shape as ``x0`` or broadcastable) restricts the loss to valid entries (padded sequences).
    """
    sigma = (torch.randn(x0.shape[0], device=x0.device) * config.p_std + config.p_mean).exp().to(x0.dtype)
    noisy = x0 + _expand(sigma, x0) * torch.randn_like(x0)
    denoised = edm_denoise(network, noisy, sigma, cond, config.sigma_data)
    weight = (sigma ** 2 + config.sigma_data ** 2) / (sigma * config.sigma_data) ** 2
    err = _expand(weight, x0) * (denoised - x0) ** 2
    if mask is None:
        return err.mean()
    mask = mask.to(err.dtype).expand_as(err)
    return (err * mask).sum() / mask.sum().clamp_min(1.0)
