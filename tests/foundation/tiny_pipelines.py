"""Tiny randomly initialised diffusers pipelines built from configs (no download), shared by the guidance tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def tiny_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3, "a": 4, "b": 5, "c</w>": 6, "c": 7}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _text_config(hidden: int, projection: int | None = None):
    from transformers import CLIPTextConfig

    extra = {} if projection is None else {"projection_dim": projection}
    return CLIPTextConfig(vocab_size=8, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                          num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                          pad_token_id=1, **extra)


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                         up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=4, sample_size=16)


def tiny_sd(folder: Path):
    """A StableDiffusionPipeline with an 8x8 latent UNet, a 16-wide CLIP text encoder and a DDIM scheduler."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=4, attention_head_dim=4)
    pipe = StableDiffusionPipeline(unet=unet, vae=_vae(), text_encoder=CLIPTextModel(_text_config(16)),
                                   tokenizer=tiny_tokenizer(folder / "tok"),
                                   scheduler=DDIMScheduler(clip_sample=False, steps_offset=1), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sdxl(folder: Path):
    """A StableDiffusionXLPipeline: two 16-wide text encoders (the second with a projection) and a text_time UNet."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=4, attention_head_dim=4, addition_embed_type="text_time",
                                addition_time_embed_dim=4, projection_class_embeddings_input_dim=6 * 4 + 16)
    tok = tiny_tokenizer(folder / "tok")
    pipe = StableDiffusionXLPipeline(vae=_vae(), text_encoder=CLIPTextModel(_text_config(16)),
                                     text_encoder_2=CLIPTextModelWithProjection(_text_config(16, projection=16)),
                                     tokenizer=tok, tokenizer_2=tok, unet=unet, scheduler=EulerDiscreteScheduler(),
                                     force_zeros_for_empty_prompt=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def record_unet_batches(pipe):
    """Wrap ``pipe.unet.forward`` to record the batch size of every call; returns (sizes, restore)."""
    sizes: list[int] = []
    original = pipe.unet.forward

    def forward(sample, *args, **kwargs):
        sizes.append(sample.shape[0])
        return original(sample, *args, **kwargs)

    pipe.unet.forward = forward

    def restore() -> None:
        pipe.unet.forward = original

    return sizes, restore


def tiny_clip(folder: Path) -> Path:
    """Save a randomly initialised CLIP (16x16 images, 8-d projection) with its processor into ``folder``."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    text = dict(vocab_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(image_size=16, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                  num_attention_heads=2)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(folder)
    tiny_tokenizer(folder / "_tok").save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}).save_pretrained(folder)
    return folder


def _unzero(net) -> None:
    """Random weights for a ControlNet's zero convolutions (hint output, residual convs), as after training."""
    for conv in [net.controlnet_cond_embedding.conv_out, *net.controlnet_down_blocks, net.controlnet_mid_block]:
        torch.nn.init.normal_(conv.weight, std=0.3)
        torch.nn.init.normal_(conv.bias, std=0.1)


def tiny_sd_controlnet(folder: Path, count: int = 1, trained: bool = False):
    """A StableDiffusionControlNetPipeline on :func:`tiny_sd` with ``count`` ControlNets initialised from its UNet.

    ``trained``: the zero convolutions (hint output and residual convs) get random weights, as after
    training, so that the condition image changes the output (zero-initialised, it cannot).
    """
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    base = tiny_sd(folder)
    torch.manual_seed(1)
    nets = [ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=(4, 8)) for _ in range(count)]
    if trained:
        for net in nets:
            _unzero(net)
    pipe = StableDiffusionControlNetPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                             unet=base.unet, controlnet=nets[0] if count == 1 else nets,
                                             scheduler=base.scheduler, safety_checker=None, feature_extractor=None,
                                             requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sdxl_controlnet(folder: Path, trained: bool = True):
    """A StableDiffusionXLControlNetPipeline on :func:`tiny_sdxl` with one ControlNet initialised from its UNet."""
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline

    base = tiny_sdxl(folder)
    torch.manual_seed(1)
    net = ControlNetModel.from_unet(base.unet, conditioning_embedding_out_channels=(4, 8))
    if trained:
        _unzero(net)
    pipe = StableDiffusionXLControlNetPipeline(vae=base.vae, text_encoder=base.text_encoder,
                                               text_encoder_2=base.text_encoder_2, tokenizer=base.tokenizer,
                                               tokenizer_2=base.tokenizer_2, unet=base.unet, controlnet=net,
                                               scheduler=base.scheduler, force_zeros_for_empty_prompt=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
