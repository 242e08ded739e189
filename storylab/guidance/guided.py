"""Wrap any denoiser callable, its conditions and a guidance rule into a sampler-ready guided model.

``denoiser(x, t, cond) -> prediction`` is any network (an image UNet, a trajectory transformer)
whose output is eps, x_0 or v (``prediction``). Conditions are tensors or (nested) dicts of tensors
with a leading batch dimension; the branches a rule needs at a step (cond, uncond, negative) are
concatenated along the batch and evaluated in *one* network call, then split.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from storylab.diffusion.contract import Prediction, StepContext
from storylab.diffusion.forward import to_eps
from storylab.errors import StorylabError
from storylab.guidance.rules import GuidanceRule, NoGuidance
from storylab.guidance.schedules import WeightSchedule, check_scale, parse_schedule

Denoiser = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


def concat_conditions(conds: list[Any]) -> Any:
    """Concatenate conditions (tensors or dicts of tensors, recursively) along the batch dimension."""
    first = conds[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(conds, dim=0)
    if isinstance(first, dict):
        return {key: concat_conditions([c[key] for c in conds]) for key in first}
    if first is None:
        return None
    raise TypeError(f"conditions must be tensors or dicts of tensors, got {type(first).__name__}")


class Guided:
    """A guided model for the samplers: ``Guided(...)(ctx) -> Prediction``.

    ``scale`` follows the diffusers convention (1 = conditional); ``schedule`` (a SPEC string or a
    :class:`WeightSchedule`) modulates the rule's strength over the sampling steps. ``nfe`` counts
    network evaluations (one batched call of k branches counts k).
    """

    def __init__(self, denoiser: Denoiser, cond: Any, rule: GuidanceRule | None = None, scale: float = 1.0,
                 schedule: str | WeightSchedule | None = None, uncond: Any = None, negative: Any = None,
                 prediction: str = "eps") -> None:
        check_scale(scale)
        self.denoiser = denoiser
        self.rule = rule or NoGuidance()
        self.schedule = parse_schedule(schedule)
        self.scale = scale
        self.conditions = {"cond": cond, "uncond": uncond, "negative": negative}
        self.prediction = prediction
        self.nfe = 0
        self._strengths: tuple[int, list[float]] | None = None

    def strengths(self, num_steps: int) -> list[float]:
        """Per-step strengths of the rule (w_i for CFG, gamma_i for classifier guidance)."""
        if self._strengths is None or self._strengths[0] != num_steps:
            values = self.schedule.strengths(num_steps, self.rule.strength(self.scale)).tolist()
            self._strengths = (num_steps, values)
        return self._strengths[1]

    def evaluate(self, x: torch.Tensor, t: torch.Tensor, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Run the denoiser once on the concatenation of the requested branches; return raw outputs."""
        for name in names:
            if self.conditions[name] is None and name != "cond":
                raise StorylabError(f"this guidance needs a '{name}' condition, but none was given")
        k = len(names)
        conds = [self.conditions[n] for n in names]
        xs = x if k == 1 else torch.cat([x] * k, dim=0)
        ts = t if k == 1 else torch.cat([t] * k, dim=0)
        out = self.denoiser(xs, ts, conds[0] if k == 1 else concat_conditions(conds))
        self.nfe += k
        return dict(zip(names, out.chunk(k, dim=0)))

    def __call__(self, ctx: StepContext) -> Prediction:
        if ctx.step == 0:
            self.rule.reset()
        w = self.strengths(ctx.num_steps)[ctx.step]
        raw = self.evaluate(ctx.x, ctx.t, self.rule.branches(w))
        eps = {name: to_eps(value, ctx.x, self.prediction, torch.tensor(ctx.a), torch.tensor(ctx.s))
               for name, value in raw.items()}
        return self.rule.combine(eps, ctx, w)
