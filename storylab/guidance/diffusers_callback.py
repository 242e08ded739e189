"""Guidance-weight schedules on classic diffusers pipelines, in one line (a ``callback_on_step_end``).

diffusers pipelines read ``pipe._guidance_scale`` at every step, and a ``callback_on_step_end`` may
change it for the next step. The pitfalls: the pipeline doubles the batch (negative + positive
prompt embeddings, SDXL's pooled ``add_text_embeds`` and ``add_time_ids``) only while the scale is
> 1, it builds the doubled tensors once, before the loop, and ``num_images_per_prompt`` repeats every
row. A schedule that starts at scale 1 (linear, cosine) and rises later would feed a doubled latent
batch against single embeddings and crash; one that drops to 1 would keep paying for two passes.
:class:`ScheduledGuidance` sets the scale of each next step and re-shapes those tensors to match.

Scales below 1 cannot be expressed: the pipelines guide only while ``guidance_scale > 1`` and run
anything lower as plain conditional sampling, so a schedule whose per-step scale falls below 1 is
rejected (storylab's own samplers, :class:`storylab.guidance.Guided`, do implement scales in [0, 1)).
For modular pipelines use :class:`storylab.guidance.diffusers_guider.ScheduledCFG` instead.

Usage (SD 1.5)::

    cb = ScheduledGuidance("clamp:linear:c=2", scale=7.5, num_steps=30,
                           prompt_embeds=pe, negative_prompt_embeds=ne)
    image = pipe(**cb.pipeline_kwargs(), num_inference_steps=30, num_images_per_prompt=4).images

SDXL: also pass ``pooled_prompt_embeds`` / ``negative_pooled_prompt_embeds`` (from
``pipe.encode_prompt``); ``add_time_ids`` are re-shaped from the pipeline's own values
(``negative_extras={"add_time_ids": ...}`` overrides the negative ones). ControlNet pipelines
(``StableDiffusionControlNetPipeline``, one or several ControlNets): pass ``controlnet=True`` so the
doubled control ``image`` (the same condition for both branches) is re-shaped too; ``guess_mode``
is not supported.
"""

from __future__ import annotations

from typing import Any

import torch

from storylab.errors import StorylabError
from storylab.guidance.schedules import WeightSchedule, check_scale, parse_schedule

# Tensors the pipelines double along the batch for CFG. diffusers 0.42 lays out add_time_ids as
# cat([neg, pos]).repeat(B * n, 1) (rows alternate neg, pos); the others as cat([neg, pos]) blocks.
_INTERLEAVED = ("add_time_ids",)


def pipeline_scales(schedule: str | WeightSchedule, num_steps: int, scale: float) -> list[float]:
    """Per-step scales of ``schedule`` for a classic pipeline; a step below scale 1 is an error (see above)."""
    check_scale(scale)
    scales = parse_schedule(schedule).scales(num_steps, scale).tolist()
    low = [(i, s) for i, s in enumerate(scales) if s < 1.0 - 1e-9]
    if low:
        i, s = low[0]
        raise StorylabError(f"diffusers pipelines guide only above scale 1 and run lower scales as plain "
                            f"conditional sampling, but step {i} has scale {s:g}; use a scale >= 1 here, "
                            f"or storylab's own samplers (Guided), which implement scales in [0, 1)")
    return scales


class ScheduledGuidance:
    """A ``callback_on_step_end`` that applies a :class:`WeightSchedule` to a classic diffusers pipeline."""

    def __init__(self, schedule: str | WeightSchedule, scale: float, num_steps: int,
                 prompt_embeds: torch.Tensor, negative_prompt_embeds: torch.Tensor,
                 negative_extras: dict[str, torch.Tensor] | None = None,
                 pooled_prompt_embeds: torch.Tensor | None = None,
                 negative_pooled_prompt_embeds: torch.Tensor | None = None, controlnet: bool = False) -> None:
        check_scale(scale)
        self.schedule = parse_schedule(schedule)
        if self.schedule.needs_sigma:
            raise StorylabError(f"schedule '{self.schedule.spec}' depends on sigma; on a diffusers pipeline use "
                                "storylab.guidance.diffusers_guider.ScheduledCFG or a progress interval")
        self.num_steps = num_steps
        self.scales = pipeline_scales(self.schedule, num_steps, scale)
        self.prompt_embeds = prompt_embeds
        self.negative_prompt_embeds = negative_prompt_embeds
        self.pooled_prompt_embeds = pooled_prompt_embeds
        self.negative_pooled_prompt_embeds = negative_pooled_prompt_embeds
        self.controlnet = controlnet
        self.negative_extras = dict(negative_extras or {})
        if negative_pooled_prompt_embeds is not None:
            self.negative_extras.setdefault("add_text_embeds", negative_pooled_prompt_embeds)
        self._pipeline_negatives: dict[str, torch.Tensor] = {}
        self.history: list[float] = []

    @property
    def first_scale(self) -> float:
        """The scale of the first step, which the pipeline call itself must receive."""
        return self.scales[0]

    @property
    def tensor_inputs(self) -> list[str]:
        """The ``callback_on_step_end_tensor_inputs`` this callback re-shapes."""
        keys = ["prompt_embeds"]
        if self.pooled_prompt_embeds is not None or self.negative_extras:
            keys += ["add_text_embeds", "add_time_ids"]
        if self.controlnet:
            keys.append("image")
        return keys

    def pipeline_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the pipeline call: embeddings, first scale and this callback."""
        kwargs = {"prompt_embeds": self.prompt_embeds, "negative_prompt_embeds": self.negative_prompt_embeds,
                  "guidance_scale": self.first_scale, "callback_on_step_end": self,
                  "callback_on_step_end_tensor_inputs": self.tensor_inputs}
        if self.pooled_prompt_embeds is not None:
            kwargs["pooled_prompt_embeds"] = self.pooled_prompt_embeds
        if self.negative_pooled_prompt_embeds is not None:
            kwargs["negative_pooled_prompt_embeds"] = self.negative_pooled_prompt_embeds
        return kwargs

    @staticmethod
    def _halves(key: str, value: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(negative, positive) rows of a doubled tensor of 2 * rows rows."""
        if key in _INTERLEAVED:
            pairs = value.reshape(rows, 2, *value.shape[1:])
            return pairs[:, 0], pairs[:, 1]
        return value[:rows], value[rows:]

    @staticmethod
    def _double(key: str, negative: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
        if key in _INTERLEAVED:
            return torch.stack([negative, positive], dim=1).reshape(-1, *positive.shape[1:])
        return torch.cat([negative, positive])

    def _user_negative(self, key: str, positive: torch.Tensor) -> torch.Tensor:
        if key == "image":
            return positive  # the control condition is the same in both branches
        if key == "prompt_embeds":
            negative = self.negative_prompt_embeds
        else:
            negative = self.negative_extras.get(key)
        if negative is None:
            if key == "add_time_ids":
                return positive  # diffusers' default: negative time ids = positive ones
            raise StorylabError(f"ScheduledGuidance needs the negative '{key}' to turn guidance back on "
                                "(pass negative_pooled_prompt_embeds or negative_extras)")
        negative = negative.to(positive)
        rows = positive.shape[0]
        if negative.shape[0] == rows:
            return negative
        if rows % negative.shape[0]:
            raise StorylabError(f"negative '{key}' has {negative.shape[0]} rows, which does not divide the "
                                f"pipeline's {rows} (prompts x num_images_per_prompt)")
        # diffusers repeats each prompt's row num_images_per_prompt times, consecutively.
        return negative.repeat_interleave(rows // negative.shape[0], dim=0)

    def __call__(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        if step >= len(self.scales):
            raise StorylabError(f"ScheduledGuidance was built for {len(self.scales)} steps but the pipeline ran "
                                f"step {step}; pass num_inference_steps={len(self.scales)}")
        current = self.scales[step]
        self.history.append(current)
        if step + 1 >= len(self.scales):
            return callback_kwargs
        nxt = self.scales[step + 1]
        doubled_now = bool(getattr(pipe, "do_classifier_free_guidance", current > 1.0))
        pipe._guidance_scale = nxt
        double_next = bool(getattr(pipe, "do_classifier_free_guidance", nxt > 1.0))
        out = dict(callback_kwargs)
        if doubled_now == double_next:
            return out
        for key in ("prompt_embeds", "add_text_embeds", "add_time_ids", "image"):
            if key not in out:
                continue
            value = out[key]
            if isinstance(value, (list, tuple)):  # several ControlNets: one control image each
                out[key] = [self._reshape(f"{key}.{i}", v, doubled_now) for i, v in enumerate(value)]
            else:
                out[key] = self._reshape(key, value, doubled_now)
        return out

    def _reshape(self, key: str, value: torch.Tensor, doubled_now: bool) -> torch.Tensor:
        base = key.split(".")[0]
        if doubled_now:
            negative, positive = self._halves(base, value, value.shape[0] // 2)
            self._pipeline_negatives[key] = negative
            return positive
        negative = self._pipeline_negatives.get(key)
        if negative is None or negative.shape[0] != value.shape[0]:
            negative = self._user_negative(base, value)
        return self._double(base, negative, value)
