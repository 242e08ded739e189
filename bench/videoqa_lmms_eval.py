"""storylab's SFD task folder run by lmms-eval itself, in a separate virtual environment.

lmms-eval's own requirements pull torchvision (broken with torch 2.13.0+cpu) and downgrade PyAV, so
it never goes into the main environment: :func:`make_venv` builds ``VENV`` with
``pip install --no-deps lmms-eval`` plus the few modules its task path imports, and a ``.pth`` file
that makes the main environment's packages (torch, transformers, storylab's dependencies) visible
without touching them. Then the driver ``tests/videoqa/lmms_driver.py`` evaluates the six tasks on
the shipped sample with a fixed-reply model and this prints the metrics.

Run: ``.venv/bin/python bench/videoqa_lmms_eval.py [--venv .venv-lmms] [--make-venv-only]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# lmms-eval 0.7.3 with --no-deps, and what `import lmms_eval.evaluator, lmms_eval.tasks` needs that the
# main environment lacks (found by importing until nothing is missing); filelock < 4 for filelock._api.
PACKAGES = ["lmms-eval==0.7.3", "datasets", "loguru", "dill", "multiprocess", "xxhash", "sqlitedict", "pytablewriter",
            "evaluate", "sacrebleu", "portalocker", "tabulate", "colorama", "lxml", "tenacity", "aiohttp", "multidict",
            "yarl", "propcache", "aiohappyeyeballs", "aiosignal", "frozenlist"]


def make_venv(venv: Path) -> Path:
    """Create ``venv`` with lmms-eval (no dependencies) on top of the current environment's packages."""
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import lmms_eval.evaluator"], capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "zz_storylab_base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run(pip + PACKAGES, check=True)
    subprocess.run(pip + ["--ignore-installed", "filelock>=3.12,<4"], check=True)
    subprocess.run([str(python), "-c", "import lmms_eval.evaluator, lmms_eval.tasks"], check=True)
    return python


def run_tasks(python: Path, reply: str, tasks: list[str], env: dict[str, str] | None = None) -> dict:
    """Run the driver in the lmms-eval venv; returns its JSON (metrics per task, prompts and visuals seen)."""
    folder = ROOT / "storylab" / "videoqa" / "lmms_eval_tasks"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1",
                "HF_HUB_OFFLINE": "1", **(env or {})}
    out = subprocess.run([str(python), str(ROOT / "tests" / "videoqa" / "lmms_driver.py"), str(folder), reply, *tasks],
                         capture_output=True, text=True, env=full_env, cwd=str(ROOT / "tests"))
    line = next((x for x in out.stdout.splitlines() if x.startswith("STORYLAB-JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"lmms-eval run failed (exit {out.returncode}): {out.stderr[-1500:]}")
    return json.loads(line[len("STORYLAB-JSON "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-lmms")
    parser.add_argument("--make-venv-only", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    python = make_venv(args.venv)
    print(f"lmms-eval venv ready: {python} ({time.perf_counter() - t0:.0f} s)")
    if args.make_venv_only:
        return
    t0 = time.perf_counter()
    tasks = ["sfd_mcqa_v", "sfd_mcqa_l", "sfd_mcqa_vl", "sfd_oeqa_l"]
    result = run_tasks(python, "B", tasks)
    print(f"lmms-eval on the sample with a model that always answers 'B' ({time.perf_counter() - t0:.0f} s):")
    for task in tasks:
        print(f"  {task}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in result["metrics"][task].items() if k != "alias"))


if __name__ == "__main__":
    main()
