"""A loopback OpenAI-compatible chat server, for the wing's tests and benchmarks.

It speaks the chat-completions protocol (``POST /v1/chat/completions`` with text and ``image_url``
parts, JSON reply with ``choices[0].message.content``), checks the request shape as a real server
would (HTTP 400 for a malformed one), decodes every image, and can be told to fail: HTTP statuses,
malformed bodies, or replies slower than the client's timeout. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class ChatRequestLog:
    """What the server received: the request bodies and the number of images each carried."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    images: list[int] = field(default_factory=list)


def request_text(body: dict[str, Any]) -> str:
    """The concatenated text of a chat request's user turns."""
    parts = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if p.get("type") == "text")
    return "\n".join(parts)


class ChatServer:
    """Run the server in a thread: ``with ChatServer(reply_fn) as server: server.spec("model")``.

    ``reply(body) -> str`` makes the answer text; ``delay`` seconds are slept per request;
    ``failures`` is a queue of actions taken by the next requests, one each: an int (HTTP status),
    ``"garbage"`` (a non-JSON 200 reply), ``"empty"`` (a JSON reply without choices) or ``("sleep", s)``.
    """

    def __init__(self, reply: Callable[[dict[str, Any]], str] = lambda body: "A", delay: float = 0.0,
                 failures: list | None = None) -> None:
        self.reply, self.delay = reply, delay
        self.failures: deque = deque(failures or [])
        self.log = ChatRequestLog()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout)
                    pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/chat/completions":
                    return self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())
                with server._lock:
                    action = server.failures.popleft() if server.failures else None
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                elif isinstance(action, int):
                    return self._send(action, json.dumps({"error": {"message": f"injected status {action}"}}).encode())
                elif action == "garbage":
                    return self._send(200, b"<html>bad gateway</html>", "text/html")
                elif action == "empty":
                    return self._send(200, json.dumps({"id": "x", "choices": []}).encode())
                try:
                    body = json.loads(raw)
                    n_images = server.check(body)
                except (ValueError, KeyError, TypeError) as exc:
                    return self._send(400, json.dumps({"error": {"message": f"bad request: {exc}"}}).encode())
                with server._lock:
                    server.log.bodies.append(body)
                    server.log.images.append(n_images)
                if server.delay:
                    time.sleep(server.delay)
                text = server.reply(body)
                payload = {"id": "chatcmpl-local", "object": "chat.completion", "model": body["model"],
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}]}
                self._send(200, json.dumps(payload).encode())

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @staticmethod
    def check(body: dict[str, Any]) -> int:
        """Validate a chat-completions body as a server would; return how many images it carries."""
        from PIL import Image

        if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list) or not body["messages"]:
            raise ValueError("model and messages are required")
        n = 0
        for msg in body["messages"]:
            if msg["role"] not in ("system", "user", "assistant"):
                raise ValueError(f"bad role {msg['role']}")
            content = msg["content"]
            if isinstance(content, list):
                for part in content:
                    if part["type"] == "image_url":
                        url = part["image_url"]["url"]
                        head, _, data = url.partition(",")
                        if not head.startswith("data:image/") or ";base64" not in head:
                            raise ValueError("image_url must be a base64 data URL")
                        Image.open(io.BytesIO(base64.b64decode(data))).verify()
                        n += 1
                    elif part["type"] != "text":
                        raise ValueError(f"bad content part {part['type']}")
            elif not isinstance(content, str):
                raise ValueError("content must be a string or a list of parts")
        return n

    def spec(self, model: str = "local-model") -> str:
        """The ``--backend`` spec that reaches this server."""
        return f"openai://127.0.0.1:{self.port}/{model}"

    def __enter__(self) -> "ChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
