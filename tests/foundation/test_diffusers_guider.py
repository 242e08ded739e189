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


# ---- every rule in a modular pipeline ------------------------------------------------------------------------

from diffusers import guiders as dg  # noqa: E402
from diffusers.hooks import LayerSkipConfig  # noqa: E402

from storylab.errors import StorylabError  # noqa: E402
from storylab.guidance.diffusers_guider import ScheduledGuider, schedule_guider  # noqa: E402
from storylab.guidance.guiders import laplacian_pyramid, pyramid_up  # noqa: E402

MID = "mid_block.attentions.0.transformer_blocks"  # the tiny SDXL UNet's self-attention block


@pytest.mark.parametrize("rule,options,official", [
    ("tcfg", {}, lambda: dg.TangentialClassifierFreeGuidance(guidance_scale=4.0)),
    ("cfg-zero*", {"zero_init_steps": 1}, lambda: dg.ClassifierFreeZeroStarGuidance(guidance_scale=4.0, zero_init_steps=1)),
    ("apg-mix", {"apg_scale": 6.0, "momentum": -0.5, "norm_threshold": 3.0, "eta": 0.1, "start_step": 1},
     lambda: dg.AdaptiveProjectedMixGuidance(guidance_scale=4.0, adaptive_projected_guidance_scale=6.0,
                                             adaptive_projected_guidance_momentum=-0.5,
                                             adaptive_projected_guidance_rescale=3.0, eta=0.1,
                                             adaptive_projected_guidance_start_step=1)),
])
def test_storylab_rules_in_a_modular_pipeline_equal_diffusers_guiders(modular, rule, options, official):
    ours, _ = _run(modular, ScheduledGuider(rule, "constant", guidance_scale=4.0, rule_options=options))
    theirs, _ = _run(modular, official())
    # 1e-6 relative to the latents' scale (the Euler latents reach |x| ~ 300; TCFG's float32 SVD differs by 8e-8)
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-6 * theirs.abs().max().item())


def test_fdg_in_a_modular_pipeline_equals_diffusers_fdg_on_the_same_pyramid(modular, monkeypatch):
    import diffusers.guiders.frequency_decoupled_guidance as fdg

    monkeypatch.setattr(fdg, "_CAN_USE_KORNIA", True)
    monkeypatch.setattr(fdg, "build_laplacian_pyramid_func", lambda x, n: laplacian_pyramid(x, n))
    monkeypatch.setattr(fdg, "upsample_and_blur_func", lambda x: pyramid_up(x, (2 * x.shape[-2], 2 * x.shape[-1])))
    ours, _ = _run(modular, ScheduledGuider("fdg", "constant", guidance_scale=5.0, rule_options={"low_scale": 2.0}))
    theirs, _ = _run(modular, fdg.FrequencyDecoupledGuidance(guidance_scales=[5.0, 2.0]))
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_scheduled_guider_follows_the_schedule_and_skips_unguided_unconditional_batches(modular):
    guider = ScheduledGuider("fdg", "linear", guidance_scale=3.0, rule_options={"low_scale": 2.0})
    latents, calls = _run(modular, guider, 5)
    shape = parse_schedule("linear").strengths(5, 1.0).tolist()
    assert [h[0] for h in guider.history] == pytest.approx([2.0 * s for s in shape])
    assert [h[1] for h in guider.history] == pytest.approx([1.0 * s for s in shape])
    assert calls == [1] + [1, 1] * 4 and torch.isfinite(latents).all()
    with pytest.raises(StorylabError, match="guidance 'pag' does not run as a two-branch diffusers guider"):
        ScheduledGuider("pag")


def _pag(**kw):
    return dg.PerturbedAttentionGuidance(guidance_scale=3.0, perturbed_guidance_scale=2.0, perturbed_guidance_start=0.0,
                                         perturbed_guidance_stop=1.0, perturbed_guidance_config=LayerSkipConfig(
                                             indices=[0], fqn=MID, skip_attention=False, skip_attention_scores=True,
                                             skip_ff=False), **kw)


def test_schedule_guider_modulates_pag_through_diffusers_hooks(modular):
    plain, _ = _run(modular, _pag())
    constant, _ = _run(modular, schedule_guider(_pag(), "constant"))
    assert torch.allclose(plain, constant, atol=1e-6)
    guider = schedule_guider(_pag(), "linear")
    latents, calls = _run(modular, guider, 5)
    shape = parse_schedule("linear").strengths(5, 1.0).tolist()
    assert guider.history == pytest.approx([2.0 * s for s in shape])  # PAG's s: 0 = off, s_i = s shape_i
    assert guider.guidance_scale == pytest.approx(1.0 + 2.0 * shape[-1])  # CFG's scale modulated too
    assert calls[0] == 1 and torch.isfinite(latents).all() and not torch.allclose(latents, plain, atol=1e-4)


@pytest.mark.parametrize("make", [
    lambda: dg.SkipLayerGuidance(guidance_scale=3.0, skip_layer_guidance_scale=2.0, skip_layer_guidance_start=0.0,
                                 skip_layer_guidance_stop=1.0, skip_layer_config=LayerSkipConfig(
                                     indices=[0], fqn=MID, skip_attention=True, skip_ff=False)),
    lambda: dg.AutoGuidance(guidance_scale=3.0, auto_guidance_config=LayerSkipConfig(indices=[0], fqn=MID, dropout=1.0)),
])
def test_schedule_guider_runs_slg_and_autoguidance_with_a_piecewise_schedule(modular, make):
    guider = schedule_guider(make(), "piecewise:1x2+4x3")
    latents, _ = _run(modular, guider, 5)
    assert guider.history[:2] == [1.0, 1.0] and guider.history[2:] == [4.0, 4.0, 4.0] and torch.isfinite(latents).all()
