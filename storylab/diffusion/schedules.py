"""Noise schedules as plain tensors: beta_t, alpha-bar_t, and EDM's sigma grid.

Following k-diffusion's habit, a schedule is data (a 1-D tensor), not a class hierarchy.

* ``linear``: beta_t evenly spaced from 1e-4 to 0.02 over T = 1000 steps (Ho et al. 2020, DDPM),
  rescaled by 1000 / T so that other T keep the same total noise.
* ``cosine``: alpha-bar_t = f(t) / f(0), f(t) = cos^2(((t/T) + s) / (1 + s) * pi / 2), s = 0.008,
  betas clipped at 0.999 (Nichol & Dhariwal 2021, eq. 17).
* ``karras_sigmas``: sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
  (Karras et al. 2022, EDM, eq. 5), followed by sigma_N = 0.
"""

from __future__ import annotations

import math

import torch

from storylab.errors import StorylabError

BETA_SCHEDULES = ("linear", "cosine")


def beta_schedule(name: str, num_timesteps: int = 1000) -> torch.Tensor:
    """Return beta_1..beta_T (float64, shape ``(T,)``) of the named schedule."""
    if num_timesteps < 1:
        raise StorylabError(f"num_timesteps must be >= 1, got {num_timesteps}")
    if name == "linear":
        scale = 1000.0 / num_timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=torch.float64)
    if name == "cosine":
        s = 0.008
        steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise StorylabError(f"unknown beta schedule '{name}' (choose from {', '.join(BETA_SCHEDULES)})")


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """alpha-bar_t = prod_{i<=t} (1 - beta_i), the signal fraction kept at step t (DDPM eq. 4)."""
    return torch.cumprod(1.0 - betas, dim=0)


def sampling_timesteps(num_train_timesteps: int, num_steps: int) -> torch.Tensor:
    """``num_steps`` integer timesteps from T-1 down to 0, evenly spaced (noisiest first)."""
    if not 1 <= num_steps <= num_train_timesteps:
        raise StorylabError(f"steps must be between 1 and {num_train_timesteps}, got {num_steps}")
    return torch.linspace(num_train_timesteps - 1, 0, num_steps, dtype=torch.float64).round().long()


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """EDM's sigma grid (Karras et al. 2022, eq. 5): ``num_steps`` decreasing sigmas and a final 0."""
    if num_steps < 1:
        raise StorylabError(f"steps must be >= 1, got {num_steps}")
    if not 0 < sigma_min < sigma_max:
        raise StorylabError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}")
    if num_steps == 1:
        sigmas = torch.tensor([sigma_max], dtype=torch.float64)
    else:
        ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
        lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
        sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])
