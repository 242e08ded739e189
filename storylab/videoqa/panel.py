"""The video QA wing's interactive panel: a film's questions answered by a backend, parsed, scored, accumulated.

A thin front over :func:`storylab.videoqa.runner.run_eval` (the harness of ``storylab videoqa eval``,
Short Film Dataset protocol): same backends, same checks, same records; it adds the per-question
running accuracy and reports progress while the answers arrive. The web app and the demo call it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from storylab.errors import StorylabError

BACKEND_CHOICES = ("retrieval", "random", "hf:PATH", "openai://HOST:PORT/MODEL")


@dataclass
class QAResult:
    """One run's answers in question order and its summary."""

    rows: list[dict[str, Any]]   # question_id, question, response, parsed, answer, correct, running_accuracy
    accuracy: float              # fraction in [0, 1]
    n: int
    unparsed: int
    seconds: float
    method: str
    out: Path


def check_backend(spec: str) -> str:
    """A backend spec as the CLI accepts it (retrieval, random, hf:PATH, openai[+https]://HOST[:PORT]/MODEL)."""
    spec = (spec or "").strip()
    if not spec:
        raise StorylabError(f"choose a backend ({', '.join(BACKEND_CHOICES)})")
    if spec in ("hf:PATH", "openai://HOST:PORT/MODEL"):
        raise StorylabError(f"replace the placeholder in '{spec}' with a real local model folder or server address")
    return spec


def answer_film(out: str | Path, questions: str | Path | None = None, subtitles: str | Path | None = None,
                videos: str | Path | None = None, backend: str = "retrieval", mode: str = "L", limit: int | None = None,
                seed: int = 0, progress: Callable[[float, str], None] | None = None) -> QAResult:
    """Answer a film's MCQA questions with ``backend`` into the run folder ``out``; missing inputs use the shipped film."""
    from storylab.videoqa.data import load_questions
    from storylab.videoqa.runner import PREDICTIONS, EvalConfig, run_eval
    from storylab.videoqa.sample import sample_paths

    backend = check_backend(backend)
    mode = mode.upper()
    if questions is None:
        paths = sample_paths()
        questions, subtitles = paths.questions, subtitles or paths.subtitles
        videos = videos or paths.videos
    known = load_questions(questions)  # a bad CSV fails first, with the CLI's one line
    if "L" in mode and subtitles is None:
        raise StorylabError(f"mode {mode} reads subtitles: upload a subtitles CSV (or .srt) as well")
    if "V" in mode and videos is None:
        raise StorylabError(f"mode {mode} reads frames: it needs the film's video")
    out = Path(out)
    cfg = EvalConfig(questions=Path(questions), out=out, task="mcqa", mode=mode, backend=backend,
                     subtitles=Path(subtitles) if subtitles else None, videos=Path(videos) if videos else None,
                     concurrency=1, limit=limit, seed=seed, progress=False)
    total = min(len(known), limit) if limit else len(known)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["summary"] = run_eval(cfg)
        except BaseException as exc:  # handed back to the caller's thread below
            box["error"] = exc

    t0 = time.perf_counter()
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
        if progress is not None:
            done = _count_lines(out / PREDICTIONS)
            progress(min(done, total) / max(1, total), f"{done}/{total} questions answered")
    if "error" in box:
        raise box["error"]
    summary = box["summary"]
    order = {q.question_id: (i, q) for i, q in enumerate(known)}
    records = [json.loads(line) for line in (out / PREDICTIONS).read_text(encoding="utf-8").splitlines() if line.strip()]
    records.sort(key=lambda r: order[str(r["question_id"])][0])
    rows, right = [], 0
    for k, rec in enumerate(records, start=1):
        right += bool(rec.get("correct"))
        q = order[str(rec["question_id"])][1]
        rows.append({"question_id": rec["question_id"], "question": q.question, "response": rec.get("response", ""),
                     "parsed": rec.get("parsed") or "-", "answer": rec.get("answer", ""),
                     "correct": bool(rec.get("correct")), "running_accuracy": right / k})
    return QAResult(rows, float(summary["accuracy"]), int(summary["n"]), int(summary["unparsed"]),
                    time.perf_counter() - t0, str(summary["method"]), out)


def _count_lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError:
        return 0
