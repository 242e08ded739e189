"""Any OpenAI-compatible chat-completions server as a Video QA backend (vLLM, llama.cpp, Ollama, ...).

Requests go to ``POST /v1/chat/completions`` with temperature 0; frames travel in the standard
vision message format (``{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,..."}}``
parts before the text part). Transient failures (connection refused, timeouts, HTTP 429 and 5xx,
malformed replies) are retried with exponential backoff; other HTTP errors fail at once. Replies are
cached on disk by request, so an interrupted run resumes without paying twice. Uses the standard
library's HTTP client, so storylab needs no extra dependency for it.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Sequence

import numpy as np

from storylab.errors import StorylabError
from storylab.videoqa.backends.base import QAItem, Reply
from storylab.videoqa.cache import ResponseCache, request_key
from storylab.videoqa.frames import encode_jpeg_base64


def parse_openai_spec(spec: str) -> tuple[str, str]:
    """Split ``openai://HOST:PORT/MODEL`` (or ``openai+https://HOST/MODEL``) into (base URL, model name)."""
    scheme, sep, rest = spec.partition("://")
    if not sep or scheme not in ("openai", "openai+http", "openai+https"):
        raise StorylabError(f"backend {spec!r} is not of the form openai://HOST:PORT/MODEL")
    host, slash, model = rest.partition("/")
    if not host or not slash or not model:
        raise StorylabError(f"backend {spec!r} needs a host and a model: openai://HOST:PORT/MODEL")
    protocol = "https" if scheme == "openai+https" else "http"
    return f"{protocol}://{host}", model


class BackendUnavailable(StorylabError):
    """The server could not be reached or kept failing after all retries."""


class OpenAIChatBackend:
    """Chat completions over HTTP with retries, backoff and a reply cache (see the module docstring)."""

    context_length = None

    def __init__(self, spec: str, cache: ResponseCache | None = None, timeout: float = 120.0, retries: int = 3,
                 backoff: float = 1.0, max_tokens: int = 128, api_key: str | None = None) -> None:
        self.spec = spec
        self.base_url, self.model = parse_openai_spec(spec)
        self.label = self.model
        self.url = f"{self.base_url}/v1/chat/completions"
        self.cache, self.timeout, self.retries, self.backoff = cache, timeout, retries, backoff
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
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + 0.25 * random.random()))
            try:
                return self._post(data)
            except _Transient as exc:
                problem = str(exc)
        tries = self.retries + 1
        raise BackendUnavailable(f"backend {self.spec} failed after {tries} tr{'y' if tries == 1 else 'ies'}: {problem}")

    def _post(self, data: bytes) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            if exc.code == 429 or exc.code >= 500:
                raise _Transient(f"HTTP {exc.code}{detail}") from None
            raise StorylabError(f"backend {self.spec} refused the request: HTTP {exc.code}{detail}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Transient(f"no reply within {self.timeout:g} s") from None
            if isinstance(reason, ConnectionRefusedError):
                raise _Transient(f"server is down (connection refused at {self.base_url})") from None
            raise _Transient(f"cannot reach {self.base_url}: {reason}") from None
        except (TimeoutError, socket.timeout):
            raise _Transient(f"no reply within {self.timeout:g} s") from None
        except (ConnectionError, OSError, http.client.HTTPException) as exc:
            raise _Transient(f"connection to {self.base_url} failed: {type(exc).__name__} {exc}".rstrip()) from None
        return _reply_text(raw)


class _Transient(Exception):
    """A failure worth retrying."""


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        payload = json.loads(exc.read() or b"{}")
        message = payload.get("error", {}).get("message") if isinstance(payload.get("error"), dict) else payload.get("error")
        return f" ({message})" if message else ""
    except (ValueError, AttributeError, OSError):
        return ""


def _reply_text(raw: bytes) -> str:
    """The first choice's message text of a chat-completions reply; malformed replies are transient errors."""
    try:
        payload = json.loads(raw)
        content = payload["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        snippet = raw[:60].decode("utf-8", "replace").replace("\n", " ")
        raise _Transient(f"malformed reply (not a chat completion): {snippet!r}") from None
    if content is None:
        return ""
    if isinstance(content, list):  # some servers return content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)
