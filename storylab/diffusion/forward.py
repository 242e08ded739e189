"""The forward process and the conversions between the network's possible targets.

Everything is written for the general Gaussian perturbation x_t = a_t x_0 + s_t eps:
variance-preserving DDPM has a_t = sqrt(alpha-bar_t), s_t = sqrt(1 - alpha-bar_t) (DDPM eq. 4, the
lecture's "shortcut"); EDM has a_t = 1, s_t = sigma (Karras et al. 2022). The v target is
v = a_t eps - s_t x_0 (Salimans & Ho 2022), defined for the variance-preserving case.
"""

from __future__ import annotations

import torch

PREDICTIONS = ("eps", "x0", "v")


def _expand(coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-sample coefficient ``(B,)`` (or a scalar) against ``like`` ``(B, ...)``."""
    coef = torch.as_tensor(coef, dtype=like.dtype, device=like.device)
    if coef.ndim == 0:
        return coef
    return coef.reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(x0: torch.Tensor, t: torch.Tensor, alpha_bar: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Sample x_t ~ q(x_t | x_0) = N(sqrt(alpha-bar_t) x_0, (1 - alpha-bar_t) I) (DDPM eq. 4)."""
    noise = torch.randn_like(x0) if noise is None else noise
    ab = alpha_bar.to(x0.device)[t].to(x0.dtype)
    return _expand(ab.sqrt(), x0) * x0 + _expand((1 - ab).sqrt(), x0) * noise


def vp_coefficients(alpha_bar_t: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """(a_t, s_t) = (sqrt(alpha-bar_t), sqrt(1 - alpha-bar_t)) of the variance-preserving process."""
    ab = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    return ab.sqrt(), (1 - ab).sqrt()


def to_eps(pred: torch.Tensor, x: torch.Tensor, kind: str, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Convert a network output of type ``kind`` (eps, x0 or v) at x_t = a x_0 + s eps into eps."""
    a, s = _expand(a, x), _expand(s, x)
    if kind == "eps":
        return pred
    if kind == "x0":
        return (x - a * pred) / s
    if kind == "v":
        return s * x + a * pred
    raise ValueError(f"unknown prediction type '{kind}' (eps, x0 or v)")


def to_x0(pred: torch.Tensor, x: torch.Tensor, kind: str, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Convert a network output of type ``kind`` (eps, x0 or v) at x_t = a x_0 + s eps into x_0."""
    a, s = _expand(a, x), _expand(s, x)
    if kind == "x0":
        return pred
    if kind == "eps":
        return (x - s * pred) / a
    if kind == "v":
        return a * x - s * pred
    raise ValueError(f"unknown prediction type '{kind}' (eps, x0 or v)")


def training_target(x0: torch.Tensor, noise: torch.Tensor, kind: str, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The regression target of the ``kind`` parameterisation: eps, x_0 or v = a eps - s x_0."""
    if kind == "eps":
        return noise
    if kind == "x0":
        return x0
    if kind == "v":
        return _expand(a, x0) * noise - _expand(s, x0) * x0
    raise ValueError(f"unknown prediction type '{kind}' (eps, x0 or v)")
