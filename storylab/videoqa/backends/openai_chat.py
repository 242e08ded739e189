"""Any OpenAI-compatible chat-completions server as a Video QA backend (vLLM, llama.cpp, Ollama, ...).

Requests go to ``POST /v1/chat/completions`` with temperature 0; frames travel in the standard
vision message format (``{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,..."}}``
parts before the text part). Transient failures (connection refused, timeouts, HTTP 429 and 5xx,
malformed replies) are retried with exponential backoff (or the server's ``Retry-After``); other
HTTP errors fail at once. Every attempt has a whole-request deadline and a reply-size cap
(:mod:`storylab.http_client`, shared with the camera wing's caption client). Replies are cached on
disk by request, so an interrupted run resumes without paying twice.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from storylab.http_client import HttpLimits, ServerUnavailable, chat_reply_text, parse_openai_spec, post_with_retries
from storylab.videoqa.backends.base import QAItem, Reply
from storylab.videoqa.cache import ResponseCache, request_key
from storylab.videoqa.frames import encode_jpeg_base64


class BackendUnavailable(ServerUnavailable):
    """The server could not be reached or kept failing after all retries."""


class OpenAIChatBackend:
    """Chat completions over HTTP with retries, backoff and a reply cache (see the module docstring)."""

    context_length = None

    def __init__(self, spec: str, cache: ResponseCache | None = None, timeout: float = 120.0, retries: int = 3,
                 backoff: float = 1.0, max_tokens: int = 128, api_key: str | None = None,
                 max_reply_bytes: int | None = None) -> None:
        self.spec = spec
        self.base_url, self.model = parse_openai_spec(spec)
        self.label = self.model
        self.url = f"{self.base_url}/v1/chat/completions"
        self.cache, self.timeout, self.retries, self.backoff = cache, timeout, retries, backoff
        self.limits = HttpLimits(timeout=timeout, retries=retries, backoff=backoff, max_reply_bytes=max_reply_bytes)
        self.max_tokens = max_tokens
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")

    def messages(self, system: str, text: str, frames: Sequence[np.ndarray] = ()) -> list[dict[str, Any]]:
        """The chat messages: a system turn (unless empty), then a user turn with image parts (if any) and the text."""
        if frames:
            content: Any = [{"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{encode_jpeg_base64(f)}"}}
                            for f in frames]
            content.append({"type": "text", "text": text})
        else:
            content = text
        system_turn = [{"role": "system", "content": system}] if system else []  # SF20K's prompt has none
        return system_turn + [{"role": "user", "content": content}]

    def answer(self, item: QAItem) -> Reply:
        """Send the item's prompt (with frames in V/VL) and return the reply text."""
        p = item.prompt
        return self._complete(p.system, p.text, p.frames, self.max_tokens, p.hash())

    def chat(self, system: str, text: str, frames: Sequence[np.ndarray] = (), max_tokens: int | None = None) -> Reply:
        """One system + user turn at temperature 0 (used by the OEQA judge)."""
        from storylab.videoqa.prompts import Prompt
        return self._complete(system, text, frames, max_tokens or self.max_tokens, Prompt(system, text, list(frames)).hash())

    def _complete(self, system: str, text: str, frames: Sequence[np.ndarray], max_tokens: int, prompt_hash: str) -> Reply:
        key = request_key("openai-chat", self.base_url, self.model, prompt_hash, max_tokens, 0.0)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return Reply(hit, cached=True)
        body = {"model": self.model, "messages": self.messages(system, text, frames), "temperature": 0.0,
                "max_tokens": max_tokens}
        reply = self._post_with_retries(json.dumps(body).encode())
        if self.cache is not None:
            self.cache.put(key, reply, model=self.model)
        return Reply(reply)

    def _post_with_retries(self, data: bytes) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            return post_with_retries(self.url, data, headers, self.limits, f"backend {self.spec}", parse=chat_reply_text)
        except ServerUnavailable as exc:
            raise BackendUnavailable(str(exc)) from None
