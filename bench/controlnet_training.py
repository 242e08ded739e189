"""Budget: an edges ControlNet reaches edge-F1 >= 0.7 (base <= 0.3 on the same conditions) in < 10 min on 2 cores.

Trains a ControlNet on the shipped digit denoiser with the shipped checkpoint's recipe into a
temporary folder, then measures condition fidelity on held-out test conditions for the trained
net and for the base model on the same noise, without a class (the control alone must draw the
digit) and with the source digit's class under CFG. F1 is reported at the default 1-pixel
tolerance and with exact pixel matching (tolerance 0) on the 32x32 condition grid.

    .venv/bin/python bench/controlnet_training.py [--condition canny] [--steps 1000] [--count 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--condition", default="canny")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from storylab.images.assets import DENOISER
    from storylab.images.control.conditions import condition_fidelity
    from storylab.images.control.control_training import (ControlTrainingConfig, controlled_samples, eval_conditions,
                                                   train_controlnet)
    from storylab.images.networks.denoiser import load_digit_model

    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ControlTrainingConfig(kind=args.condition, steps=args.steps, lr=args.lr, batch_size=args.batch_size)
        t0 = time.perf_counter()
        net, info = train_controlnet(Path(tmp) / "cn.safetensors", DENOISER, cfg, progress=False, resume=False)
        wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    base = load_digit_model(DENOISER)
    _, labels, conds = eval_conditions(net.config.kind, args.count, seed=1)
    print(f"{args.condition}: {args.steps} steps, batch {args.batch_size}, lr {args.lr}: {wall:.0f} s wall "
          f"(training loop {info['seconds']:.0f} s; {args.threads} threads; load average {load0[0]:.1f} -> {load1[0]:.1f})")
    print("fidelity curve (step: value): " + ", ".join(f"{p['step']}: {p['fidelity']:.3f}" for p in info["fidelity"]))
    print(f"{'class':>6} {'model':>10} {'F1 tol 1':>9} {'F1 tol 0':>9}")
    scores = {}
    for mode in ("none", "class"):
        lab = None if mode == "none" else labels
        for name, current in (("base", None), ("ControlNet", net)):
            samples = controlled_samples(base, current, conds, lab, 1.0, 20, seed=0)
            f1 = condition_fidelity(net.config.kind, samples, conds).mean
            f0 = condition_fidelity(net.config.kind, samples, conds, tolerance=0.0).mean
            scores[mode, name] = (f1, f0)
            print(f"{mode:>6} {name:>10} {f1:9.3f} {f0:9.3f}")
    yes = lambda ok: "ok" if ok else "NOT MET"  # noqa: E731
    for i, tol in enumerate(("1-pixel tolerance", "exact match")):
        trained, plain = scores["none", "ControlNet"][i], scores["none", "base"][i]
        print(f"budget, no class, {tol}: ControlNet >= 0.7 {yes(trained >= 0.7)}, base <= 0.3 {yes(plain <= 0.3)}")
    print(f"budget: training under 600 s wall {yes(wall < 600)}")


if __name__ == "__main__":
    main()
