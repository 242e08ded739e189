"""Denoising training loss with eps, x_0 or v targets (Ho et al. 2020, simple loss; Salimans & Ho 2022)."""

from __future__ import annotations

from typing import Any, Callable

import torch

from storylab.diffusion.forward import q_sample, training_target, vp_coefficients


def diffusion_loss(model: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor], x0: torch.Tensor, cond: Any,
                   alpha_bar: torch.Tensor, prediction: str = "eps", t: torch.Tensor | None = None,
                   noise: torch.Tensor | None = None) -> torch.Tensor:
    """E_{t, eps} || target - model(x_t, t, cond) ||^2 with t uniform on {0..T-1} (DDPM's L_simple)."""
    batch = x0.shape[0]
    if t is None:
        t = torch.randint(0, alpha_bar.shape[0], (batch,), device=x0.device)
    noise = torch.randn_like(x0) if noise is None else noise
    x_t = q_sample(x0, t, alpha_bar, noise)
    a, s = vp_coefficients(alpha_bar.to(x0.device)[t])
    target = training_target(x0, noise, prediction, a.to(x0.dtype), s.to(x0.dtype))
    return torch.mean((model(x_t, t, cond) - target) ** 2)
