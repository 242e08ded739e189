"""Wrap any denoiser callable, its conditions and a guidance rule into a sampler-ready guided model.

``denoiser(x, t, cond) -> prediction`` is any network (an image UNet, a trajectory transformer)
whose output is eps, x_0 or v (``prediction``). Conditions are tensors or (nested) dicts of tensors
with a leading batch dimension; the branches a rule needs at a step (cond, uncond, negative) are
concatenated along the batch and evaluated in *one* network call, then split.

A branch may have its own network (``networks``): AutoGuidance's ``weak`` model (Karras et al.
2024), the perturbed network of PAG / SEG / skip-layer guidance (``perturbed``), or a separate,
smaller unconditional network for CFG (``uncond``, Karras et al. 2024's cond-XL + uncond-XS
setup). The ``weak`` and ``perturbed`` branches see the conditional condition. Branches sharing a
network are still batched into one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from storylab.diffusion.contract import Prediction, StepContext
from storylab.diffusion.forward import to_eps
from storylab.errors import StorylabError
from storylab.guidance.rules import GuidanceRule, NoGuidance, near
from storylab.guidance.schedules import WeightSchedule, check_scale, parse_schedule

Denoiser = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
BRANCHES = ("cond", "uncond", "negative", "weak", "perturbed")
_COND_BRANCHES = ("weak", "perturbed")  # evaluated with the conditional condition


@dataclass(frozen=True)
class BranchNetwork:
    """A separate network for one branch and the kind of output it predicts (eps, x0 or v)."""

    denoiser: Denoiser
    prediction: str = "eps"


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
    branches counts k). ``networks`` maps a branch (``weak``, ``perturbed``, ``uncond``, ...) to its
    own :class:`BranchNetwork` (or a bare denoiser predicting like the main one).
    """

    def __init__(self, denoiser: Denoiser, cond: Any, rule: GuidanceRule | None = None, scale: float = 1.0,
                 schedule: str | WeightSchedule | None = None, uncond: Any = None, negative: Any = None,
                 prediction: str = "eps", networks: dict[str, BranchNetwork | Denoiser] | None = None) -> None:
        check_scale(scale)
        self.denoiser = denoiser
        self.rule = rule or NoGuidance()
        self.schedule = parse_schedule(schedule)
        self.scale = scale
        self.conditions = {"cond": cond, "uncond": uncond, "negative": negative}
        self.prediction = prediction
        self.networks: dict[str, BranchNetwork] = {}
        for name, net in (networks or {}).items():
            if name not in BRANCHES:
                raise StorylabError(f"unknown branch '{name}' for a separate network (choose from {', '.join(BRANCHES)})")
            self.networks[name] = net if isinstance(net, BranchNetwork) else BranchNetwork(net, prediction)
        needed = set(getattr(self.rule, "network_branches", ()))
        missing = sorted(needed - set(self.networks))
        if missing:
            raise StorylabError(f"guidance '{self.rule.name}' needs a separate network for the '{missing[0]}' branch, "
                                "but none was given")
        self.nfe = 0
        self._strengths: tuple[int, list, list[bool]] | None = None

    def _per_step(self, num_steps: int) -> tuple[list[float], list[bool]]:
        if self._strengths is None or self._strengths[0] != num_steps:
            if self.schedule.absolute:  # list / piecewise: each step's own scale, read by the rule like a scale
                values = [self.rule.strength(s) for s in self.schedule.absolute_scales(num_steps).tolist()]
                on = [True] * num_steps
            else:
                values = self.rule.schedule_strengths(self.schedule, num_steps, self.scale).tolist()
                on = (self.schedule.strengths(num_steps, 1.0).abs() > 1e-12).tolist()  # shape 0: an unguided step
            self._strengths = (num_steps, values, on)
        return self._strengths[1], self._strengths[2]

    def strengths(self, num_steps: int) -> list[float]:
        """Per-step strengths of the rule (w_i for CFG, gamma_i for classifier guidance, lambda_i for CFG++)."""
        return self._per_step(num_steps)[0]

    def step_strength(self, ctx: StepContext) -> tuple[float, bool]:
        """(strength, guided?) of the step in ``ctx``; sigma intervals read the step's own noise level."""
        if self.schedule.needs_sigma:
            on = not near(self.schedule.strength_at(ctx.step, ctx.num_steps, 1.0, sigma=ctx.sigma), 0.0)
            return (self.rule.strength(self.scale) if on else self.rule.zero_strength()), on
        values, on = self._per_step(ctx.num_steps)
        return values[ctx.step], on[ctx.step]

    def _condition(self, name: str) -> Any:
        return self.conditions["cond" if name in _COND_BRANCHES else name]

    def _network(self, name: str) -> BranchNetwork | None:
        return self.networks.get(name)

    def _prediction_of(self, name: str) -> str:
        net = self._network(name)
        return self.prediction if net is None else net.prediction

    def evaluate(self, x: torch.Tensor, t: torch.Tensor, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Run each network once on the concatenation of the branches it serves; return raw outputs."""
        for name in names:
            if name in _COND_BRANCHES and self._network(name) is None:
                raise StorylabError(f"this guidance needs a separate network for the '{name}' branch, but none was given")
            if self._condition(name) is None and name not in ("cond", *_COND_BRANCHES):
                raise StorylabError(f"this guidance needs a '{name}' condition, but none was given")
        groups: dict[int, list[str]] = {}
        for name in names:
            net = self._network(name)
            groups.setdefault(id(net.denoiser) if net is not None else 0, []).append(name)
        out: dict[str, torch.Tensor] = {}
        for group in groups.values():
            net = self._network(group[0])
            denoiser = self.denoiser if net is None else net.denoiser
            k = len(group)
            conds = [self._condition(n) for n in group]
            xs = x if k == 1 else torch.cat([x] * k, dim=0)
            ts = t if k == 1 else torch.cat([t] * k, dim=0)
            value = denoiser(xs, ts, conds[0] if k == 1 else concat_conditions(conds))
            out.update(zip(group, value.chunk(k, dim=0)))
            self.nfe += k
        return out

    def _to_eps(self, value: torch.Tensor, ctx: StepContext, prediction: str | None = None) -> torch.Tensor:
        return to_eps(value, ctx.x, prediction or self.prediction, torch.tensor(ctx.a), torch.tensor(ctx.s))

    def __call__(self, ctx: StepContext) -> Prediction:
        if ctx.step == 0 and not ctx.corrector:
            self.rule.reset()
        if self.rule.zero_step(ctx):
            # CFG-Zero*'s zero-init: the combined raw output is 0 at this step; no network is evaluated.
            return Prediction(self._to_eps(torch.zeros_like(ctx.x), ctx))
        w, guided = self.step_strength(ctx)
        if not guided:
            branch = self.rule.unguided_branch
            return Prediction(self._to_eps(self.evaluate(ctx.x, ctx.t, (branch,))[branch], ctx,
                                           self._prediction_of(branch)))
        raw = self.evaluate(ctx.x, ctx.t, self.rule.branches(w))
        kinds = {self._prediction_of(name) for name in raw}
        if self.rule.raw_space and kinds != {"eps"} and len(kinds) == 1:
            # diffusers combines (and rescales) the raw network outputs; CFG's linear part is the same in any space.
            return Prediction(self._to_eps(self.rule.combine(raw, ctx, w).eps, ctx, kinds.pop()))
        eps = {name: self._to_eps(value, ctx, self._prediction_of(name)) for name, value in raw.items()}
        return self.rule.combine(eps, ctx, w)
