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
