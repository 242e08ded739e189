"""Unclipped against clipped DDIM / DDPM sampling on the shipped cosine-schedule digit model.

Prints max |x| of the final sample for 25 and 50 steps, with ``clip_x0=None`` (the samplers' default)
and ``clip_x0=1.0`` (what the images wing passes), conditional sampling (CFG scale 1), 10 samples of
every class, seed 0, all measured in this one run, with the ratio unclipped / clipped.
Run: ``.venv/bin/python bench/foundation_unclipped.py``.
"""

from __future__ import annotations

import torch

from storylab.diffusion import ddim_sample, ddpm_sample
from storylab.guidance import Guided
from storylab.images.assets import DENOISER
from storylab.images.networks.denoiser import guidance_conditions, load_digit_model


def final_max(model, sampler: str, steps: int, clip: float | None) -> float:
    labels = torch.arange(10).repeat_interleave(10)
    conds = guidance_conditions(model, labels)
    guided = Guided(model.denoiser, conds["cond"], scale=1.0, uncond=conds["uncond"], prediction=model.config.prediction)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((labels.shape[0], 1, model.config.image_size, model.config.image_size), generator=gen)
    run = ddim_sample if sampler == "ddim" else ddpm_sample
    return float(run(guided, x, model.alpha_bar, steps, clip_x0=clip, generator=gen).abs().max())


def main() -> None:
    torch.set_num_threads(1)
    model = load_digit_model(DENOISER)
    print(f"shipped digit model ({model.config.beta_schedule} schedule, {model.config.prediction}-prediction), "
          "100 conditional samples, seed 0; data in [-1, 1]")
    print("| sampler | steps | max |x| unclipped | max |x| clip_x0=1 | ratio |")
    print("|---|---|---|---|---|")
    for sampler in ("ddim", "ddpm"):
        for steps in (25, 50):
            free, clipped = final_max(model, sampler, steps, None), final_max(model, sampler, steps, 1.0)
            print(f"| {sampler} | {steps} | {free:.3g} | {clipped:.3g} | {free / clipped:.3g} |")


if __name__ == "__main__":
    main()
