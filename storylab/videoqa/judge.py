"""OEQA judges: the LLM-judge protocol (Video-ChatGPT style) and an offline embedding fallback.

The LLM judge (as used for SFD's open-ended answers) sees the question, the reference answer and
the predicted answer, and must reply with a dictionary ``{'pred': 'yes'|'no', 'score': 0-5}``
at temperature 0; results are reported as yes-rate and mean score. Any chat backend can judge
(``openai://...`` or ``hf:...``). Without a judge model, the embedding judge scores the cosine
similarity of prediction and reference with the bundled MiniLM encoder: ``yes`` when it reaches a
threshold, score = 5 x similarity (clipped to 0-5). Its numbers are not comparable to an LLM judge's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from storylab.errors import StorylabError

JUDGE_SYSTEM = ("You grade answers to questions about a film. Decide whether the predicted answer means the "
                "same as the correct answer; paraphrases and synonyms count, contradictions and missing key "
                "facts do not.")
JUDGE_TEMPLATE = ("Question: {question}\nCorrect answer: {reference}\nPredicted answer: {prediction}\n\n"
                  "Reply only with a Python dictionary of two keys: 'pred', which is 'yes' if the prediction is "
                  "correct and 'no' otherwise, and 'score', an integer from 0 (wrong) to 5 (fully correct). "
                  "For example: {{'pred': 'yes', 'score': 4}}")


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict: yes/no (None if unreadable), score 0-5 (None if unreadable) and the raw reply."""

    yes: bool | None
    score: float | None
    raw: str = ""


_PRED = re.compile(r"""['"]?pred['"]?\s*[:=]\s*['"]?\s*(yes|no)\b""", re.IGNORECASE)
_SCORE = re.compile(r"""['"]?score['"]?\s*[:=]\s*['"]?\s*(\d+(?:\.\d+)?)""", re.IGNORECASE)


def parse_judgement(reply: str) -> Judgement:
    """Read ``{'pred': 'yes', 'score': 4}`` (any quoting, JSON or Python) from a judge's reply."""
    pred = _PRED.search(reply or "")
    score = _SCORE.search(reply or "")
    value = float(score.group(1)) if score else None
    if value is not None and not 0 <= value <= 5:
        value = None
    return Judgement(yes=(pred.group(1).lower() == "yes") if pred else None, score=value, raw=reply or "")


class Judge(Protocol):
    """Something that judges one (question, reference, prediction) triple."""

    spec: str

    def judge(self, question: str, reference: str, prediction: str) -> Judgement:
        """Judge one open-ended answer."""
        ...


class LLMJudge:
    """The LLM-judge protocol through any chat backend (temperature 0, replies cached by the backend)."""

    def __init__(self, model, spec: str) -> None:
        self.model, self.spec = model, spec

    def judge(self, question: str, reference: str, prediction: str) -> Judgement:
        """Ask the judge model for yes/no and a 0-5 score."""
        text = JUDGE_TEMPLATE.format(question=question, reference=reference, prediction=prediction)
        return parse_judgement(self.model.chat(JUDGE_SYSTEM, text, max_tokens=32).text)


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
                                     max_tokens=32), spec)
    raise StorylabError(f"unknown judge {spec!r}; use embedding, embedding@THRESHOLD, openai://HOST:PORT/MODEL or hf:PATH")
