"""A diffusers guider that applies any storylab weight schedule inside diffusers' modular pipelines.

diffusers 0.42's guiders (``diffusers.guiders``, experimental) take one ``guidance_scale`` (plus a
start/stop window); :class:`ScheduledCFG` subclasses their :class:`ClassifierFreeGuidance` and sets
the scale of every step from a storylab schedule SPEC (Wang et al. 2024), so a modular pipeline
(``StableDiffusionXLAutoBlocks().init_pipeline()``) samples with ``linear``, ``clamp:linear:c=2``,
``pcs:s=1``, ``interval:sigma_lo=..,sigma_hi=..`` and the rest. Where a step's scale is 1 the guider
asks for the conditional batch only (one UNet call instead of two). Unlike the classic pipelines'
callback (:mod:`storylab.guidance.diffusers_callback`), scales below 1 work here: the guider
combines the two predictions itself. Convention: diffusers' (pred_u + s (pred_c - pred_u)).

Usage::

    from storylab.guidance.diffusers_guider import ScheduledCFG
    pipe.update_components(guider=ScheduledCFG("clamp:linear:c=2", guidance_scale=7.5))
    image = pipe(prompt="...", num_inference_steps=30, output="images")[0]
"""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.guiders import ClassifierFreeGuidance
from diffusers.guiders.guider_utils import GuiderOutput, rescale_noise_cfg

from storylab.errors import StorylabError
from storylab.guidance.schedules import check_scale, parse_schedule


class ScheduledCFG(ClassifierFreeGuidance):
    """diffusers' classifier-free guider with a per-step scale s_i = 1 + w_i from a storylab schedule SPEC.

    ``start``/``stop`` keep diffusers' window (int(start N) <= i < int(stop N)) on top of the
    schedule. A sigma interval needs ``alphas_cumprod`` (the scheduler's) to read sigma from the
    step's timestep: sigma = sqrt((1 - alpha-bar_t) / alpha-bar_t). ``history`` records the scale
    of every step.
    """

    @register_to_config
    def __init__(self, schedule: str = "constant", guidance_scale: float = 7.5, guidance_rescale: float = 0.0,
                 start: float = 0.0, stop: float = 1.0, enabled: bool = True, grid: str | None = None,
                 alphas_cumprod: Any = None) -> None:
        super().__init__(guidance_scale=guidance_scale, guidance_rescale=guidance_rescale,
                         use_original_formulation=False, start=start, stop=stop, enabled=enabled)
        check_scale(guidance_scale)
        self.schedule = parse_schedule(schedule, grid=grid)
        if self.schedule.needs_sigma and alphas_cumprod is None:
            raise StorylabError(f"schedule '{self.schedule.spec}' reads sigma: pass alphas_cumprod=pipe.scheduler.alphas_cumprod")
        self._alphas_cumprod = None if alphas_cumprod is None else torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        self._timestep: Any = None
        self._cache: tuple[int, list[float]] | None = None
        self.history: list[float] = []

    def set_state(self, step: int, num_inference_steps: int, timestep: torch.LongTensor) -> None:
        super().set_state(step, num_inference_steps, timestep)
        self._timestep = timestep
        if step == 0:
            self.history = []
        if len(self.history) == step:
            self.history.append(self.current_scale())

    def current_scale(self) -> float:
        """The scale of the current step (the nominal scale before the pipeline has set a step)."""
        if self._step is None or self._num_inference_steps is None:
            return self.guidance_scale
        if self.schedule.needs_sigma:
            t = int(torch.as_tensor(self._timestep).reshape(-1)[0].round())
            ab = float(self._alphas_cumprod[t])
            sigma = math.sqrt((1 - ab) / ab)
            return 1.0 + self.schedule.strength_at(self._step, self._num_inference_steps, self.guidance_scale - 1.0,
                                                    sigma=sigma)
        n = self._num_inference_steps
        if self._cache is None or self._cache[0] != n:
            self._cache = (n, self.schedule.scales(n, self.guidance_scale).tolist())
        return self._cache[1][self._step]

    def _in_window(self) -> bool:
        if self._num_inference_steps is None:
            return True
        n = self._num_inference_steps
        return int(self._start * n) <= self._step < int(self._stop * n)

    def _is_cfg_enabled(self) -> bool:
        if not self._enabled or not self._in_window():
            return False
        if self._step is None or self._num_inference_steps is None:
            return True  # before the loop: the encoders must prepare the negative embeddings
        return not math.isclose(self.current_scale(), 1.0)

    def forward(self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor | None = None) -> GuiderOutput:
        if self._is_cfg_enabled():
            pred = pred_uncond + self.current_scale() * (pred_cond - pred_uncond)
        else:
            pred = pred_cond
        if self.guidance_rescale > 0.0:
            pred = rescale_noise_cfg(pred, pred_cond, self.guidance_rescale)
        return GuiderOutput(pred=pred, pred_cond=pred_cond, pred_uncond=pred_uncond)


# Rules whose combination needs only the two raw predictions (no x_t, no third branch): they run inside
# any modular pipeline's CFG batching through :class:`ScheduledGuider`.
MODULAR_RULES = ("cfg", "cfg-zero*", "tcfg", "fdg", "apg-mix")


class ScheduledGuider(ClassifierFreeGuidance):
    """A storylab rule (CFG-Zero*, TCFG, FDG, APG-Mix, CFG) as a diffusers guider, with a weight schedule.

    The rule combines pred_cond and pred_uncond exactly as in storylab's samplers
    (:mod:`storylab.guidance.guiders`); diffusers' CFG guider supplies the batching. ``rule_options``
    are the rule's options (``{"low_scale": 2.0}`` for FDG); ``history`` records each step's strength.
    FDG here uses storylab's Laplacian pyramid, so it needs no kornia.
    """

    @register_to_config
    def __init__(self, rule: str = "tcfg", schedule: str = "constant", guidance_scale: float = 7.5,
                 rule_options: dict | None = None, grid: str | None = None, enabled: bool = True) -> None:
        from storylab.guidance.registry import canonical_rule, make_rule

        super().__init__(guidance_scale=guidance_scale, guidance_rescale=0.0, use_original_formulation=False,
                         start=0.0, stop=1.0, enabled=enabled)
        check_scale(guidance_scale)
        key = canonical_rule(rule)
        if key not in MODULAR_RULES:
            raise StorylabError(f"guidance '{key}' does not run as a two-branch diffusers guider (choose from "
                                f"{', '.join(MODULAR_RULES)}; PAG/SEG/SLG/AutoGuidance: schedule_guider on diffusers' own)")
        self.rule = make_rule(key, **(rule_options or {}))
        self.schedule = parse_schedule(schedule, grid=grid)
        if self.schedule.needs_sigma:
            raise StorylabError(f"schedule '{self.schedule.spec}' reads sigma: use ScheduledCFG with alphas_cumprod")
        self._cache: tuple[int, list, list[bool]] | None = None
        self.history: list = []

    def _per_step(self) -> tuple[Any, bool]:
        n = self._num_inference_steps
        if self._cache is None or self._cache[0] != n:
            if self.schedule.absolute:
                values = [self.rule.strength(s) for s in self.schedule.absolute_scales(n).tolist()]
                on = [True] * n
            else:
                values = self.rule.schedule_strengths(self.schedule, n, self.guidance_scale).tolist()
                on = (self.schedule.strengths(n, 1.0).abs() > 1e-12).tolist()
            self._cache = (n, values, on)
        return self._cache[1][self._step], self._cache[2][self._step]

    def _context(self, like: torch.Tensor):
        from storylab.diffusion.contract import StepContext

        # The raw-space rules read only the step; x_t and the coefficients are not the guider's to know.
        return StepContext(x=like, t=torch.as_tensor(self._timestep).reshape(-1), step=self._step,
                           num_steps=self._num_inference_steps, a=math.nan, s=math.nan)

    def set_state(self, step: int, num_inference_steps: int, timestep: torch.LongTensor) -> None:
        super().set_state(step, num_inference_steps, timestep)
        if step == 0:
            self.history = []
            self.rule.reset()
        if len(self.history) == step:
            self.history.append(self._per_step()[0])

    def _zero_step(self) -> bool:
        return self._step is not None and self._step < getattr(self.rule, "zero_init_steps", 0)

    def _is_cfg_enabled(self) -> bool:
        if not self._enabled:
            return False
        if self._step is None or self._num_inference_steps is None:
            return True  # before the loop: the encoders must prepare the negative embeddings
        if self._zero_step():
            return False
        w, on = self._per_step()
        return on and "uncond" in self.rule.branches(w)

    def forward(self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor | None = None) -> GuiderOutput:
        if self._zero_step():
            pred = torch.zeros_like(pred_cond)  # CFG-Zero*'s zero-init
        elif not self._is_cfg_enabled():
            pred = pred_cond
        else:
            w, _ = self._per_step()
            pred = self.rule.combine({"cond": pred_cond, "uncond": pred_uncond}, self._context(pred_cond), w).eps
        return GuiderOutput(pred=pred, pred_cond=pred_cond, pred_uncond=pred_uncond)


# diffusers' own guiders whose scales a schedule modulates: (attribute, kind). "cfg" scales are in the
# diffusers convention (1 = off: s_i = 1 + (s - 1) shape_i); "strength" scales are 0 = off (s_i = s shape_i).
SCHEDULED_ATTRIBUTES = {
    "ClassifierFreeGuidance": (("guidance_scale", "cfg"),),
    "AutoGuidance": (("guidance_scale", "cfg"),),
    "ClassifierFreeZeroStarGuidance": (("guidance_scale", "cfg"),),
    "TangentialClassifierFreeGuidance": (("guidance_scale", "cfg"),),
    "AdaptiveProjectedGuidance": (("guidance_scale", "cfg"),),
    "AdaptiveProjectedMixGuidance": (("guidance_scale", "cfg"), ("adaptive_projected_guidance_scale", "cfg")),
    "PerturbedAttentionGuidance": (("skip_layer_guidance_scale", "strength"), ("guidance_scale", "cfg")),
    "SkipLayerGuidance": (("skip_layer_guidance_scale", "strength"), ("guidance_scale", "cfg")),
    "SmoothedEnergyGuidance": (("seg_guidance_scale", "strength"), ("guidance_scale", "cfg")),
}


def schedule_guider(guider: Any, schedule: str, grid: str | None = None) -> Any:
    """Modulate a diffusers guider's scales per step with a storylab schedule (PAG, SEG, SLG, AutoGuidance, ...).

    The guider is changed in place and returned: at every ``set_state`` its scales are set to the
    schedule's values at that step (the first listed attribute takes a ``list``/``piecewise``
    schedule's absolute scales; the others keep their nominal value there). ``guider.history``
    records the first attribute per step.
    """
    kind = type(guider).__name__
    if kind not in SCHEDULED_ATTRIBUTES:
        raise StorylabError(f"no schedule mapping for diffusers guider '{kind}' (known: {', '.join(SCHEDULED_ATTRIBUTES)})")
    parsed = parse_schedule(schedule, grid=grid)
    if parsed.needs_sigma:
        raise StorylabError(f"schedule '{parsed.spec}' reads sigma: use ScheduledCFG with alphas_cumprod")
    attributes = SCHEDULED_ATTRIBUTES[kind]
    nominal = {name: float(getattr(guider, name)) for name, _ in attributes}
    for name, scale_kind in attributes:
        if scale_kind == "cfg":
            check_scale(nominal[name])
    original = guider.set_state
    guider.history = []

    def value(name: str, scale_kind: str, n: int, step: int, first: bool) -> float:
        if parsed.absolute:
            return float(parsed.absolute_scales(n)[step]) if first else nominal[name]
        if scale_kind == "cfg":
            return 1.0 + float(parsed.strengths_array(n, nominal[name] - 1.0)[step])
        return float(parsed.strengths_array(n, nominal[name])[step])

    def set_state(step: int, num_inference_steps: int, timestep: torch.LongTensor) -> None:
        original(step, num_inference_steps, timestep)
        for i, (name, scale_kind) in enumerate(attributes):
            setattr(guider, name, value(name, scale_kind, num_inference_steps, step, i == 0))
        if step == 0:
            guider.history = []
        if len(guider.history) == step:
            guider.history.append(getattr(guider, attributes[0][0]))

    guider.set_state = set_state
    return guider
