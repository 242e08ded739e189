"""OEQA judges: the authors' LLM-judge protocol (SFD / SF20K) and an offline embedding fallback.

The LLM judge sees the question, the reference answer and the predicted answer under the system and
user prompts of SF20K's ``scripts/run_evaluation.py`` (the same protocol as SFD's LongVA evaluation),
at temperature 0 with at most 16 new tokens, and must reply with a Python dictionary
``{'pred': 'yes'|'no', 'score': 0-5}``. The reply is read as the authors read it, with
``ast.literal_eval`` of the whole reply: anything else is unreadable (no loose regex rescue), so a
chatty judge scores 0 there as it would in their scripts. Any chat backend can judge (``openai://``
or ``hf:``, e.g. ``hf:smollm2``). Without a judge model, the embedding judge scores the cosine
similarity of prediction and reference with the bundled MiniLM encoder: ``yes`` when it reaches a
threshold, score = 5 x similarity (clipped to 0-5). Its numbers are not comparable to an LLM judge's.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Protocol

from storylab.errors import StorylabError

# The authors' judge prompt (SF20K scripts/run_evaluation.py), reproduced verbatim as protocol data.
JUDGE_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for question-answer pairs. "
    "Your task is to compare the predicted answer with the correct answer and determine if they match meaningfully. Here's how you can accomplish the task:\n"
    "------\n"
    "##INSTRUCTIONS:\n"
    "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
    "- Consider synonyms or paraphrases as valid matches.\n"
    "- Evaluate the correctness of the prediction compared to the answer."
)
JUDGE_TEMPLATE = (
    "Please evaluate the following video-based question-answer pair:\n\n"
    "Question: {question}\n"
    "Correct Answer: {reference}\n"
    "Predicted Answer: {prediction}\n\n"
    "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, with 5 indicating the highest meaningful match. "
    "Please generate the response in the form of a Python dictionary string with keys 'pred' and 'score', where value of 'pred' is a string of 'yes' or 'no' and value of 'score' is in INTEGER, not STRING. "
    "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
    "For example, your response should look like this: {{'pred': 'yes', 'score': 4}}."
)
JUDGE_MAX_TOKENS = 16  # as in run_evaluation.py


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict: yes/no (None if unreadable), score 0-5 (None if unreadable) and the raw reply.

    ``yes`` is set only when the reply has both keys (SFD counts such verdicts for its yes-rate);
    ``score`` whenever it has a score (SF20K sums those, unreadable ones count 0).
    """

    yes: bool | None
    score: float | None
    raw: str = ""


def parse_judgement(reply: str) -> Judgement:
    """Read the judge's reply as the authors do: ``ast.literal_eval`` of the whole reply, a dict with
    ``'pred'`` and ``'score'``; ``pred`` is yes only when it is exactly ``'yes'``. A score outside 0-5
    or not a number is unreadable."""
    text = (reply or "").strip()
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return Judgement(None, None, reply or "")
    if not isinstance(value, dict):
        return Judgement(None, None, reply or "")
    score = value.get("score")
    ok = isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 5
    score_f = float(score) if ok else None
    yes = (value["pred"] == "yes") if "pred" in value and score_f is not None else None
    return Judgement(yes=yes, score=score_f, raw=reply or "")


class Judge(Protocol):
    """Something that judges one (question, reference, prediction) triple."""

    spec: str

    def judge(self, question: str, reference: str, prediction: str) -> Judgement:
        """Judge one open-ended answer."""
        ...


class LLMJudge:
    """The authors' LLM-judge protocol through any chat backend (temperature 0, 16 new tokens, replies cached)."""

    def __init__(self, model, spec: str) -> None:
        self.model, self.spec = model, spec

    def judge(self, question: str, reference: str, prediction: str) -> Judgement:
        """Ask the judge model for yes/no and a 0-5 score."""
        text = JUDGE_TEMPLATE.format(question=question, reference=reference, prediction=prediction)
        return parse_judgement(self.model.chat(JUDGE_SYSTEM, text, max_tokens=JUDGE_MAX_TOKENS).text)


class EmbeddingJudge:
    """Offline fallback: cosine similarity of prediction and reference with the MiniLM sentence encoder."""

    def __init__(self, threshold: float = 0.5, encoder=None) -> None:
        from transformers.utils import logging as hf_logging

        from storylab.text_encoder import default_encoder

        hf_logging.disable_progress_bar()
        if not 0.0 <= threshold <= 1.0:
            raise StorylabError(f"embedding judge threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold
        self.encoder = encoder if encoder is not None else default_encoder()
        self.spec = f"embedding@{threshold:g}"

    def similarity(self, reference: str, prediction: str) -> float:
        """Cosine similarity of the two texts' sentence embeddings (0 for an empty prediction)."""
        if not prediction.strip():
            return 0.0
        emb = self.encoder.encode([reference, prediction])
        return float(emb[0] @ emb[1])

    def judge(self, question: str, reference: str, prediction: str) -> Judgement:
        """``yes`` when similarity >= threshold; score = 5 x similarity clipped to [0, 5]."""
        sim = self.similarity(reference, prediction)
        return Judgement(yes=sim >= self.threshold, score=round(min(5.0, max(0.0, 5 * sim)), 4), raw=f"similarity {sim:.4f}")


def make_judge(spec: str, cache_dir=None, timeout: float = 120.0, retries: int = 3, backoff: float = 1.0) -> Judge:
    """The judge named by ``spec``: ``embedding`` / ``embedding@T``, or any chat backend spec (openai://, hf:)."""
    if spec == "embedding" or spec.startswith("embedding@"):
        threshold = 0.5
        if "@" in spec:
            try:
                threshold = float(spec.split("@", 1)[1])
            except ValueError:
                raise StorylabError(f"judge {spec!r}: the threshold after @ must be a number") from None
        return EmbeddingJudge(threshold)
    if spec.startswith(("openai://", "openai+http://", "openai+https://", "hf:")):
        from storylab.videoqa.backends import make_backend
        return LLMJudge(make_backend(spec, cache_dir=cache_dir, timeout=timeout, retries=retries, backoff=backoff,
                                     max_tokens=JUDGE_MAX_TOKENS), spec)
    raise StorylabError(f"unknown judge {spec!r}; use embedding, embedding@THRESHOLD, openai://HOST:PORT/MODEL, "
                        "hf:smollm2 or hf:PATH")
