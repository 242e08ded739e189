"""SFD / SF20K metrics from predictions: MCQA accuracy (unparsed replies count as wrong) and the OEQA judge metrics.

Predictions are JSON lines with at least ``question_id`` and ``response`` (files written by any
tool), or SF20K's ``submission.csv`` (``question_id, video_id, video_url, question, prediction``);
the reply is always re-parsed here rather than trusting a stored answer. OEQA reports both published
metrics: SFD's yes-rate (yes / readable verdicts, with their mean score, as SFD's LongVA evaluation
computes them) and SF20K's LLM-QA-Eval (the sum of judge scores over every question of the questions
file divided by their number, an unreadable verdict or a missing prediction scoring 0, as
``run_evaluation.py`` does).
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
from storylab.videoqa.parsing import PARSERS, parse_answer
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


SUBMISSION_COLUMNS = ("question_id", "prediction")


def read_submission_csv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """SF20K's ``submission.csv`` as prediction records (``prediction`` becomes ``response``; task OEQA)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise StorylabError(f"predictions file not found: {p}")
    try:
        df = pd.read_csv(p, dtype=object, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorylabError(f"predictions file {p} is not a readable CSV: {first}") from None
    missing = [c for c in SUBMISSION_COLUMNS if c not in df.columns]
    if missing:
        raise StorylabError(f"predictions file {p} lacks column(s): {', '.join(missing)} "
                            "(an SF20K submission has question_id, video_id, video_url, question, prediction)")
    return [{"question_id": str(r["question_id"]).strip(), "video_id": str(r.get("video_id", "")),
             "response": str(r["prediction"]), "task": "oeqa"} for r in df.to_dict("records")]


def read_predictions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Prediction records from our JSONL or from an SF20K ``submission.csv`` (chosen by the file's extension)."""
    if str(path).lower().endswith(".csv"):
        return read_submission_csv(path)
    return read_jsonl(path)


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


def score_mcqa(records: Sequence[dict[str, Any]], questions: dict[str, Question],
               style: str = "storylab") -> dict[str, Any]:
    """MCQA accuracy as a fraction in [0, 1] over the predictions, with unparsed and missing counts.

    ``style`` picks the parser its prompts are scored with (the LongVA style: the official strict regex).
    """
    correct = unparsed = 0
    rules: dict[str, int] = {}
    for rec in records:
        q = questions[str(rec["question_id"])]
        if not q.has_mcqa:
            raise StorylabError(f"question {q.question_id} has no options; it cannot be scored as MCQA (use --task oeqa)")
        parsed = parse_answer(str(rec["response"] or ""), q.options, style)
        rules[parsed.rule] = rules.get(parsed.rule, 0) + 1
        if parsed.index is None:
            unparsed += 1
        elif parsed.index == q.correct_answer:
            correct += 1
    n = len(records)
    return {"accuracy": correct / n if n else 0.0, "n": n, "unparsed": unparsed, "task": "mcqa", "correct": correct,
            "missing": len(questions) - n, "parse_rules": dict(sorted(rules.items())), "prompt_style": style,
            "parser": PARSERS.get(style, "lenient")}


def score_oeqa(judgements: Sequence[Judgement], judge_spec: str, total_questions: int) -> dict[str, Any]:
    """SFD's yes-rate and mean score over readable verdicts, and SF20K's LLM-QA-Eval over all questions.

    ``accuracy`` is the SFD yes-rate (the table's OEQA figure); ``llm_qa_eval`` is on SF20K's 0-5
    scale: sum of scores / ``total_questions`` (unreadable verdicts and missing predictions score 0).
    """
    n = len(judgements)
    judged = [j for j in judgements if j.yes is not None]
    yes = sum(1 for j in judged if j.yes)
    rate = yes / len(judged) if judged else 0.0
    score_sum = sum(j.score for j in judgements if j.score is not None)
    return {"accuracy": rate, "n": n, "judged": len(judged), "unparsed": n - len(judged), "task": "oeqa",
            "yes_rate": rate, "yes": yes,
            "mean_score": sum(j.score for j in judged) / len(judged) if judged else 0.0,
            "llm_qa_eval": score_sum / total_questions if total_questions else 0.0, "score_sum": score_sum,
            "missing": total_questions - n, "judge": judge_spec}


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
