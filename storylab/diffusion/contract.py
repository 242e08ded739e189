"""The sampler contract: what a sampler hands to the (guided) model at each step, and what it gets back.

A sampler never sees a network, a class label or a caption. At every network evaluation it builds a
:class:`StepContext` (the current x_t, the model's time input, where we are in sampling, and the
perturbation coefficients x_t = a x_0 + s eps) and calls a *guided model*
``Callable[[StepContext], Prediction]``. :mod:`storylab.guidance` builds guided models from any
denoiser callable and any guidance rule, so every sampler gets every guidance for free
(k-diffusion's design).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from storylab.diffusion.forward import _expand


@dataclass
class StepContext:
    """One network evaluation inside a sampler.

    ``t`` is the model's time input ``(B,)``: integer timesteps for DDPM/DDIM, sigma for EDM.
    ``step`` counts sampling steps from 0 (noisiest) to ``num_steps - 1``; ``a`` and ``s`` are the
    perturbation coefficients of x_t = a x_0 + s eps (scalars). ``corrector`` marks a second
    evaluation inside the same step (EDM Heun), so per-sampling state is not reset twice.
    ``variance`` is the ancestral sampler's Sigma_t of this step (DDPM), ``None`` elsewhere: it lets
    classifier guidance shift the mean by Sigma_t gamma grad as guided-diffusion does.
    """

    x: torch.Tensor
    t: torch.Tensor
    step: int
    num_steps: int
    a: float
    s: float
    corrector: bool = False
    variance: float | None = None

    @property
    def sigma(self) -> float:
        """The noise level sigma = s / a of this evaluation (sqrt((1 - alpha-bar) / alpha-bar) for VP, sigma for EDM)."""
        return self.s / self.a

    @property
    def progress(self) -> float:
        """Sampling progress in [0, 1]: 0 at the first (noisiest) step, 1 at the last."""
        return self.step / (self.num_steps - 1) if self.num_steps > 1 else 1.0

    def eps_to_x0(self, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - s eps) / a."""
        return (self.x - self.s * eps) / self.a

    def x0_to_eps(self, x0: torch.Tensor) -> torch.Tensor:
        """eps = (x_t - a x_0) / s."""
        return (self.x - self.a * x0) / self.s


@dataclass
class Prediction:
    """A guided model's answer, in eps form.

    ``eps`` defines the x_0 estimate; ``renoise_eps`` (optional) is the noise direction used to move
    to the next noise level (CFG++ renoises with the unconditional eps); by default it is ``eps``.
    ``eps_shift`` (classifier guidance) is the part of ``eps`` added by guidance: a sampler that clips
    x_0 in guided-diffusion's order clips the x_0 of ``eps - eps_shift`` and adds the shift unclipped.
    ``mean_shift`` (classifier guidance on DDPM, guided-diffusion's ``condition_mean``) is added to the
    ancestral mean; ``eps`` is then the unguided prediction.
    """

    eps: torch.Tensor
    renoise_eps: torch.Tensor | None = None
    eps_shift: torch.Tensor | None = None
    mean_shift: torch.Tensor | None = None

    @property
    def direction(self) -> torch.Tensor:
        """The eps used to re-noise towards the next step."""
        return self.eps if self.renoise_eps is None else self.renoise_eps


class GuidedModel(Protocol):
    """What a sampler calls: ``model(ctx) -> Prediction``."""

    def __call__(self, ctx: StepContext) -> Prediction: ...


StepCallback = Callable[[int, torch.Tensor], None]

__all__ = ["GuidedModel", "Prediction", "StepCallback", "StepContext", "_expand"]
