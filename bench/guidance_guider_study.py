"""Schedule study through ScheduledCFG in a diffusers modular pipeline, side by side with the callback (issue 18).

Every schedule x scale cell draws ``n`` images per prompt from the same seeds twice: through
``StableDiffusionXLAutoBlocks`` with :class:`ScheduledCFG` (the guider) and through the classic
``StableDiffusionXLPipeline`` with :class:`ScheduledGuidance` (the callback). Printed per cell, as a
markdown table: UNet evaluations per image (counted by a spy on the UNet, not computed from the
schedule), seconds per cell of each adapter and their ratio, the largest pixel difference between
the two adapters' images (same seeds: they should sample the same pictures), and CLIP score and
Vendi diversity of the guider's images on a CLIP's image embeddings. Each cell runs ``--repeats``
times, guider and callback interleaved so that the machine's load hits both alike; times are medians.

Default pipeline and CLIP: the tiny random SDXL and CLIP of the tests (built from configs, nothing
downloaded), so the metrics only show the machinery; ``--model DIR --clip DIR`` for real ones.
Single thread, as on the shared 2-core box.

    /work/venv/bin/python bench/guidance_guider_study.py [--model DIR] [--clip DIR] [--steps 20] [--n 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler")


def count_unet(pipe, record: list[int]):
    """Wrap ``pipe.unet.forward`` so that every call appends its batch size to ``record``; returns the original."""
    original = pipe.unet.forward

    def forward(sample, *args, **kwargs):
        record.append(sample.shape[0])
        return original(sample, *args, **kwargs)

    pipe.unet.forward = forward
    return original


def quiet(block) -> None:
    """Disable the progress bars of every nested modular block (the pipeline's setter reaches only the top level)."""
    if hasattr(block, "set_progress_bar_config") and hasattr(block, "progress_bar"):
        block.set_progress_bar_config(disable=True)
    for sub in getattr(block, "sub_blocks", {}).values():
        quiet(sub)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="A saved SDXL pipeline (default: the tiny test SDXL).")
    parser.add_argument("--clip", default=None, help="A local CLIP folder (default: the tiny test CLIP).")
    parser.add_argument("--schedules", default="constant;linear;clamp:linear:c=2;pcs:s=1;interval:start=0.3,stop=0.7")
    parser.add_argument("--scales", default="3,7.5")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--n", type=int, default=4, help="Images per prompt.")
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per cell and adapter (median).")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))

    from diffusers.modular_pipelines import StableDiffusionXLAutoBlocks
    from diffusers.utils import logging as diffusers_logging

    from storylab.guidance.clip_features import ClipEmbedder, clip_score
    from storylab.guidance.diffusers_callback import ScheduledGuidance
    from storylab.guidance.diffusers_guider import ScheduledCFG
    from storylab.guidance.pipeline_study import _encode, load_text_to_image
    from storylab.metrics.distribution import vendi_score

    diffusers_logging.set_verbosity_error()
    tmp = Path(tempfile.mkdtemp())
    if args.model:
        classic = load_text_to_image(args.model)
    else:
        from tests.foundation.tiny_pipelines import tiny_sdxl

        classic = tiny_sdxl(tmp / "sdxl")
    if args.clip:
        clip_dir = Path(args.clip)
    else:
        from tests.foundation.tiny_pipelines import tiny_clip

        clip_dir = tiny_clip(tmp / "clip")
    clip = ClipEmbedder(clip_dir)
    modular = StableDiffusionXLAutoBlocks().init_pipeline()
    modular.update_components(**{k: getattr(classic, k) for k in COMPONENTS})
    quiet(modular._blocks)
    side = classic.unet.config.sample_size * classic.vae_scale_factor

    prompts = ["a b", "b a c", "c c a", "a a b"][: args.prompts]
    embeds = [_encode(classic, p, "") for p in prompts]
    text = clip.text_features(prompts).repeat_interleave(args.n, dim=0)
    specs = [s.strip() for s in args.schedules.split(";") if s.strip()]
    scales = [float(s) for s in args.scales.split(",")]

    def seeds(p: int) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(1000 * p + j) for j in range(args.n)]

    rows = []
    for spec in specs:
        for scale in scales:
            t_guider, t_callback = [], []
            for _ in range(args.repeats):
                batches: list[int] = []
                original = count_unet(modular, batches)
                t0 = time.perf_counter()
                guided = []
                for p, prompt in enumerate(prompts):
                    modular.update_components(guider=ScheduledCFG(spec, guidance_scale=scale))
                    guided += modular(prompt=prompt, negative_prompt="", num_inference_steps=args.steps, height=side,
                                      width=side, num_images_per_prompt=args.n, generator=seeds(p), output="images")
                t_guider.append(time.perf_counter() - t0)
                modular.unet.forward = original
                nfe = sum(batches) / (len(prompts) * args.n)
                t0 = time.perf_counter()
                called = []
                for p, emb in enumerate(embeds):
                    cb = ScheduledGuidance(spec, scale=scale, num_steps=args.steps, **emb)
                    called += classic(**cb.pipeline_kwargs(), num_inference_steps=args.steps, height=side, width=side,
                                      num_images_per_prompt=args.n, generator=seeds(p), output_type="pil").images
                t_callback.append(time.perf_counter() - t0)
            diff = max(int(np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max())
                       for a, b in zip(guided, called))
            feats = clip.image_features(guided)
            rows.append((spec, scale, nfe, statistics.median(t_guider), statistics.median(t_callback), diff,
                         clip_score(feats, text), vendi_score(feats.numpy())))

    print(f"cell = {len(prompts)} prompts x {args.n} images, {args.steps} steps, {side}x{side} px, "
          f"median of {args.repeats}, {args.threads} thread(s); model {args.model or 'tiny random SDXL'}, "
          f"CLIP {args.clip or 'tiny random CLIP'}")
    print("| schedule | scale | UNet evals/image | guider s/cell | callback s/cell | guider/callback | "
          "max pixel diff (0-255) | CLIP score | Vendi |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec, scale, nfe, tg, tc, diff, cs, vendi in rows:
        print(f"| {spec} | {scale:g} | {nfe:g} | {tg:.2f} | {tc:.2f} | {tg / tc:.2f} | {diff} | {cs:.2f} | {vendi:.3f} |")


if __name__ == "__main__":
    main()
