"""Time one cell of `storylab evaluate pipeline` per schedule, side by side (issue 18).

A cell is n images x P prompts sampled with :class:`ScheduledGuidance` on a diffusers pipeline. The
schedules are run interleaved and repeated; the median seconds per cell and the ratio to the
constant schedule are printed next to the ratio of UNet evaluations (a step at scale 1 skips the
unconditional batch, so linear and interval schedules should be cheaper). Default pipeline: the
tiny random SD 1.5-shaped pipeline of the tests (built from configs, nothing downloaded); pass
``--model DIR`` for a real one. Single thread, as on the shared 2-core box.

    /work/venv/bin/python bench/guidance_pipeline_cell.py [--model DIR] [--repeats 5] [--steps 20] [--n 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="A saved diffusers pipeline (default: the tiny test pipeline).")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--n", type=int, default=4, help="Images per prompt.")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--scale", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))

    from storylab.guidance.diffusers_callback import ScheduledGuidance, pipeline_scales
    from storylab.guidance.pipeline_study import _encode, load_text_to_image

    if args.model:
        pipe = load_text_to_image(args.model)
    else:
        from tests.foundation.tiny_pipelines import tiny_sd

        pipe = tiny_sd(Path(tempfile.mkdtemp()))
    prompts = ["a b", "b a c", "c c a", "a a b"][: args.prompts]
    embeds = [_encode(pipe, p, "") for p in prompts]
    specs = ["constant", "linear", "clamp:linear:c=2", "interval:start=0.3,stop=0.7"]
    times: dict[str, list[float]] = {s: [] for s in specs}
    for _ in range(args.repeats):
        for spec in specs:
            t0 = time.perf_counter()
            for p, emb in enumerate(embeds):
                cb = ScheduledGuidance(spec, scale=args.scale, num_steps=args.steps, **emb)
                gens = [torch.Generator().manual_seed(1000 * p + j) for j in range(args.n)]
                pipe(**cb.pipeline_kwargs(), num_inference_steps=args.steps, num_images_per_prompt=args.n,
                     generator=gens, output_type="pil")
            times[spec].append(time.perf_counter() - t0)
    base = statistics.median(times["constant"])
    base_nfe = sum(2 if s > 1 else 1 for s in pipeline_scales("constant", args.steps, args.scale))
    print(f"one cell = {len(prompts)} prompts x {args.n} images, {args.steps} steps, scale {args.scale:g}, "
          f"{args.repeats} interleaved repeats, {args.threads} thread(s), model {args.model or 'tiny test SD'}")
    print(f"{'schedule':32s} {'s/cell':>8s} {'s/image':>8s} {'time ratio':>10s} {'UNet-eval ratio':>15s}")
    for spec in specs:
        med = statistics.median(times[spec])
        nfe = sum(2 if s > 1 else 1 for s in pipeline_scales(spec, args.steps, args.scale))
        print(f"{spec:32s} {med:8.3f} {med / (len(prompts) * args.n):8.4f} {med / base:10.3f} {nfe / base_nfe:15.3f}")


if __name__ == "__main__":
    main()
