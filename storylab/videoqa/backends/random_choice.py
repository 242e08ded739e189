"""The chance row: a uniformly random option per question (MCQA chance is 20% with five options)."""

from __future__ import annotations

import hashlib
import random

from storylab.videoqa.backends.base import QAItem, Reply
from storylab.videoqa.data import LETTERS


class RandomBackend:
    """Pick an option at random, seeded per question so reruns and resumed runs agree.

    MCQA replies with the letter (``(k)`` under the LongVA prompt style, which is read by its strict
    regex); OEQA replies with the chosen option's text, which makes a chance level for open-ended
    answers (a perfect judge would accept about one in five), or, for open-ended-only files without
    options, with a random subtitle line of the film (empty without subtitles).
    """

    context_length = None
    label = "Random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.spec = "random" if seed == 0 else f"random (seed {seed})"

    def choice(self, question_id: str) -> int:
        """The option index drawn for ``question_id`` (depends only on the seed and the id)."""
        digest = hashlib.sha256(f"{self.seed}:{question_id}".encode()).digest()
        return random.Random(digest).randrange(5)

    def answer(self, item: QAItem) -> Reply:
        """A random letter (MCQA) or a random option's text (OEQA)."""
        k = self.choice(item.question.question_id)
        if item.task == "mcqa":
            return Reply(f"({k + 1})" if item.style == "longva" else LETTERS[k], meta={"choice": k})
        if item.question.options:
            return Reply(item.question.options[k], meta={"choice": k})
        lines = [s.text for s in item.subtitles if s.text]  # an OEQA-only file: a random line of the film
        if not lines:
            return Reply("", meta={"choice": None})
        j = random.Random(hashlib.sha256(f"{self.seed}:{item.question.question_id}:line".encode()).digest()).randrange(len(lines))
        return Reply(lines[j], meta={"line": j})
