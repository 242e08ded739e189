"""Start-up bench: whole-command time against the time of the work itself, side by side in one run.

For each command it prints the best of ``--repeats`` wall-clock runs of ``python -m storylab.cli ...``
in a fresh interpreter, the import time ``python -X importtime`` reports for that run (the sum of
the top-level imports), the compute time (the command's own work, timed in this process after its
imports, or as the command reports it), and the ratio command / compute. Targets of issue #20 on a
quiet machine: ``guidance weights`` and ``control extract`` under 1 s, ``camera generate`` under 3 s.

    python bench/startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's storylab, not an installed one


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "COLUMNS": "120"}


def wall_seconds(args: list[str], repeats: int) -> tuple[float, float, str]:
    """Best wall time and best CPU time (user + system, less sensitive to a busy machine) of the command
    over ``repeats`` runs, and the output of the last one."""
    import resource

    best, best_cpu, out = float("inf"), float("inf"), ""
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "storylab.cli", *args], capture_output=True, text=True, env=_env())
        best = min(best, time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best_cpu = min(best_cpu, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode:
            raise SystemExit(f"storylab {' '.join(args)} failed: {done.stderr.strip()}")
        out = done.stdout
    return best, best_cpu, out


def import_seconds(args: list[str]) -> float:
    """Sum of the top-level cumulative import times ``-X importtime`` reports for one run."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "storylab.cli", *args], capture_output=True,
                          text=True, env=_env())
    total = 0
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if match and not match.group(2).startswith(" "):  # a top-level import (not nested under another)
            total += int(match.group(1))
    return total / 1e6


def compute_guidance() -> float:
    from storylab.guidance.schedules import parse_schedule

    t0 = time.perf_counter()
    parse_schedule("cosine").scales(50, 3.0)
    return time.perf_counter() - t0


def compute_extract(image: Path) -> float:
    from storylab.images.control.conditions import extract, load_gray_image

    t0 = time.perf_counter()
    extract("canny", load_gray_image(image))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import numpy as np
    from PIL import Image

    tmp = Path(tempfile.mkdtemp(prefix="storylab-startup-"))
    image = tmp / "image.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(image)
    rows = []

    def row(name: str, argv: list[str], compute: float | None, target: float) -> None:
        wall, cpu, out = wall_seconds(argv, args.repeats)
        if compute is None:  # camera generate reports its own sampling time
            match = re.search(r"sample ([\d.]+) s", out)
            compute = float(match.group(1)) if match else float("nan")
        rows.append((name, wall, cpu, import_seconds(argv), compute, target))

    row("--help", ["--help"], float("nan"), 1.0)
    row("guidance weights", ["guidance", "weights", "--schedule", "cosine", "--json"], compute_guidance(), 1.0)
    row("control extract", ["control", "extract", "canny", str(image), "--out", str(tmp / "c.png")],
        compute_extract(image), 1.0)
    row("camera generate", ["camera", "generate", "the camera pushes in", "--out", str(tmp / "t.txt")], None, 3.0)
    print(f"{'command':<18} {'wall s':>8} {'cpu s':>7} {'import s':>9} {'compute s':>10} {'wall/compute':>13} "
          f"{'target s':>9}")
    for name, wall, cpu, imports, compute, target in rows:
        ratio = wall / compute if compute and compute == compute else float("nan")
        print(f"{name:<18} {wall:8.2f} {cpu:7.2f} {imports:9.2f} {compute:10.4f} {ratio:13.0f} {target:9.1f}"
              f"{'' if wall <= target else '  (over)'}")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: figures on a busy machine are upper bounds)")


if __name__ == "__main__":
    main()
