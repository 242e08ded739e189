"""Benchmark: Video QA harness overhead per question, and 8-vs-1 concurrency throughput.

Budgets (issue 7): harness overhead (prompt building, parsing, bookkeeping; backend time excluded)
<= 5 ms per question; with a backend that answers in 200 ms, 8 concurrent requests give >= 6x the
throughput of 1. Everything is measured side by side in this one run:

1. overhead: an SFD-sized synthetic set (films of 300 subtitle lines, about 13 minutes) answered by
   the instant ``random`` backend in L mode, so the wall time per question is the harness itself;
   the same set through the OpenAI-compatible client against a loopback server that answers at
   once adds the HTTP client's cost.
2. concurrency: the OpenAI-compatible client against a loopback server (in its own process, as a
   model server is) that takes 200 ms per reply, with 1 and with 8 requests in flight.

Run: ``.venv/bin/python bench/videoqa_harness.py``
"""

from __future__ import annotations

import contextlib
import csv
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch

from storylab.videoqa.runner import EvalConfig, run_eval
from storylab.videoqa.testing import ChatServer


def synthetic_sfd(root: Path, films: int = 10, per_film: int = 20, lines: int = 300) -> tuple[Path, Path]:
    """Questions and subtitles CSVs shaped like SFD: ``films`` films, ``lines`` subtitle lines each."""
    q, s = root / "questions.csv", root / "subtitles.csv"
    with open(q, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question_id", "video_id", "question", "answer", *[f"option_{k}" for k in range(5)], "correct_answer"])
        for v in range(films):
            for i in range(per_film):
                w.writerow([f"film{v}_{i:02d}", f"film{v}", f"In film {v}, why does character {i} leave the house in scene {i}?",
                            f"Because of reason {i}.", *[f"Option {k}: because of a plausible reason number {i}" for k in range(5)],
                            i % 5])
    with open(s, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "start", "end", "speaker", "video_id"])
        for v in range(films):
            for i in range(lines):
                w.writerow([f"Line {i} of film {v}, where somebody says something about the story so far.",
                            2.6 * i, 2.6 * i + 2.0, f"SPEAKER_{i % 3:02d}", f"film{v}"])
    return q, s


def _answer_b(body: dict) -> str:
    return "Answer: B."


def _serve(delay: float, ports: "mp.Queue", stop: "mp.Event") -> None:
    with ChatServer(_answer_b, delay=delay) as server:
        ports.put(server.port)
        stop.wait()


@contextlib.contextmanager
def server_process(delay: float) -> Iterator[str]:
    """A loopback chat server in its own process (as a real model server is), yielding its backend spec."""
    ctx = mp.get_context("spawn")
    ports, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(delay, ports, stop), daemon=True)
    proc.start()
    try:
        yield f"openai://127.0.0.1:{ports.get(timeout=60)}/bench-model"
    finally:
        stop.set()
        proc.join(10)


def timed_run(cfg: EvalConfig) -> tuple[float, dict]:
    start = time.perf_counter()
    summary = run_eval(cfg)
    return time.perf_counter() - start, summary


def main() -> None:
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="videoqa_bench_"))
    questions, subtitles = synthetic_sfd(root)
    base = dict(questions=questions, subtitles=subtitles, mode="L", progress=False)

    # 1. overhead per question (backend time ~0): random backend, then the HTTP client at zero delay
    wall, summary = timed_run(EvalConfig(out=root / "random", backend="random", concurrency=1, **base))
    n = summary["n"]
    overhead_ms = 1000 * wall / n
    with server_process(0.0) as spec:
        http_wall, http_summary = timed_run(EvalConfig(out=root / "http0", backend=spec, concurrency=1, **base))
    print(f"questions: {n} (films of 300 subtitle lines)")
    print(f"harness overhead, random backend (whole run / question): {overhead_ms:.3f} ms  "
          f"(harness-only timer: {summary['harness_ms_per_question']:.3f} ms)  budget 5 ms  "
          f"ratio to budget {overhead_ms / 5:.2f}")
    print(f"openai:// client + loopback server at zero delay: {1000 * http_wall / n:.3f} ms / question "
          f"(harness-only timer: {http_summary['harness_ms_per_question']:.3f} ms)")

    # 2. concurrency with a 200 ms backend
    m = 48
    limit = dict(base, limit=m)
    with server_process(0.2) as spec:
        t1, _ = timed_run(EvalConfig(out=root / "c1", backend=spec, concurrency=1, **limit))
        t8, _ = timed_run(EvalConfig(out=root / "c8", backend=spec, concurrency=8, **limit))
    print(f"200 ms backend, {m} questions: concurrency 1 {t1:.2f} s ({m / t1:.2f} q/s), "
          f"concurrency 8 {t8:.2f} s ({m / t8:.2f} q/s)")
    print(f"throughput ratio 8 vs 1: {t1 / t8:.2f}x  (budget >= 6x)")


if __name__ == "__main__":
    main()
