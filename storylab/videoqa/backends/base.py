"""What every Video QA backend offers: answer one SFD item, and (for LLMs) plain chat for the judge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from storylab.subtitles import Subtitle
from storylab.videoqa.data import Question
from storylab.videoqa.prompts import Prompt


@dataclass
class QAItem:
    """One question to answer: the question, its task and mode, the built prompt and the film's subtitles."""

    question: Question
    task: str
    mode: str
    prompt: Prompt
    subtitles: Sequence[Subtitle] = ()
    style: str = "storylab"  # prompt style: how an answer must be written to be read (longva: "(3)")


@dataclass
class Reply:
    """A backend's answer: the raw text, whether it came from the disk cache, and extra details."""

    text: str
    cached: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """A model that answers :class:`QAItem` s. ``label`` names its row in the results table."""

    spec: str
    label: str
    context_length: int | None  # tokens the model can read, when known (hf:); None for remote servers

    def answer(self, item: QAItem) -> Reply:
        """Answer one item (may raise :class:`storylab.errors.StorylabError`)."""
        ...


class ChatModel(Protocol):
    """A backend that can also answer a plain chat turn (used by the OEQA LLM judge)."""

    def chat(self, system: str, text: str, frames: Sequence[np.ndarray] = (), max_tokens: int | None = None) -> Reply:
        """Reply to one system + user turn, greedy / temperature 0."""
        ...


TokenCounter = Callable[[str], int]
