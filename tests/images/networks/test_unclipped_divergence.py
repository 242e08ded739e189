"""The samplers' warning holds: unclipped DDIM/DDPM sampling diverges on the shipped cosine-schedule
digit model (data in [-1, 1]); with clip_x0=1 it stays in range (figures: bench/foundation_unclipped.py)."""

import pytest
import torch

from storylab.diffusion import ddim_sample, ddpm_sample
from storylab.guidance import Guided
from storylab.images.assets import DENOISER
from storylab.images.networks.denoiser import guidance_conditions, load_digit_model


@pytest.mark.parametrize("sampler", [ddim_sample, ddpm_sample], ids=["ddim", "ddpm"])
def test_unclipped_sampling_leaves_the_data_range_by_orders_of_magnitude(sampler):
    model = load_digit_model(DENOISER)
    assert model.config.beta_schedule == "cosine"
    labels = torch.arange(10).repeat_interleave(2)
    conds = guidance_conditions(model, labels)
    guided = Guided(model.denoiser, conds["cond"], scale=1.0, uncond=conds["uncond"], prediction=model.config.prediction)

    def final(clip):
        gen = torch.Generator().manual_seed(0)
        x = torch.randn((20, 1, 8, 8), generator=gen)
        return sampler(guided, x, model.alpha_bar, 25, clip_x0=clip, generator=gen)

    assert final(None).abs().max() > 1e3  # the first steps' alpha-bar ~ 1e-9 amplifies any eps error
    assert final(1.0).abs().max() <= 1.0 + 1e-6
