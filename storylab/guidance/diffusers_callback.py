"""Guidance-weight schedules on real diffusers pipelines, in one line.

diffusers pipelines read ``pipe._guidance_scale`` at every step, and a ``callback_on_step_end`` may
change it for the next step. The pitfall: the pipeline doubles the batch (negative + positive
prompt embeddings, and the latents) only while the scale is > 1, and it builds the doubled
``prompt_embeds`` once, before the loop. A schedule that starts at scale 1 (linear, cosine) and
rises later would therefore feed a doubled latent batch against single embeddings and crash; one
that drops to 1 would keep paying for two passes. :class:`ScheduledGuidance` fixes both: for each
next step it sets the scale and re-shapes the batched tensors (``prompt_embeds`` and SDXL's
``add_text_embeds`` / ``add_time_ids``) to match, using the negative embeddings it was given.

Usage::

    cb = ScheduledGuidance("clamp:linear:c=2", scale=7.5, num_steps=30,
                           prompt_embeds=pe, negative_prompt_embeds=ne)
    image = pipe(**cb.pipeline_kwargs(), num_inference_steps=30).images[0]
"""

from __future__ import annotations

from typing import Any

import torch

from storylab.guidance.schedules import WeightSchedule, check_scale, parse_schedule


class ScheduledGuidance:
    """A ``callback_on_step_end`` that applies a :class:`WeightSchedule` to a diffusers pipeline."""

    tensor_inputs = ["prompt_embeds"]

    def __init__(self, schedule: str | WeightSchedule, scale: float, num_steps: int,
                 prompt_embeds: torch.Tensor, negative_prompt_embeds: torch.Tensor,
                 negative_extras: dict[str, torch.Tensor] | None = None) -> None:
        check_scale(scale)
        self.schedule = parse_schedule(schedule)
        self.scales = self.schedule.scales(num_steps, scale).tolist()
        self.prompt_embeds = prompt_embeds
        self.negative_prompt_embeds = negative_prompt_embeds
        self.negative_extras = negative_extras or {}
        self.history: list[float] = []

    @property
    def first_scale(self) -> float:
        """The scale of the first step, which the pipeline call itself must receive."""
        return self.scales[0]

    def pipeline_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the pipeline call: embeddings, first scale and this callback."""
        return {"prompt_embeds": self.prompt_embeds, "negative_prompt_embeds": self.negative_prompt_embeds,
                "guidance_scale": self.first_scale, "callback_on_step_end": self,
                "callback_on_step_end_tensor_inputs": list(self.tensor_inputs)}

    @staticmethod
    def _reshape(value: torch.Tensor, negative: torch.Tensor, batch: int, doubled_now: bool, double_next: bool) -> torch.Tensor:
        if doubled_now and not double_next:
            return value[batch:]  # diffusers orders the doubled batch as [negative, positive]
        if not doubled_now and double_next:
            return torch.cat([negative.to(value), value])
        return value

    def __call__(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        current = self.scales[step]
        self.history.append(current)
        if step + 1 >= len(self.scales):
            return callback_kwargs
        nxt = self.scales[step + 1]
        pipe._guidance_scale = nxt
        batch = self.prompt_embeds.shape[0]
        doubled_now, double_next = current > 1.0, nxt > 1.0
        out = dict(callback_kwargs)
        if "prompt_embeds" in out:
            out["prompt_embeds"] = self._reshape(out["prompt_embeds"], self.negative_prompt_embeds, batch,
                                                 doubled_now, double_next)
        for key, negative in self.negative_extras.items():
            if key in out:
                out[key] = self._reshape(out[key], negative, batch, doubled_now, double_next)
        return out
