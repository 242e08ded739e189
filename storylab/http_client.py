"""One bounded HTTP client for OpenAI-compatible chat servers, shared by every wing that calls one.

A server is not trusted to behave: each request has a **whole-request deadline** (connecting,
sending, waiting and reading the reply together; a server trickling a byte at a time cannot hold a
request past it), a **reply-size cap** (a larger reply is refused and never stored), and retries
with exponential backoff for transient failures (connection refused, deadline passed, HTTP 429 and
5xx, malformed replies). On 429 and 503 the server's ``Retry-After`` (seconds or an HTTP date) is
honoured when it asks for no more than ``max_retry_after`` seconds; a longer wait is one clear error.

Written on the standard library's ``http.client`` rather than ``requests``/``httpx``: neither
enforces a total deadline on a slow reply by itself (their timeouts are per socket operation), and
the watchdog that does so here needs the raw socket.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import os
import random
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable

from storylab.errors import StorylabError

DEFAULT_MAX_REPLY_BYTES = 4 * 1024 * 1024  # 4 MiB: far above any chat answer, far below a memory problem
MAX_REPLY_ENV = "STORYLAB_MAX_REPLY_BYTES"
_CHUNK = 65536
DEFAULT_TIMEOUT = 120.0
# the one help text of --timeout on every command that talks to a server
TIMEOUT_HELP = ("Whole-request deadline in seconds of each server request: connecting, sending, waiting and "
                "reading the reply together (a server that trickles bytes cannot hold a request past it); "
                "a request that runs past it is retried like any transient failure.")


def default_max_reply_bytes() -> int:
    """The reply-size cap: ``$STORYLAB_MAX_REPLY_BYTES`` if set to a positive integer, else 4 MiB."""
    raw = os.environ.get(MAX_REPLY_ENV)
    if raw is None:
        return DEFAULT_MAX_REPLY_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise StorylabError(f"{MAX_REPLY_ENV}={raw!r} is not a positive number of bytes")
    return value


@dataclass
class HttpLimits:
    """How long and how much one server may take: the bounds every request is held to."""

    timeout: float = 120.0           # whole-request deadline of one attempt, seconds
    retries: int = 3                 # extra attempts after a transient failure
    backoff: float = 1.0             # first wait between attempts, seconds (doubles, +0-25 % jitter)
    max_reply_bytes: int | None = None  # None: default_max_reply_bytes()
    max_retry_after: float = 60.0    # longest Retry-After honoured, seconds

    def __post_init__(self) -> None:
        for name, lowest in (("timeout", "> 0"), ("backoff", ">= 0"), ("max_retry_after", ">= 0")):
            value = getattr(self, name)
            valid = isinstance(value, (int, float)) and math.isfinite(value) and (
                value > 0 if lowest == "> 0" else value >= 0)
            if not valid:
                raise StorylabError(f"--{name.replace('_', '-')} must be a finite number {lowest}, got {value!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise StorylabError(f"--retries must be an integer >= 0, got {self.retries!r}")
        if self.max_reply_bytes is None:
            self.max_reply_bytes = default_max_reply_bytes()
        elif self.max_reply_bytes <= 0:
            raise StorylabError(f"--max-reply-bytes must be > 0, got {self.max_reply_bytes}")


class Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's requested wait in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HttpRefused(StorylabError):
    """The server answered with an HTTP error that retrying will not fix (4xx other than 429)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ServerUnavailable(StorylabError):
    """The server could not be reached, or kept failing after every retry."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110: delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_LIVE: set = set()  # connections of the requests in flight, in any thread
_LIVE_LOCK = threading.Lock()
_ABORTED = threading.Event()



def _shutdown(conn) -> None:
    """Shut a connection's socket (if it has one) in both directions, so that a blocked read returns at once."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

def abort_inflight() -> None:
    """Shut the socket of every request in flight and refuse new attempts until :func:`clear_abort`.

    Called when a run is interrupted (Ctrl-C, SIGTERM) while worker threads wait on a server: their
    reads end at once instead of at the deadline, so the process exits promptly and cleans up."""
    _ABORTED.set()
    with _LIVE_LOCK:
        live = list(_LIVE)
    for conn in live:
        _shutdown(conn)


def clear_abort() -> None:
    """Allow requests again after :func:`abort_inflight` (the interrupted run has ended)."""
    _ABORTED.clear()


def _check_not_aborted() -> None:
    if _ABORTED.is_set():
        raise ServerUnavailable("request abandoned: the run was interrupted")


def post_json(url: str, payload: bytes, headers: dict[str, str], limits: HttpLimits) -> bytes:
    """POST ``payload`` to ``url`` once, within ``limits.timeout`` seconds in all; return the body.

    Raises :class:`Transient` for what a retry may fix, :class:`HttpRefused` for other HTTP errors
    and :class:`StorylabError` for a reply above the size cap (never retried, never stored).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StorylabError(f"not an http(s) URL: {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise StorylabError(f"bad port in URL {url!r}") from None
    conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    deadline = time.monotonic() + limits.timeout
    conn = conn_type(parts.hostname, port, timeout=limits.timeout)
    expired = threading.Event()

    def watchdog() -> None:  # the whole-request deadline: unblock any read by shutting the socket
        expired.set()
        _shutdown(conn)

    timer = threading.Timer(limits.timeout, watchdog)
    timer.daemon = True
    timer.start()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cap = int(limits.max_reply_bytes or DEFAULT_MAX_REPLY_BYTES)
    with _LIVE_LOCK:
        _LIVE.add(conn)
    try:
        _check_not_aborted()
        conn.request("POST", path, body=payload, headers={**headers, "Content-Length": str(len(payload))})
        response = conn.getresponse()
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise StorylabError(f"reply from {parts.netloc} is {int(length)} bytes, above the cap of {cap} bytes "
                                f"(set ${MAX_REPLY_ENV} to change it); refused, nothing stored")
        body = bytearray()
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError
            chunk = response.read1(_CHUNK)  # returns what one read gives, so the deadline check runs often
            if not chunk:
                break
            body.extend(chunk)
            if len(body) > cap:
                raise StorylabError(f"reply from {parts.netloc} exceeds the cap of {cap} bytes "
                                    f"(set ${MAX_REPLY_ENV} to change it); refused, nothing stored")
        if expired.is_set():
            raise TimeoutError
        status = response.status
        if 300 <= status < 400:
            where = response.getheader("Location")
            raise HttpRefused(f"HTTP {status}: the server redirects to {where or 'another address'}; "
                              "give that address instead (redirects are not followed)", status)
        if status >= 400:
            detail = _error_detail(bytes(body))
            if status == 429 or status >= 500:
                retry_after = parse_retry_after(response.getheader("Retry-After")) if status in (429, 503) else None
                raise Transient(f"HTTP {status}{detail}", retry_after)
            raise HttpRefused(f"HTTP {status}{detail}", status)
        return bytes(body)
    except (StorylabError, Transient):
        raise
    except ConnectionRefusedError:
        raise Transient(f"server is down (connection refused at {parts.scheme}://{parts.netloc})") from None
    except (TimeoutError, socket.timeout):
        raise Transient(f"no reply within {limits.timeout:g} s (whole-request deadline)") from None
    except (OSError, http.client.HTTPException) as exc:
        _check_not_aborted()
        if expired.is_set():
            raise Transient(f"no reply within {limits.timeout:g} s (whole-request deadline)") from None
        raise Transient(f"connection to {parts.scheme}://{parts.netloc} failed: {type(exc).__name__} {exc}".rstrip()) from None
    finally:
        timer.cancel()
        with _LIVE_LOCK:
            _LIVE.discard(conn)
        conn.close()


def post_with_retries(url: str, payload: bytes, headers: dict[str, str], limits: HttpLimits, label: str,
                      parse: Callable[[bytes], Any] = lambda raw: raw,
                      sleep: Callable[[float], None] = time.sleep) -> Any:
    """:func:`post_json` with retries; ``parse(raw)`` may raise :class:`Transient` for a malformed reply.

    The wait before attempt k (k >= 1) is ``backoff * 2**(k-1)`` plus up to 25 % jitter, or the
    server's ``Retry-After`` when it sent one (refused with one line above ``max_retry_after``).
    """
    problem = ""
    wait = 0.0
    for attempt in range(limits.retries + 1):
        if attempt:
            sleep(wait)
        _check_not_aborted()
        try:
            return parse(post_json(url, payload, headers, limits))
        except Transient as exc:
            problem = str(exc)
            if exc.retry_after is not None:
                if exc.retry_after > limits.max_retry_after:
                    raise ServerUnavailable(
                        f"{label}: server asked to retry after {exc.retry_after:g} s, longer than the "
                        f"{limits.max_retry_after:g} s storylab waits; try again later") from None
                wait = exc.retry_after
            else:
                wait = limits.backoff * 2 ** attempt * (1 + 0.25 * random.random())
        except HttpRefused as exc:
            raise HttpRefused(f"{label} refused the request: {exc}", exc.status) from None
    tries = limits.retries + 1
    raise ServerUnavailable(f"{label} failed after {tries} tr{'y' if tries == 1 else 'ies'}: {problem}")


def _error_detail(raw: bytes) -> str:
    try:
        payload = strict_json(raw or b"{}")
        error = payload.get("error") if isinstance(payload, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        return f" ({str(message)[:200]})" if message else ""
    except (ValueError, AttributeError):
        return ""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes | str) -> Any:
    """Parse RFC 8259 JSON: Python's ``NaN``, ``Infinity`` and ``-Infinity`` tokens are refused (ValueError)."""
    return json.loads(raw, parse_constant=_refuse_constant)


def chat_reply_text(raw: bytes) -> str:
    """The first choice's message text of a chat-completions reply; a malformed reply is :class:`Transient`.

    OpenAI's chat-completions schema makes ``choices[0].message.content`` a string, or an array of
    content parts each ``{"type": "text", "text": <string>}``. Anything else (null, a number, a list
    holding null, a body that is not strict JSON) is malformed: retried, never recorded as an answer.
    """
    snippet = raw[:60].decode("utf-8", "replace").replace("\n", " ")
    try:
        payload = strict_json(raw)
        content = payload["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise Transient(f"malformed reply (not a chat completion): {snippet!r}") from None
    if isinstance(content, list) and content and all(
            isinstance(part, dict) and isinstance(part.get("text"), str) for part in content):
        return "".join(part["text"] for part in content)
    if not isinstance(content, str):
        raise Transient(f"malformed reply (message content is {_json_type(content)}, not a string): {snippet!r}")
    return content


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an empty list" if not value else "a list with a part that is not text"
    return "an object" if isinstance(value, dict) else type(value).__name__


def parse_openai_spec(spec: str) -> tuple[str, str]:
    """Split ``openai://HOST:PORT/MODEL`` (or ``openai+https://HOST/MODEL``) into (base URL, model name).

    The one syntax for an LLM server across commands (``videoqa eval --backend``, ``camera caption
    --endpoint``); the base URL is ``http(s)://HOST:PORT``, to which ``/v1/chat/completions`` is added.
    """
    scheme, sep, rest = spec.partition("://")
    if not sep or scheme not in ("openai", "openai+http", "openai+https"):
        raise StorylabError(f"backend {spec!r} is not of the form openai://HOST:PORT/MODEL")
    host, slash, model = rest.partition("/")
    if not host or not slash or not model:
        raise StorylabError(f"backend {spec!r} needs a host and a model: openai://HOST:PORT/MODEL")
    protocol = "https" if scheme == "openai+https" else "http"
    return f"{protocol}://{host}", model


def chat_endpoint(spec: str, model: str) -> tuple[str, str]:
    """(base URL ending in ``/v1``, model) of ``openai://HOST:PORT/MODEL``, or of an old-style base URL
    ``http(s)://HOST:PORT/v1`` with ``model`` given apart (accepted for one release)."""
    if spec.startswith(("openai://", "openai+http://", "openai+https://")):
        base, name = parse_openai_spec(spec)
        return base + "/v1", name
    if spec.startswith(("http://", "https://")) and len(spec.split("://", 1)[1].strip("/")) > 0:
        return spec.rstrip("/"), model
    raise StorylabError(f"endpoint {spec!r} is not of the form openai://HOST:PORT/MODEL")
