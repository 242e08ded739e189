"""Guidance rules: how the branch predictions of one step combine into the eps a sampler uses.

Every rule declares which branches it needs for a given strength (so that a step with w = 0 costs
one network evaluation instead of two) and combines eps-form predictions. All formulas are in the
diffusers convention scale = w + 1 (see :mod:`storylab.guidance.schedules`).

* :class:`NoGuidance` - the conditional prediction alone.
* :class:`CFG` - classifier-free guidance eps = eps_u + (w + 1)(eps_c - eps_u) (Ho & Salimans 2022),
  optionally with guidance rescale phi (Lin et al. 2023, eq. 15-16) and with the negative condition
  as the reference branch (negative prompting: scale 0 then gives eps_neg, not eps_u). For v- or
  x_0-prediction networks it combines and rescales the raw outputs, as diffusers does.
* :class:`NegativeCFG` - the three-branch rule eps_u + s (eps_c - eps_u) - s_n (eps_neg - eps_u)
  (positive guidance and a separate negative scale s_n; scale 0 with s_n = 0 is unconditional).
* :class:`ClassifierGuidance` - on DDPM, guided-diffusion's ``condition_mean``: mu + Sigma_t gamma grad_x
  log p(y | x_t, t) (Dhariwal & Nichol 2021, Algorithm 1; no guidance on the last step, Sigma = 0);
  elsewhere (or ``form="score"``) the score form eps_hat = eps - s_t gamma grad (Algorithm 2;
  s_t = sqrt(1 - alpha-bar_t) for DDPM/DDIM, sigma for EDM). gamma is not portable between the two.
* :class:`CFGPlusPlus` - CFG++ (Chung et al. 2024): x_0 from eps_u + lambda (eps_c - eps_u), renoise with eps_u.
* :class:`APG` - adaptive projected guidance (Sadat et al. 2024): the x_0-space guidance difference is
  split into parts parallel and orthogonal to the conditional x_0, the parallel part down-weighted
  by eta, its norm capped at r, with optional (negative) momentum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from storylab.diffusion.contract import Prediction, StepContext
from storylab.errors import StorylabError
from storylab.guidance.schedules import WeightSchedule


def near(value: float, target: float) -> bool:
    """Float equality that decides a branch: ``math.isclose`` with an absolute floor (scales near 0 too)."""
    return math.isclose(value, target, rel_tol=1e-9, abs_tol=1e-12)


def rescale_guided(guided: torch.Tensor, cond: torch.Tensor, phi: float) -> torch.Tensor:
    """Guidance rescale (Lin et al. 2023, eq. 15-16): phi guided std(cond)/std(guided) + (1 - phi) guided, per sample."""
    if phi <= 0:
        return guided
    dims = tuple(range(1, guided.ndim))
    factor = cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True).clamp_min(1e-12)
    return phi * guided * factor + (1 - phi) * guided


def _per_sample_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1).reshape(-1, *([1] * (a.ndim - 1)))


class GuidanceRule:
    """Base class: ``strength(scale)``, ``branches(w)`` and ``combine(eps, ctx, w)``."""

    name = "rule"
    unguided_branch = "cond"  # the branch a step uses where the schedule's shape is 0
    needs_negative = False  # evaluates the 'negative' branch, so a caller must give a negative condition
    raw_space = False  # combine raw network outputs (v / x_0) instead of eps
    network_branches: tuple[str, ...] = ()  # branches that need their own network (weak, perturbed)

    def strength(self, scale: float) -> float:
        """The quantity a weight schedule modulates (w = scale - 1 for CFG-like rules)."""
        return scale - 1.0

    def schedule_strengths(self, schedule: WeightSchedule, num_steps: int, scale: float) -> torch.Tensor:
        """Per-step strengths under ``schedule`` (the schedule times ``strength(scale)`` by default)."""
        return schedule.strengths(num_steps, self.strength(scale))

    def branches(self, w: float) -> tuple[str, ...]:
        """The branches (cond, uncond, negative) this rule evaluates at strength ``w``."""
        raise NotImplementedError

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w: float) -> Prediction:
        """Combine eps-form branch predictions into the sampler's prediction."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget per-sampling state (momentum); called at step 0."""

    def zero_strength(self):
        """The strength of an unguided step (0, or a tuple of zeros for rules with several strengths)."""
        return 0.0

    def zero_step(self, ctx: StepContext) -> bool:
        """True where the rule replaces the combined raw output by 0 without evaluating (CFG-Zero*'s zero-init)."""
        return False


class NoGuidance(GuidanceRule):
    """Plain conditional sampling: eps = eps_c (one network evaluation per step)."""

    name = "none"

    def branches(self, w: float) -> tuple[str, ...]:
        return ("cond",)

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w: float) -> Prediction:
        return Prediction(eps["cond"])


@dataclass
class CFG(GuidanceRule):
    """Classifier-free guidance eps = eps_ref + (w + 1)(eps_c - eps_ref), ref = uncond or negative.

    ``rescale`` is phi of Lin et al. (2023): eps_resc = eps * std(eps_c) / std(eps), then
    phi eps_resc + (1 - phi) eps (per sample).
    """

    rescale: float = 0.0
    reference: str = "uncond"
    raw_space = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.rescale <= 1.0:
            raise StorylabError(f"guidance rescale phi must be in [0, 1], got {self.rescale}")
        self.name = "negative" if self.reference == "negative" else "cfg"
        self.needs_negative = self.reference == "negative"

    def branches(self, w: float) -> tuple[str, ...]:
        if near(w, 0.0):
            return ("cond",)
        if near(w, -1.0):
            return (self.reference,)
        return ("cond", self.reference)

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w: float) -> Prediction:
        if near(w, 0.0):
            return Prediction(eps["cond"])
        if near(w, -1.0):
            return Prediction(eps[self.reference])
        cond, ref = eps["cond"], eps[self.reference]
        return Prediction(rescale_guided(ref + (w + 1.0) * (cond - ref), cond, self.rescale))


@dataclass
class NegativeCFG(GuidanceRule):
    """Three-branch negative prompting: eps_u + (w + 1)(eps_c - eps_u) - s_n (eps_neg - eps_u).

    The schedule modulates w (the positive guidance); ``negative_scale`` s_n is applied as given on
    every guided step. With s_n = 0 this is CFG; scale 0 with s_n = 0 is the unconditional eps.
    """

    negative_scale: float = 1.0
    name: str = field(default="negative3", init=False)
    needs_negative = True

    def branches(self, w: float) -> tuple[str, ...]:
        return ("cond", "uncond", "negative")

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w: float) -> Prediction:
        cond, uncond, negative = eps["cond"], eps["uncond"], eps["negative"]
        return Prediction(uncond + (w + 1.0) * (cond - uncond) - self.negative_scale * (negative - uncond))


@dataclass
class ClassifierGuidance(GuidanceRule):
    """Classifier guidance (Dhariwal & Nichol 2021) in guided-diffusion's two forms.

    ``classifier(x_t, t) -> logits`` must be noise-aware (trained on q_sample'd inputs with t as
    input); ``labels`` are the requested classes ``(B,)``. ``base`` picks the branch whose eps is
    guided (the conditional model by default, the unconditional one for pure classifier guidance).
    The strength is gamma itself (gamma = 0: no guidance). ``form``: ``auto`` (default) shifts the
    ancestral mean by Sigma_t gamma grad where the sampler gives Sigma_t (DDPM, the paper's
    Algorithm 1) and shifts eps by -s_t gamma grad elsewhere (DDIM / EDM, Algorithm 2); ``score``
    always uses the eps shift.
    """

    classifier: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    labels: torch.Tensor | None = None
    base: str = "cond"
    form: str = "auto"
    name: str = field(default="classifier", init=False)

    def __post_init__(self) -> None:
        if self.form not in ("auto", "score"):
            raise StorylabError(f"unknown classifier-guidance form '{self.form}' (auto or score)")
        self.unguided_branch = self.base

    def strength(self, scale: float) -> float:
        return scale

    def branches(self, w: float) -> tuple[str, ...]:
        return (self.base,)

    def grad_log_prob(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """grad_x log p(y | x_t, t) for the requested labels."""
        if self.classifier is None or self.labels is None:
            raise StorylabError("classifier guidance needs a classifier and labels")
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            log_probs = torch.log_softmax(self.classifier(x, t), dim=-1)
            selected = log_probs[torch.arange(x.shape[0], device=x.device), self.labels.to(x.device)]
            return torch.autograd.grad(selected.sum(), x)[0]

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w: float) -> Prediction:
        base = eps[self.base]
        if near(w, 0.0):
            return Prediction(base)
        if self.form == "auto" and ctx.variance is not None:
            if near(ctx.variance, 0.0):
                return Prediction(base)  # last DDPM step: Sigma = 0, the mean shift vanishes
            return Prediction(base, mean_shift=ctx.variance * w * self.grad_log_prob(ctx.x, ctx.t))
        shift = -ctx.s * w * self.grad_log_prob(ctx.x, ctx.t)
        return Prediction(base + shift, eps_shift=shift)


@dataclass
class CFGPlusPlus(GuidanceRule):
    """CFG++ (Chung et al. 2024): x_0 from eps_u + lambda (eps_c - eps_u), renoise with eps_u.

    The scale is lambda itself, in the paper's [0, 1]: lambda = 0 is unconditional, and lambda = 1 is
    *not* conditional sampling (x_0 from eps_c, but renoised with eps_u). Under a schedule lambda_i =
    lambda * shape_i / max(shape) stays within [0, lambda] (no mean normalisation, which would push it
    above 1), and a step where the shape is 0 is a plain conditional step (eps_c for x_0 and renoise).
    """

    name: str = field(default="cfg++", init=False)

    def strength(self, scale: float) -> float:
        return scale

    def schedule_strengths(self, schedule: WeightSchedule, num_steps: int, scale: float) -> torch.Tensor:
        unit = schedule.strengths(num_steps, 1.0)
        peak = unit.max()
        return unit * 0.0 if peak <= 0 else scale * unit / peak

    def branches(self, w: float) -> tuple[str, ...]:
        return ("uncond",) if near(w, 0.0) else ("cond", "uncond")

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w: float) -> Prediction:
        uncond = eps["uncond"]
        if near(w, 0.0):
            return Prediction(uncond)
        return Prediction(uncond + w * (eps["cond"] - uncond), renoise_eps=uncond)


@dataclass
class APG(GuidanceRule):
    """Adaptive projected guidance (Sadat et al. 2024) in x_0 space.

    diff = x0_c - x0_u (+ momentum * running average), norm capped at ``norm_threshold`` (0 = off),
    split into diff_par (along x0_c) and diff_orth; x0 = x0_c + w (diff_orth + eta diff_par).
    With eta = 1, no cap and no momentum this is exactly CFG.
    """

    eta: float = 0.0
    norm_threshold: float = 0.0
    momentum: float = 0.0
    name: str = field(default="apg", init=False)
    _running: torch.Tensor | None = field(default=None, init=False, repr=False)

    def reset(self) -> None:
        self._running = None

    def branches(self, w: float) -> tuple[str, ...]:
        return ("cond",) if near(w, 0.0) else ("cond", "uncond")

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w: float) -> Prediction:
        if near(w, 0.0):
            return Prediction(eps["cond"])
        x0_c, x0_u = ctx.eps_to_x0(eps["cond"]), ctx.eps_to_x0(eps["uncond"])
        diff = x0_c - x0_u
        if not near(self.momentum, 0.0):
            if self._running is not None and self._running.shape == diff.shape:
                diff = diff + self.momentum * self._running
            self._running = diff
        if self.norm_threshold > 0:
            norm = diff.flatten(1).norm(dim=1).reshape(-1, *([1] * (diff.ndim - 1)))
            diff = diff * torch.clamp(self.norm_threshold / norm.clamp_min(1e-12), max=1.0)
        unit = x0_c / x0_c.flatten(1).norm(dim=1).reshape(-1, *([1] * (diff.ndim - 1))).clamp_min(1e-12)
        parallel = _per_sample_dot(diff, unit) * unit
        orthogonal = diff - parallel
        x0 = x0_c + w * (orthogonal + self.eta * parallel)
        return Prediction(ctx.x0_to_eps(x0))
