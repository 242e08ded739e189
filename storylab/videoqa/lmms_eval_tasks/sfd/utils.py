"""lmms-eval hooks of the SFD tasks: documents, prompts, visuals and scores, all through storylab's own code.

The questions are read by :func:`storylab.videoqa.data.load_questions` (every released layout), the
prompt text by :func:`storylab.videoqa.prompts.build_prompt` (so ``storylab videoqa eval`` and
lmms-eval ask the identical question), MCQA replies by :func:`storylab.videoqa.parsing.parse_answer`
and OEQA replies by storylab's judge (:func:`storylab.videoqa.judge.make_judge`). Each result
carries ``video_id``, the task's ``cluster_key``, for lmms-eval's clustered standard errors.

Environment variables (each optional; default: the shipped sample film):
``STORYLAB_SFD_QUESTIONS`` questions CSV, ``STORYLAB_SFD_SUBTITLES`` subtitles CSV or folder,
``STORYLAB_SFD_VIDEOS`` videos folder (``<id>.mkv``/``.mp4``, also under ``360p/``),
``STORYLAB_SFD_PROMPT_STYLE`` storylab | longva | sf20k, ``STORYLAB_SFD_JUDGE`` OEQA judge spec
(``embedding``, ``hf:smollm2``, ``openai://HOST:PORT/MODEL``), ``STORYLAB_SFD_MAX_SUBTITLE_TOKENS``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from storylab.videoqa.data import Question, load_questions, load_subtitles
from storylab.videoqa.frames import find_video
from storylab.videoqa.parsing import parse_answer
from storylab.videoqa.prompts import PromptConfig, build_prompt
from storylab.videoqa.sample import sample_paths


def _setting(name: str, default: str | Path) -> str:
    return os.environ.get(f"STORYLAB_SFD_{name}") or str(default)


def prompt_config() -> PromptConfig:
    """The prompt settings of this run (style and subtitle budget from the environment)."""
    return PromptConfig(style=_setting("PROMPT_STYLE", "storylab"),
                        max_subtitle_tokens=int(_setting("MAX_SUBTITLE_TOKENS", 6000)))


@lru_cache(maxsize=4)
def _subtitles(path: str) -> dict:
    return load_subtitles(path)


def _docs(task: str) -> list[dict]:
    questions = load_questions(_setting("QUESTIONS", sample_paths().questions), task)
    return [{"question_id": q.question_id, "video_id": q.video_id, "question": q.question, "answer": q.answer,
             "options": list(q.options), "correct_answer": -1 if q.correct_answer is None else q.correct_answer,
             "correct_letter": q.correct_letter or ""} for q in questions]


def _to_dataset(docs: list[dict]):
    import datasets

    return datasets.Dataset.from_list(docs)


def mcqa_docs(dataset):
    """The MCQA rows of the chosen questions file (the loader's starting CSV is replaced)."""
    return _to_dataset(_docs("mcqa"))


def oeqa_docs(dataset):
    """The rows with a reference answer of the chosen questions file."""
    return _to_dataset(_docs("oeqa"))


def question_of(doc: dict) -> Question:
    """A document back as a storylab :class:`Question`."""
    correct = int(doc["correct_answer"])
    return Question(question_id=str(doc["question_id"]), video_id=str(doc["video_id"]), question=doc["question"],
                    answer=doc["answer"], options=tuple(doc["options"] or ()), correct_answer=None if correct < 0 else correct)


def doc_to_visual(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[str]:
    """``[path of the film]`` for V and VL tasks, ``[]`` for L."""
    mode = (lmms_eval_specific_kwargs or {}).get("mode", "VL")
    if "V" not in mode:
        return []
    return [str(find_video(_setting("VIDEOS", sample_paths().videos), str(doc["video_id"])))]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """storylab's prompt for the document: the system text, a blank line, then the user text."""
    kwargs = lmms_eval_specific_kwargs or {}
    task, mode = kwargs.get("task", "mcqa"), kwargs.get("mode", "L")
    subtitles = _subtitles(_setting("SUBTITLES", sample_paths().subtitles)).get(str(doc["video_id"]), []) if "L" in mode else []
    prompt = build_prompt(question_of(doc), task, mode, subtitles, int(kwargs.get("num_frames", 8)) if "V" in mode else (),
                          prompt_config())
    return f"{prompt.system}\n\n{prompt.text}" if prompt.system else prompt.text


def mcqa_target(doc: dict) -> str:
    """The correct option, written as the prompt style asks for it."""
    k = int(doc["correct_answer"])
    return f"({k + 1})" if prompt_config().style == "longva" else "ABCDE"[k]


def mcqa_process_results(doc: dict, results: list[str]) -> dict:
    """1 if storylab's parser reads the correct option from the reply, else 0 (unparsed counts as wrong)."""
    q = question_of(doc)
    parsed = parse_answer(results[0] if results else "", q.options, prompt_config().style)
    return {"accuracy": {"score": int(parsed.index == q.correct_answer), "video_id": q.video_id,
                         "question_id": q.question_id, "parsed": parsed.letter, "rule": parsed.rule}}


@lru_cache(maxsize=2)
def _judge(spec: str):
    from storylab.videoqa.judge import make_judge

    return make_judge(spec)


def oeqa_process_results(doc: dict, results: list[str]) -> dict:
    """The judge's verdict: SFD's yes (readable verdicts only) and SF20K's score (0 when unreadable)."""
    q = question_of(doc)
    verdict = _judge(_setting("JUDGE", "embedding")).judge(q.question, q.answer, results[0] if results else "")
    common = {"video_id": q.video_id, "question_id": q.question_id}
    return {"yes_rate": {**common, "score": int(bool(verdict.yes)), "readable": verdict.yes is not None},
            "llm_qa_eval": {**common, "score": verdict.score or 0.0}}


def mean_score(items: list[dict]) -> float:
    """Accuracy: the mean of the per-question 0/1 scores."""
    return sum(x["score"] for x in items) / len(items) if items else 0.0


def sfd_yes_rate(items: list[dict]) -> float:
    """SFD's yes-rate: yes verdicts over readable verdicts."""
    readable = [x["score"] for x in items if x["readable"]]
    return sum(readable) / len(readable) if readable else 0.0


def sf20k_llm_qa_eval(items: list[dict]) -> float:
    """SF20K's LLM-QA-Eval: the sum of judge scores (0-5) over all questions, divided by their number."""
    return sum(x["score"] for x in items) / len(items) if items else 0.0
