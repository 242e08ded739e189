"""SFD metrics from predictions: MCQA accuracy (unparsed replies count as wrong) and OEQA judge rates.

Predictions are JSON lines with at least ``question_id`` and ``response``, so files written by any
tool can be scored; the reply is always re-parsed here rather than trusting a stored answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Sequence

from storylab.errors import StorylabError
from storylab.videoqa.data import Question
from storylab.videoqa.judge import Judge, Judgement
from storylab.videoqa.parsing import parse_mcqa_answer
from storylab.videoqa.pool import run_concurrently


def read_jsonl(path: str | os.PathLike, what: str = "predictions") -> list[dict[str, Any]]:
    """Read a JSONL file; a bad line is an error naming its number (a torn last line is ignored)."""
    p = Path(path)
    if not p.is_file():
        raise StorylabError(f"{what} file not found: {p}")
    lines = p.read_text(encoding="utf-8", errors="replace").split("\n")
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:  # an interrupted writer's last, unterminated line
                continue
            raise StorylabError(f"{what} file {p} line {i + 1} is not valid JSON") from None
        if not isinstance(rec, dict):
            raise StorylabError(f"{what} file {p} line {i + 1} is not a JSON object")
        records.append(rec)
    return records


def check_predictions(records: Sequence[dict[str, Any]], questions: dict[str, Question], source: str) -> None:
    """Every record has ``question_id`` and ``response``, ids are known and appear once."""
    seen: set[str] = set()
    for i, rec in enumerate(records):
        if "question_id" not in rec or "response" not in rec:
            raise StorylabError(f"predictions {source}: record {i + 1} lacks question_id or response")
        qid = str(rec["question_id"])
        if qid not in questions:
            raise StorylabError(f"predictions {source}: record {i + 1} has unknown question_id {qid}")
        if qid in seen:
            raise StorylabError(f"predictions {source}: question_id {qid} appears more than once")
        seen.add(qid)


def score_mcqa(records: Sequence[dict[str, Any]], questions: dict[str, Question]) -> dict[str, Any]:
    """MCQA accuracy as a fraction in [0, 1] over the predictions, with unparsed and missing counts."""
    correct = unparsed = 0
    rules: dict[str, int] = {}
    for rec in records:
        q = questions[str(rec["question_id"])]
        parsed = parse_mcqa_answer(str(rec["response"] or ""), q.options)
        rules[parsed.rule] = rules.get(parsed.rule, 0) + 1
        if parsed.index is None:
            unparsed += 1
        elif parsed.index == q.correct_answer:
            correct += 1
    n = len(records)
    return {"accuracy": correct / n if n else 0.0, "n": n, "unparsed": unparsed, "task": "mcqa", "correct": correct,
            "missing": len(questions) - n, "parse_rules": dict(sorted(rules.items()))}


def score_oeqa(judgements: Sequence[Judgement], judge_spec: str, total_questions: int) -> dict[str, Any]:
    """OEQA yes-rate (fraction in [0, 1]) and mean 0-5 score; unreadable verdicts count as "no" / are left out of the mean."""
    n = len(judgements)
    yes = sum(1 for j in judgements if j.yes)
    scores = [j.score for j in judgements if j.score is not None]
    unjudged = sum(1 for j in judgements if j.yes is None)
    return {"accuracy": yes / n if n else 0.0, "n": n, "unparsed": unjudged, "task": "oeqa", "yes_rate": yes / n if n else 0.0,
            "mean_score": sum(scores) / len(scores) if scores else 0.0, "yes": yes, "missing": total_questions - n,
            "judge": judge_spec}


def judgement_key(judge_spec: str, question_id: str, prediction: str) -> str:
    """Identifies a verdict: judge, question and the exact prediction text."""
    return hashlib.sha256(json.dumps([judge_spec, question_id, prediction]).encode()).hexdigest()


def judge_predictions(records: Sequence[dict[str, Any]], questions: dict[str, Question], judge: Judge,
                      log_path: str | os.PathLike | None = None, concurrency: int = 1, progress=None) -> list[Judgement]:
    """Judge every prediction against its reference answer, resuming from and appending to ``log_path``."""
    done: dict[str, Judgement] = {}
    if log_path is not None and Path(log_path).exists():
        for rec in read_jsonl(log_path, "judgements"):
            if "key" in rec:
                done[rec["key"]] = Judgement(rec.get("yes"), rec.get("score"), rec.get("raw", ""))
    keys = [judgement_key(judge.spec, str(r["question_id"]), str(r["response"] or "")) for r in records]
    results: dict[str, Judgement] = {k: done[k] for k in keys if k in done}
    todo = [(k, r) for k, r in zip(keys, records) if k not in results]
    lock = threading.Lock()
    log = open(log_path, "a", encoding="utf-8") if log_path is not None and todo else None

    def one(pair: tuple[str, dict[str, Any]]) -> None:
        key, rec = pair
        q = questions[str(rec["question_id"])]
        j = judge.judge(q.question, q.answer, str(rec["response"] or ""))
        with lock:
            results[key] = j
            if log is not None:
                log.write(json.dumps({"key": key, "question_id": q.question_id, "judge": judge.spec, "yes": j.yes,
                                      "score": j.score, "raw": j.raw}) + "\n")
                log.flush()
            if progress is not None:
                progress.advance()

    try:
        run_concurrently(todo, one, lambda _item, _res: None, concurrency)
    finally:
        if log is not None:
            log.close()
    return [results[k] for k in keys]
