"""Weight schedules on a real (tiny, randomly initialised, locally built) StableDiffusionPipeline."""

import json

import pytest
import torch

from storylab.guidance import parse_schedule
from storylab.guidance.diffusers_callback import ScheduledGuidance


@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=4, attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=4, sample_size=16)
    folder = tmp_path_factory.mktemp("tok")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3, "a": 4, "b": 5}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                                num_attention_heads=2, max_position_embeddings=77))
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=DDIMScheduler(clip_sample=False, steps_offset=1), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _record_batches(pipe):
    sizes = []
    original = pipe.unet.forward

    def forward(sample, *args, **kwargs):
        sizes.append(sample.shape[0])
        return original(sample, *args, **kwargs)

    pipe.unet.forward = forward
    return sizes, original


@pytest.mark.parametrize("spec", ["linear", "invlinear", "interval:start=0.3,stop=0.6", "clamp:cosine:c=1"])
def test_schedule_runs_on_a_diffusers_pipeline_and_skips_unconditional_passes(tiny_pipe, spec):
    steps, scale, batch = 6, 3.0, 2
    gen = torch.Generator().manual_seed(0)
    prompt_embeds = torch.randn(batch, 77, 16, generator=gen)
    negative = torch.randn(batch, 77, 16, generator=gen)
    callback = ScheduledGuidance(spec, scale=scale, num_steps=steps, prompt_embeds=prompt_embeds,
                                 negative_prompt_embeds=negative)
    sizes, original = _record_batches(tiny_pipe)
    try:
        out = tiny_pipe(**callback.pipeline_kwargs(), num_inference_steps=steps, output_type="latent",
                        generator=torch.Generator().manual_seed(1))
    finally:
        tiny_pipe.unet.forward = original
    expected_scales = parse_schedule(spec).scales(steps, scale).tolist()
    assert callback.history == pytest.approx(expected_scales)
    assert sizes == [2 * batch if s > 1 else batch for s in expected_scales]
    assert torch.isfinite(out.images).all()


def test_constant_schedule_equals_the_plain_pipeline(tiny_pipe):
    gen = torch.Generator().manual_seed(0)
    pe, ne = torch.randn(1, 77, 16, generator=gen), torch.randn(1, 77, 16, generator=gen)
    cb = ScheduledGuidance("constant", scale=4.0, num_steps=5, prompt_embeds=pe, negative_prompt_embeds=ne)
    a = tiny_pipe(**cb.pipeline_kwargs(), num_inference_steps=5, output_type="latent",
                  generator=torch.Generator().manual_seed(3)).images
    b = tiny_pipe(prompt_embeds=pe, negative_prompt_embeds=ne, guidance_scale=4.0, num_inference_steps=5,
                  output_type="latent", generator=torch.Generator().manual_seed(3)).images
    assert torch.allclose(a, b, atol=1e-5)
