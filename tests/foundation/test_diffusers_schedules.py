"""Weight schedules on real (tiny, randomly initialised, locally built) SD and SDXL pipelines via the callback."""

import pytest
import torch

from storylab.errors import StorylabError
from storylab.guidance import parse_schedule
from storylab.guidance.diffusers_callback import ScheduledGuidance
from tests.foundation.tiny_pipelines import (record_unet_batches, tiny_sd, tiny_sd_controlnet, tiny_sdxl,
                                            tiny_sdxl_controlnet)


@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory):
    return tiny_sd(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="module")
def tiny_xl(tmp_path_factory):
    return tiny_sdxl(tmp_path_factory.mktemp("sdxl"))


def _spy_inputs(pipe):
    """Record (encoder_hidden_states, added_cond_kwargs) of every UNet call."""
    seen = []
    original = pipe.unet.forward

    def forward(sample, timestep, encoder_hidden_states=None, *args, **kwargs):
        added = kwargs.get("added_cond_kwargs") or {}
        seen.append((sample.shape[0], encoder_hidden_states.clone(), {k: v.clone() for k, v in added.items()}))
        return original(sample, timestep, encoder_hidden_states, *args, **kwargs)

    pipe.unet.forward = forward
    return seen, lambda: setattr(pipe.unet, "forward", original)


@pytest.mark.parametrize("spec", ["linear", "invlinear", "interval:start=0.3,stop=0.6", "clamp:cosine:c=1"])
def test_schedule_runs_on_a_diffusers_pipeline_and_skips_unconditional_passes(tiny_pipe, spec):
    steps, scale, batch = 6, 3.0, 2
    gen = torch.Generator().manual_seed(0)
    prompt_embeds = torch.randn(batch, 77, 16, generator=gen)
    negative = torch.randn(batch, 77, 16, generator=gen)
    callback = ScheduledGuidance(spec, scale=scale, num_steps=steps, prompt_embeds=prompt_embeds,
                                 negative_prompt_embeds=negative)
    sizes, restore = record_unet_batches(tiny_pipe)
    try:
        out = tiny_pipe(**callback.pipeline_kwargs(), num_inference_steps=steps, output_type="latent",
                        generator=torch.Generator().manual_seed(1))
    finally:
        restore()
    expected_scales = parse_schedule(spec).scales(steps, scale).tolist()
    assert callback.history == pytest.approx(expected_scales)
    assert sizes == [2 * batch if s > 1 else batch for s in expected_scales]
    assert torch.isfinite(out.images).all()


@pytest.mark.parametrize("spec", ["linear", "interval:start=0,stop=0.4", "constant"])
def test_num_images_per_prompt_repeats_the_negatives_like_the_pipeline(tiny_pipe, spec):
    """Defect 1: with n images per prompt every UNet call must see the pipeline's own row layout."""
    steps, n = 5, 2
    gen = torch.Generator().manual_seed(0)
    pe, ne = torch.randn(2, 77, 16, generator=gen), torch.randn(2, 77, 16, generator=gen)
    cb = ScheduledGuidance(spec, scale=4.0, num_steps=steps, prompt_embeds=pe, negative_prompt_embeds=ne)
    seen, restore = _spy_inputs(tiny_pipe)
    try:
        out = tiny_pipe(**cb.pipeline_kwargs(), num_inference_steps=steps, num_images_per_prompt=n,
                        output_type="latent", generator=torch.Generator().manual_seed(1))
    finally:
        restore()
    pos, neg = pe.repeat_interleave(n, 0), ne.repeat_interleave(n, 0)  # diffusers: each prompt's rows together
    for s, (rows, states, _) in zip(parse_schedule(spec).scales(steps, 4.0).tolist(), seen, strict=True):
        expected = torch.cat([neg, pos]) if s > 1 else pos
        assert rows == expected.shape[0] and torch.equal(states, expected)
    assert out.images.shape[0] == 4 and torch.isfinite(out.images).all()


def test_sdxl_pooled_embeds_and_time_ids_follow_the_schedule(tiny_xl):
    """Defect 2: SDXL's add_text_embeds / add_time_ids are re-shaped with prompt_embeds."""
    steps, n = 5, 2
    gen = torch.Generator().manual_seed(0)
    pe, ne = torch.randn(1, 77, 32, generator=gen), torch.randn(1, 77, 32, generator=gen)
    pp, npp = torch.randn(1, 16, generator=gen), torch.randn(1, 16, generator=gen)
    cb = ScheduledGuidance("linear", scale=3.0, num_steps=steps, prompt_embeds=pe, negative_prompt_embeds=ne,
                           pooled_prompt_embeds=pp, negative_pooled_prompt_embeds=npp)
    seen, restore = _spy_inputs(tiny_xl)
    try:
        out = tiny_xl(**cb.pipeline_kwargs(), num_inference_steps=steps, num_images_per_prompt=n, height=16,
                      width=16, output_type="latent", generator=torch.Generator().manual_seed(1))
    finally:
        restore()
    time_ids = torch.tensor([[16.0, 16.0, 0.0, 0.0, 16.0, 16.0]])  # original size, crop, target size
    scales = parse_schedule("linear").scales(steps, 3.0).tolist()
    assert scales[0] == 1.0 and scales[-1] > 1.0  # the schedule crosses 1
    for s, (rows, states, added) in zip(scales, seen, strict=True):
        k = 2 if s > 1 else 1
        assert rows == k * n
        pooled = torch.cat([npp.repeat(n, 1), pp.repeat(n, 1)]) if s > 1 else pp.repeat(n, 1)
        assert torch.equal(added["text_embeds"], pooled)
        assert torch.equal(added["time_ids"], time_ids.repeat(k * n, 1))
        assert torch.equal(states, torch.cat([ne.repeat(n, 1, 1), pe.repeat(n, 1, 1)]) if s > 1 else pe.repeat(n, 1, 1))
    assert torch.isfinite(out.images).all()


@pytest.mark.parametrize("scale", [0.0, 0.5, 0.99])
def test_scales_below_one_are_rejected_on_diffusers_pipelines(scale):
    """Defect 3: the pipelines would silently run them as scale 1."""
    pe = torch.zeros(1, 77, 16)
    with pytest.raises(StorylabError, match=r"guide only above scale 1 .* step 0 has scale"):
        ScheduledGuidance("constant", scale=scale, num_steps=4, prompt_embeds=pe, negative_prompt_embeds=pe)


def test_clamp_below_scale_one_is_an_error_and_above_it_is_the_papers_max():
    """Defect 4: clamp floors a weight w >= 0; at scale 0.5 (w = -0.5) it used to give scale 3 everywhere."""
    with pytest.raises(StorylabError, match=r"clamp floors a guidance weight w >= 0 .* w = -0.5"):
        parse_schedule("clamp:linear:c=2").scales(10, 0.5)
    w0, n = 6.5, 10
    expected = [max(2.0, w0 * 2 * i / (n - 1)) for i in range(n)]  # max(c, linear shape * w), factor 2 = 1/mean
    assert parse_schedule("clamp:linear:c=2").strengths(n, w0).tolist() == pytest.approx(expected)


def test_constant_schedule_equals_the_plain_pipeline(tiny_pipe):
    gen = torch.Generator().manual_seed(0)
    pe, ne = torch.randn(1, 77, 16, generator=gen), torch.randn(1, 77, 16, generator=gen)
    cb = ScheduledGuidance("constant", scale=4.0, num_steps=5, prompt_embeds=pe, negative_prompt_embeds=ne)
    a = tiny_pipe(**cb.pipeline_kwargs(), num_inference_steps=5, output_type="latent",
                  generator=torch.Generator().manual_seed(3)).images
    b = tiny_pipe(prompt_embeds=pe, negative_prompt_embeds=ne, guidance_scale=4.0, num_inference_steps=5,
                  output_type="latent", generator=torch.Generator().manual_seed(3)).images
    assert torch.allclose(a, b, atol=1e-5)


def test_wrong_step_count_is_a_clear_error(tiny_pipe):
    pe = torch.zeros(1, 77, 16)
    cb = ScheduledGuidance("linear", scale=3.0, num_steps=2, prompt_embeds=pe, negative_prompt_embeds=pe)
    with pytest.raises(StorylabError, match="built for 2 steps .* num_inference_steps=2"):
        tiny_pipe(**cb.pipeline_kwargs(), num_inference_steps=4, output_type="latent")


@pytest.mark.parametrize("count", [1, 2])
def test_controlnet_pipelines_reshape_the_control_image_with_the_schedule(tmp_path, count):
    from PIL import Image

    pipe = tiny_sd_controlnet(tmp_path, count)
    steps, n = 4, 2
    gen = torch.Generator().manual_seed(0)
    pe, ne = torch.randn(1, 77, 16, generator=gen), torch.randn(1, 77, 16, generator=gen)
    control = Image.fromarray((torch.rand(16, 16, 3, generator=gen) * 255).to(torch.uint8).numpy())
    cb = ScheduledGuidance("linear", scale=3.0, num_steps=steps, prompt_embeds=pe, negative_prompt_embeds=ne,
                           controlnet=True)
    rows = []
    nets = pipe.controlnet.nets if count > 1 else [pipe.controlnet]
    originals = [net.forward for net in nets]
    for net, original in zip(nets, originals):
        def forward(sample, timestep, encoder_hidden_states=None, controlnet_cond=None, *a, _o=original, **k):
            rows.append((sample.shape[0], controlnet_cond.shape[0]))
            return _o(sample, timestep, encoder_hidden_states, controlnet_cond, *a, **k)
        net.forward = forward
    try:
        out = pipe(**cb.pipeline_kwargs(), image=control if count == 1 else [control] * count, num_inference_steps=steps,
                   num_images_per_prompt=n, output_type="latent", generator=torch.Generator().manual_seed(1))
    finally:
        for net, original in zip(nets, originals):
            net.forward = original
    scales = parse_schedule("linear").scales(steps, 3.0).tolist()
    expected = [(k, k) for s in scales for k in [2 * n if s > 1 else n] * count]
    assert rows == expected and torch.isfinite(out.images).all()


def test_sdxl_controlnet_reshapes_image_pooled_embeds_and_time_ids_when_guidance_stops_and_restarts(tmp_path):
    """SDXL + ControlNet under an interval (1 -> s -> 1): UNet and ControlNet see the same, correctly doubled inputs."""
    from PIL import Image

    pipe = tiny_sdxl_controlnet(tmp_path)
    steps, n, spec = 6, 2, "interval:start=0.3,stop=0.6"
    gen = torch.Generator().manual_seed(0)
    pe, ne = torch.randn(1, 77, 32, generator=gen), torch.randn(1, 77, 32, generator=gen)
    pp, npp = torch.randn(1, 16, generator=gen), torch.randn(1, 16, generator=gen)
    control = Image.fromarray((torch.rand(16, 16, 3, generator=gen) * 255).to(torch.uint8).numpy())
    cb = ScheduledGuidance(spec, scale=3.0, num_steps=steps, prompt_embeds=pe, negative_prompt_embeds=ne,
                           pooled_prompt_embeds=pp, negative_pooled_prompt_embeds=npp, controlnet=True)
    unet_seen, restore = _spy_inputs(pipe)
    net_seen, original = [], pipe.controlnet.forward

    def forward(sample, timestep, encoder_hidden_states=None, controlnet_cond=None, *a, **k):
        added = k.get("added_cond_kwargs") or {}
        net_seen.append((sample.shape[0], controlnet_cond.clone(), encoder_hidden_states.clone(),
                         {key: v.clone() for key, v in added.items()}))
        return original(sample, timestep, encoder_hidden_states, controlnet_cond, *a, **k)

    pipe.controlnet.forward = forward
    try:
        out = pipe(**cb.pipeline_kwargs(), image=control, num_inference_steps=steps, num_images_per_prompt=n,
                   height=16, width=16, output_type="latent", generator=torch.Generator().manual_seed(1))
    finally:
        restore()
        pipe.controlnet.forward = original
    scales = parse_schedule(spec).scales(steps, 3.0).tolist()
    assert scales[0] == 1.0 and max(scales) == 3.0 and scales[-1] == 1.0  # off, on, off again
    cond_image = net_seen[0][1][:1]  # the prepared control image of one sample
    for s, (rows, states, added), (net_rows, cond, net_states, net_added) in zip(scales, unet_seen, net_seen, strict=True):
        k = 2 if s > 1 else 1
        assert rows == net_rows == k * n and cond.shape[0] == k * n
        assert torch.equal(cond, cond_image.repeat(k * n, 1, 1, 1))  # the same condition in both branches
        expected = torch.cat([ne.repeat(n, 1, 1), pe.repeat(n, 1, 1)]) if s > 1 else pe.repeat(n, 1, 1)
        assert torch.equal(states, expected) and torch.equal(net_states, expected)
        pooled = torch.cat([npp.repeat(n, 1), pp.repeat(n, 1)]) if s > 1 else pp.repeat(n, 1)
        assert torch.equal(added["text_embeds"], pooled) and torch.equal(net_added["text_embeds"], pooled)
        assert added["time_ids"].shape[0] == net_added["time_ids"].shape[0] == k * n
    assert torch.isfinite(out.images).all()
