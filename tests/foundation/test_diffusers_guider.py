"""ScheduledCFG inside a diffusers modular pipeline (tiny SDXL built from configs, no download)."""

import pytest
import torch

from storylab.guidance import parse_schedule
from diffusers.guiders import ClassifierFreeGuidance
from diffusers.modular_pipelines import StableDiffusionXLAutoBlocks

from storylab.guidance.diffusers_guider import ScheduledCFG
from tests.foundation.tiny_pipelines import tiny_sdxl

COMPONENTS = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler")


@pytest.fixture(scope="module")
def modular(tmp_path_factory):
    classic = tiny_sdxl(tmp_path_factory.mktemp("msdxl"))
    pipe = StableDiffusionXLAutoBlocks().init_pipeline()
    pipe.update_components(**{k: getattr(classic, k) for k in COMPONENTS}, guider=ClassifierFreeGuidance())
    return pipe


def _run(pipe, guider, steps=5):
    calls = []
    original = pipe.unet.forward

    def forward(sample, *args, **kwargs):
        calls.append(sample.shape[0])
        return original(sample, *args, **kwargs)

    pipe.unet.forward = forward
    pipe.update_components(guider=guider)
    try:
        latents = pipe(prompt="a b", negative_prompt="c", num_inference_steps=steps, height=16, width=16,
                       output="latents", generator=torch.Generator().manual_seed(0))
    finally:
        pipe.unet.forward = original
    return latents, calls


def test_constant_schedule_equals_diffusers_own_cfg_guider(modular):
    ours, _ = _run(modular, ScheduledCFG("constant", guidance_scale=4.0))
    official, _ = _run(modular, ClassifierFreeGuidance(guidance_scale=4.0))
    assert torch.allclose(ours, official, atol=1e-6)


@pytest.mark.parametrize("spec", ["linear", "interval:start=0.2,stop=0.5", "pcs:s=1"])
def test_schedule_sets_every_step_and_skips_the_unconditional_batch(modular, spec):
    steps, scale = 5, 3.0
    guider = ScheduledCFG(spec, guidance_scale=scale)
    latents, calls = _run(modular, guider, steps)
    expected = parse_schedule(spec).scales(steps, scale).tolist()
    assert guider.history == pytest.approx(expected)
    assert calls == [b for s in expected for b in ([1, 1] if s != 1.0 else [1])]  # one UNet call per branch
    assert torch.isfinite(latents).all()


def test_each_step_combines_like_diffusers_cfg_at_that_steps_scale():
    guider = ScheduledCFG("clamp:linear:c=0.5", guidance_scale=2.5)
    pc, pu = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    for i, s in enumerate(parse_schedule("clamp:linear:c=0.5").scales(6, 2.5).tolist()):
        guider.set_state(step=i, num_inference_steps=6, timestep=torch.tensor(999 - 150 * i))
        official = ClassifierFreeGuidance(guidance_scale=s).forward(pc, pu).pred
        assert torch.allclose(guider.forward(pc, pu).pred, official)


def test_sigma_interval_reads_sigma_from_the_timestep():
    ab = torch.linspace(0.999, 0.01, 1000)
    guider = ScheduledCFG("interval:sigma_lo=0.5,sigma_hi=2", guidance_scale=3.0, alphas_cumprod=ab)
    for t in (10, 300, 600, 990):
        guider.set_state(step=0, num_inference_steps=4, timestep=torch.tensor(t))
        sigma = ((1 - ab[t]) / ab[t]).sqrt().item()
        assert guider.current_scale() == (3.0 if 0.5 < sigma <= 2 else 1.0)
