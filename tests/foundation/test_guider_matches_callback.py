"""The modular ScheduledCFG guider and the classic ScheduledGuidance callback draw the same pictures.

Every schedule of the guider study's defaults (bench/guidance_guider_study.py), on the tiny
SDXL built from configs: the same prompt and seeds through StableDiffusionXLAutoBlocks with the guider
and through StableDiffusionXLPipeline with the callback give the same latents and the same 8-bit images.
"""

import numpy as np
import pytest
import torch
from diffusers.modular_pipelines import StableDiffusionXLAutoBlocks

from storylab.guidance.diffusers_callback import ScheduledGuidance
from storylab.guidance.diffusers_guider import ScheduledCFG
from storylab.guidance.pipeline_study import _encode
from tests.foundation.tiny_pipelines import tiny_sdxl

COMPONENTS = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler")
SCHEDULES = ["constant", "linear", "clamp:linear:c=2", "pcs:s=1", "interval:start=0.3,stop=0.7"]
STEPS, N, PROMPT = 4, 2, "a b"


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    classic = tiny_sdxl(tmp_path_factory.mktemp("sdxl"))
    classic.set_progress_bar_config(disable=True)
    modular = StableDiffusionXLAutoBlocks().init_pipeline()
    modular.update_components(**{k: getattr(classic, k) for k in COMPONENTS})
    return classic, modular


def seeds():
    return [torch.Generator().manual_seed(j) for j in range(N)]


@pytest.mark.parametrize("spec,scale", [(spec, 3.0) for spec in SCHEDULES] + [("linear", 7.5)])
def test_guider_and_callback_draw_the_same_pictures(pipes, spec, scale):
    classic, modular = pipes
    side = classic.unet.config.sample_size * classic.vae_scale_factor
    modular.update_components(guider=ScheduledCFG(spec, guidance_scale=scale))
    guided = modular(prompt=PROMPT, negative_prompt="", num_inference_steps=STEPS, height=side, width=side,
                     num_images_per_prompt=N, generator=seeds(), output="images")
    callback = ScheduledGuidance(spec, scale=scale, num_steps=STEPS, **_encode(classic, PROMPT, ""))
    called = classic(**callback.pipeline_kwargs(), num_inference_steps=STEPS, height=side, width=side,
                     num_images_per_prompt=N, generator=seeds(), output_type="pil").images
    assert len(guided) == len(called) == N
    for a, b in zip(guided, called):
        assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() == 0
