"""Benchmark: the offline retrieval baseline against the random row on the shipped sample film.

Budget (issue 7): the baseline beats random (20%) by a clear margin on the sample and answers the
whole sample in under 30 s on 2 CPU cores. Each run is a fresh process (imports, MiniLM loading and
all), timed from outside; both rows are measured side by side in this one run.

Run: ``.venv/bin/python bench/videoqa_baseline.py``
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(backend: str, task: str, mode: str, out: str) -> None:
    """Evaluate the sample once (called in a child process)."""
    from storylab.videoqa.runner import EvalConfig, run_eval
    from storylab.videoqa.sample import sample_paths

    p = sample_paths()
    summary = run_eval(EvalConfig(questions=p.questions, subtitles=p.subtitles, videos=p.videos, out=Path(out),
                                  backend=backend, task=task, mode=mode, progress=False, threads=1))
    print(json.dumps(summary))


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="videoqa_baseline_"))
    rows = []
    for backend in ("retrieval", "random"):
        for task, mode in (("mcqa", "L"), ("mcqa", "VL"), ("mcqa", "V"), ("oeqa", "L")):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--one", backend, task, mode, str(root / f"{backend}_{task}_{mode}")],
                                 capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            summary = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((backend, task, mode, summary["accuracy"], wall, summary["n"]))
            inner = summary["wall_s"]
            print(f"{backend:9s} {task.upper()} {mode:2s}: {'accuracy' if task == 'mcqa' else 'yes-rate'} "
                  f"{100 * summary['accuracy']:5.1f}% on {summary['n']} questions, wall {wall:5.2f} s in a fresh process "
                  f"({inner:.2f} s answering and judging after start-up)")
    acc = {(b, t, m): a for b, t, m, a, _, _ in rows}
    print(f"MCQA L accuracy ratio retrieval / random: {acc[('retrieval', 'mcqa', 'L')] / max(acc[('random', 'mcqa', 'L')], 1e-9):.2f}x "
          f"(retrieval {100 * acc[('retrieval', 'mcqa', 'L')]:.1f}% vs chance 20.0%: "
          f"{acc[('retrieval', 'mcqa', 'L')] / 0.2:.2f}x chance)")
    slowest = max(w for b, *_, w, _ in rows if b == "retrieval")
    print(f"slowest whole-sample retrieval run: {slowest:.2f} s (budget 30 s, ratio {slowest / 30:.2f})")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--one":
        one_run(*sys.argv[2:])
    else:
        main()
