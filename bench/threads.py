"""Threads bench: ``storylab sample fashion-mnist`` with 1 and 2 torch threads, alone and beside a competing process.

Each run is ``storylab --threads N sample fashion-mnist ...`` in a fresh interpreter (start-up
included, as a user sees it). Three variants: 1 thread, 2 threads, and 2 threads with
``OMP_WAIT_POLICY=PASSIVE`` (OpenMP threads that wait for work sleep instead of spinning, which
matters when the cores are shared). Within one condition the variants take turns, in an order that
reverses every repeat, so that a change of load on a shared machine falls on all of them alike. The competing process is another torch job: a
loop of 256x256 matrix products on ``--competitor-threads`` threads (default: the physical cores),
started before the condition's runs and ended after them. The table gives the median wall and CPU
time (user + system) of each variant and its ratios to 1 thread; the 1-minute load average
(``os.getloadavg``) before and after each condition says how quiet the machine was.

    python bench/threads.py [--repeats 2] [--steps 10] [--per-class 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's storylab, not an installed one

from storylab.threads import physical_cores  # noqa: E402

COMPETITOR = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
a = torch.randn(256, 256)
while True:
    a = torch.tanh(a @ a)
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "STORYLAB_THREADS", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    return env


VARIANTS = (("1 thread", 1, {}), ("2 threads", 2, {}), ("2 threads, passive wait", 2, {"OMP_WAIT_POLICY": "PASSIVE"}))


def run_once(threads: int, extra_env: dict[str, str], sample_args: list[str], out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``storylab --threads N sample fashion-mnist`` in a fresh interpreter."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "storylab.cli", "--threads", str(threads), "sample", "fashion-mnist",
                           *sample_args, "--out", str(out / "samples.png")],
                          capture_output=True, text=True, env={**_env(), **extra_env})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"storylab sample fashion-mnist failed: {done.stderr.strip()}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def condition(name: str, repeats: int, sample_args: list[str], out: Path, competitor_threads: int | None) -> dict:
    """Run every variant ``repeats`` times (taking turns), optionally beside the competing process."""
    rival = None
    if competitor_threads is not None:
        rival = subprocess.Popen([sys.executable, "-c", COMPETITOR, str(competitor_threads)], env=_env())
        time.sleep(3)  # let it import torch and start multiplying
    load_before = os.getloadavg()[0]
    times: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in VARIANTS}
    try:
        for r in range(repeats):
            for label, threads, extra in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]):
                times[label].append(run_once(threads, extra, sample_args, out))
                print(f"  {name}: {label}, run {r + 1}: {times[label][-1][0]:.1f} s wall", flush=True)
    finally:
        if rival is not None:
            rival.terminate()
            rival.wait()
    med = {label: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for label, v in times.items()}
    return {"name": name, "load": (load_before, os.getloadavg()[0]), "median": med}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant and condition (default 2)")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps of each sample run (default 10)")
    parser.add_argument("--per-class", type=int, default=4, help="images per class of each sample run (default 4)")
    parser.add_argument("--competitor-threads", type=int, default=physical_cores(),
                        help="torch threads of the competing process (default: the physical cores)")
    args = parser.parse_args()
    sample_args = ["--steps", str(args.steps), "--per-class", str(args.per_class)]
    print(f"storylab --threads N sample fashion-mnist {' '.join(sample_args)}; {args.repeats} runs per variant; "
          f"{os.cpu_count()} CPUs, {physical_cores()} physical cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [condition("no competing process", args.repeats, sample_args, Path(tmp), None),
                condition(f"beside a {args.competitor_threads}-thread torch job", args.repeats, sample_args, Path(tmp),
                          args.competitor_threads)]
    print("\nmedian wall / CPU seconds; ratio = the variant's wall time over 1 thread's")
    print(f"{'condition':<32} {'load before/after':>17} " + " ".join(f"{label:>24}" for label, _, _ in VARIANTS))
    for row in rows:
        base = row["median"]["1 thread"][0]
        cells = [f"{w:.1f} / {c:.1f} s ({w / base:.2f}x)" for w, c in (row["median"][label] for label, _, _ in VARIANTS)]
        load = f"{row['load'][0]:.1f} / {row['load'][1]:.1f}"
        print(f"{row['name']:<32} {load:>17} " + " ".join(f"{cell:>24}" for cell in cells))


if __name__ == "__main__":
    main()
