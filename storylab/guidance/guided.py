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
    :class:`WeightSchedule`) modulates the rule's strength over the sampling steps. A step where the
    schedule's shape is 0 (outside an interval, the first step of linear) is a plain conditional step
    for every rule (one evaluation). ``nfe`` counts network evaluations (one batched call of k
    branches counts k).
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
        self._strengths: tuple[int, list[float], list[bool]] | None = None

    def _per_step(self, num_steps: int) -> tuple[list[float], list[bool]]:
        if self._strengths is None or self._strengths[0] != num_steps:
            values = self.rule.schedule_strengths(self.schedule, num_steps, self.scale).tolist()
            on = (self.schedule.strengths(num_steps, 1.0) != 0).tolist()
            self._strengths = (num_steps, values, on)
        return self._strengths[1], self._strengths[2]

    def strengths(self, num_steps: int) -> list[float]:
        """Per-step strengths of the rule (w_i for CFG, gamma_i for classifier guidance, lambda_i for CFG++)."""
        return self._per_step(num_steps)[0]

    def step_strength(self, ctx: StepContext) -> tuple[float, bool]:
        """(strength, guided?) of the step in ``ctx``; sigma intervals read the step's own noise level."""
        if self.schedule.needs_sigma:
            on = self.schedule.strength_at(ctx.step, ctx.num_steps, 1.0, sigma=ctx.sigma) != 0
            return (self.rule.strength(self.scale) if on else 0.0), on
        values, on = self._per_step(ctx.num_steps)
        return values[ctx.step], on[ctx.step]

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

    def _to_eps(self, value: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return to_eps(value, ctx.x, self.prediction, torch.tensor(ctx.a), torch.tensor(ctx.s))

    def __call__(self, ctx: StepContext) -> Prediction:
        if ctx.step == 0 and not ctx.corrector:
            self.rule.reset()
        w, guided = self.step_strength(ctx)
        if not guided:
            branch = self.rule.unguided_branch
            return Prediction(self._to_eps(self.evaluate(ctx.x, ctx.t, (branch,))[branch], ctx))
        raw = self.evaluate(ctx.x, ctx.t, self.rule.branches(w))
        if self.prediction != "eps" and self.rule.raw_space:
            # diffusers combines (and rescales) the raw network outputs; CFG's linear part is the same in any space.
            return Prediction(self._to_eps(self.rule.combine(raw, ctx, w).eps, ctx))
        eps = {name: self._to_eps(value, ctx) for name, value in raw.items()}
        return self.rule.combine(eps, ctx, w)
