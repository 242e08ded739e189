"""Budgets of issue 4 (model zoo), measured in one run.

1. Every family trains with default settings in under 5 minutes on 2 CPU cores: wall time of
   ``storylab train <family> digits`` (a fresh process, defaults, into a temporary folder) and its
   ratio to the 300 s budget. The LDM trains on the VAE trained in the same run.
2. VQ-VAE codebook usage >= 50 % at the end of default training (on the train split, as printed
   by the command and stored in the checkpoint), plus the test-split usage and perplexity.

The machine's 1-minute load average is printed before and after each run: on a shared machine the
wall times scale with it. Usage: python bench/zoo_budgets.py [--families ae,vae,...] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 300.0
USAGE_BUDGET = 0.5
ORDER = ("ae", "vae", "cvae", "vqvae", "gan", "ldm")


def train(family: str, folder: Path, threads: int) -> tuple[float, str, float, float]:
    """Run the default training command; return (wall seconds, last output line, load before, load after)."""
    cmd = [sys.executable, "-m", "storylab.cli", "train", family, "digits", "--out", str(folder / f"{family}.safetensors"),
           "--no-progress", "--no-resume"]
    if family == "ldm":
        cmd += ["--vae", str(folder / "vae.safetensors")]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{family} failed: {done.stderr.strip()[-500:]}")
    return seconds, done.stdout.strip().splitlines()[-1], load0, os.getloadavg()[0]


def vq_usage(path: Path) -> tuple[float, float, float]:
    """(train usage stored by the command, test usage, test perplexity) of a VQ-VAE checkpoint."""
    from storylab.images.data.digits import load_digits_split
    from storylab.images.zoo import load_zoo_model
    from storylab.images.zoo.vqvae import codebook_usage, dataset_codes

    model = load_zoo_model(path, "vqvae")
    usage, ppl = codebook_usage(dataset_codes(model, load_digits_split("test").images), model.config.codebook_size)
    return float(model.extra["usage"]), usage, ppl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(ORDER))
    parser.add_argument("--threads", type=int, default=2, help="OMP threads per training process (2 cores).")
    args = parser.parse_args()
    families = [f for f in args.families.split(",") if f]
    if "ldm" in families and "vae" not in families:
        families.insert(families.index("ldm"), "vae")
    print(f"CPU cores visible: {os.cpu_count()}, threads per run: {args.threads}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for family in families:
            seconds, line, l0, l1 = train(family, folder, args.threads)
            rows.append((family, seconds, l0, l1))
            print(f"{family:6s} {seconds:7.1f} s  ({seconds / BUDGET_S:.2f} of the 5-min budget)  load {l0:.1f} -> {l1:.1f}  | {line}")
            if family == "vqvae":
                train_usage, test_usage, ppl = vq_usage(folder / "vqvae.safetensors")
                verdict = "meets" if train_usage >= USAGE_BUDGET else "MISSES"
                print(f"       codebook usage {train_usage:.0%} on train ({verdict} the 50 % budget), "
                      f"{test_usage:.0%} on test, test perplexity {ppl:.1f}")
    worst = max(rows, key=lambda r: r[1])
    print(f"slowest: {worst[0]} {worst[1]:.1f} s = {worst[1] / BUDGET_S:.2f} of the budget; "
          f"all under 5 min: {all(r[1] < BUDGET_S for r in rows)}")


if __name__ == "__main__":
    main()
