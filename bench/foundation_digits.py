"""Benchmarks of issue 2 (foundation + digits), measured side by side in one run.

1. Sampler efficiency: share of 100-step DDIM wall time (batch 500, CFG) spent inside the denoiser.
2. Unconditional-pass skipping: time of a guidance interval that guides 30 % of the steps / full CFG.
3. Training budget (unless --skip-train): wall time of ``storylab train digits`` with default settings,
   then adherence at CFG scale 3 and FID at scale 1 against the real-vs-real floor.

Usage: python bench/foundation_digits.py [--skip-train] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from storylab.images.assets import DENOISER
from storylab.images.networks.denoiser import load_digit_model, sample_digits
from storylab.images.networks.feature_training import load_digit_feature_net
from storylab.images.study.study import real_reference, score_samples


def timed_denoiser(model):
    spent = {"s": 0.0}

    def denoiser(x, t, cond):
        t0 = time.perf_counter()
        out = model.denoiser(x, t, cond)
        spent["s"] += time.perf_counter() - t0
        return out

    return denoiser, spent


def sampler_share(model, batch=500, steps=100):
    labels = torch.arange(10).repeat_interleave(batch // 10)
    denoiser, spent = timed_denoiser(model)
    conds = {"cond": labels, "uncond": torch.full_like(labels, model.null_class), "negative": None}
    t0 = time.perf_counter()
    sample_digits(model, labels, "cfg", 3.0, "constant", "ddim", steps, 0, denoiser=denoiser, conditions=conds)
    total = time.perf_counter() - t0
    return spent["s"] / total, total


def interval_ratio(model, batch=500, steps=100, repeats=3):
    labels = torch.arange(10).repeat_interleave(batch // 10)
    times = {"constant": [], "interval:start=0.35,stop=0.65": []}
    for _ in range(repeats):  # interleaved, so both see the same machine load
        for spec in times:
            t0 = time.perf_counter()
            _, guided = sample_digits(model, labels, "cfg", 3.0, spec, "ddim", steps, 0, return_model=True)
            times[spec].append((time.perf_counter() - t0, guided.nfe))
    full = min(t for t, _ in times["constant"])
    part = min(t for t, _ in times["interval:start=0.35,stop=0.65"])
    nfe_full = times["constant"][0][1]
    nfe_part = times["interval:start=0.35,stop=0.65"][0][1]
    return part / full, full, part, nfe_full, nfe_part


def quality(model):
    feature_net = load_digit_feature_net()
    labels = torch.arange(10).repeat_interleave(50)
    ref = real_reference(feature_net, labels.shape[0])
    guided = score_samples(sample_digits(model, labels, "cfg", 3.0, "constant", "ddim", 50, 0), labels, feature_net,
                           ref["test_feats"])
    plain = score_samples(sample_digits(model, labels, "cfg", 1.0, "constant", "ddim", 50, 0), labels, feature_net,
                          ref["test_feats"])
    return guided, plain, ref["floor"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-train", action="store_true", help="evaluate --checkpoint instead of training one")
    parser.add_argument("--checkpoint", type=Path, default=DENOISER)
    parser.add_argument("--only", choices=("all", "share", "interval", "quality"), default="all",
                        help="run one measurement only")
    parser.add_argument("--interval-steps", type=int, default=100, help="DDIM steps of the interval comparison")
    parser.add_argument("--interval-batch", type=int, default=500, help="batch of the interval comparison")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    checkpoint = args.checkpoint
    if not args.skip_train:
        tmp = Path(tempfile.mkdtemp()) / "digits.safetensors"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "storylab.cli", "train", "digits", "--out", str(tmp), "--no-progress"],
                       check=True)
        print(f"train digits (defaults): {time.perf_counter() - t0:.1f} s wall  (budget 300 s)")
        checkpoint = tmp
    model = load_digit_model(checkpoint)
    if args.only in ("all", "share"):
        share, total = sampler_share(model)
        print(f"sampler efficiency: {share:.3f} of {total:.1f} s inside the denoiser (100-step DDIM, batch 500, CFG; target >= 0.9)")
    if args.only in ("all", "interval"):
        ratio, full, part, nfe_full, nfe_part = interval_ratio(model, args.interval_batch, args.interval_steps)
        print(f"guidance interval (30% of steps guided) / full CFG: {ratio:.3f}  ({part:.1f} s vs {full:.1f} s, best of 3 "
              f"interleaved; {args.interval_steps} DDIM steps, batch {args.interval_batch}; network evaluations "
              f"per sample {nfe_part:.0f} vs {nfe_full:.0f}; target <= 0.7)")
    if args.only not in ("all", "quality"):
        return
    guided, plain, floor = quality(model)
    print(f"adherence at CFG scale 3: {guided['adherence']:.3f}  (target >= 0.95)")
    print(f"FID at scale 1: {plain['fid']:.3f}  vs real-vs-real floor {floor['fid']:.3f}  -> ratio {plain['fid'] / floor['fid']:.2f} (target <= 2)")
    print(f"FID at scale 3: {guided['fid']:.3f}; recall scale 1 / 3: {plain['recall']:.3f} / {guided['recall']:.3f}")


if __name__ == "__main__":
    main()
