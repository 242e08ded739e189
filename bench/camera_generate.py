"""Benchmark: `storylab camera generate` - latency with the model loaded (10 Heun steps with CFG) and whole command.

Budgets (2 CPU cores): < 1 s for one caption once loaded; < 10 s for the whole command.
Run: .venv/bin/python bench/camera_generate.py [--checkpoint PATH] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None, help="DIRECTOR checkpoint (default: shipped crossattn tiny)")
    parser.add_argument("--repeats", type=int, default=5, help="timed generations (default 5)")
    parser.add_argument("--frames", type=int, default=150, help="trajectory length (default 150)")
    args = parser.parse_args()
    import numpy as np
    import torch

    torch.set_num_threads(2)
    from storylab.camera.generate import TrajectoryGenerator, character_motion, shipped_checkpoint

    ckpt = args.checkpoint or str(shipped_checkpoint("crossattn"))
    caption = "The camera trucks right while the character moves right, then pushes in."
    gen = TrajectoryGenerator(ckpt)
    char = character_motion("right", args.frames)
    gen(caption, char)  # warm-up
    total, sample = [], []
    for seed in range(args.repeats):
        t0 = time.perf_counter()
        result = gen(caption, char, seed=seed)
        total.append(time.perf_counter() - t0)
        sample.append(result.timings["sample"])
    print(f"checkpoint {ckpt} ({gen.net.cfg.arch}, d {gen.net.cfg.d_model}, {gen.net.cfg.n_layers} layers)")
    print(f"model + text encoder load: {gen.load_seconds:.2f} s")
    print(f"one caption, {args.frames} frames, 10 Heun steps + CFG (19 batched evaluations): "
          f"median {statistics.median(total):.3f} s (sampling {statistics.median(sample):.3f} s) "
          f"= {statistics.median(total) / 1.0:.2f}x the 1 s budget")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gen.txt"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "storylab.cli", "camera", "generate", caption, "--char-motion",
                               "right", "--out", str(out), "--checkpoint", ckpt], capture_output=True, text=True)
        whole = time.perf_counter() - t0
        if proc.returncode:
            print(proc.stderr)
        lines = len(out.read_text().splitlines()) if out.exists() else 0
    print(f"whole command (new process, imports, load, generate, write {lines} poses): {whole:.2f} s "
          f"= {whole / 10:.2f}x the 10 s budget")
    print(f"load average during the run: {os.getloadavg()[0]:.1f}")
    np.random.seed(0)


if __name__ == "__main__":
    main()
