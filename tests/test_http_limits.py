"""The bounded HTTP client's reply cap (4 MiB, ``STORYLAB_MAX_REPLY_BYTES``) through every client that
uses it, and ``Retry-After`` on 429 and 503 (not on other 5xx)."""

import json

import pytest

from storylab.errors import StorylabError
from storylab.http_client import MAX_REPLY_ENV, HttpLimits, chat_reply_text, post_with_retries
from tests.test_security import _chat, _reply, _Server

MIB = 1024 * 1024


def videoqa_client(port):
    from storylab.videoqa.backends.openai_chat import OpenAIChatBackend

    backend = OpenAIChatBackend(f"openai://127.0.0.1:{port}/m", retries=2, backoff=0.0)
    return lambda: backend.chat("system", "question").text


def caption_client(port):
    from storylab.camera.captions import ChatCaptioner

    captioner = ChatCaptioner(base_url=f"http://127.0.0.1:{port}/v1", retries=2, backoff=0.0)
    return lambda: captioner._ask([{"role": "user", "content": "x"}])


CLIENTS = {"videoqa openai backend": videoqa_client, "camera chat captioner": caption_client}


def test_the_default_cap_is_4_mib_and_the_environment_changes_it(monkeypatch):
    monkeypatch.delenv(MAX_REPLY_ENV, raising=False)
    assert HttpLimits().max_reply_bytes == 4 * MIB
    monkeypatch.setenv(MAX_REPLY_ENV, "2048")
    assert HttpLimits().max_reply_bytes == 2048
    assert HttpLimits(max_reply_bytes=77).max_reply_bytes == 77  # an explicit cap wins over the environment
    for bad in ("0", "-5", "lots"):
        monkeypatch.setenv(MAX_REPLY_ENV, bad)
        with pytest.raises(StorylabError) as err:
            HttpLimits()
        assert str(err.value) == f"{MAX_REPLY_ENV}={bad!r} is not a positive number of bytes"


ANSWER = "The camera trucks left."


def padded_chat(total):
    """A chat reply of exactly ``total`` bytes whose answer is short (the padding is another field)."""
    def body(pad):
        return json.dumps({"choices": [{"message": {"content": ANSWER}}], "padding": pad}).encode()

    return body("x" * (total - len(body(""))))


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_every_client_takes_a_reply_of_4_mib_and_refuses_one_byte_more_unretried(client, monkeypatch):
    monkeypatch.delenv(MAX_REPLY_ENV, raising=False)
    for size, accepted in ((4 * MIB, True), (4 * MIB + 1, False)):
        body = padded_chat(size)
        assert len(body) == size
        with _Server(lambda h, n: _reply(h, 200, body)) as server:
            ask = CLIENTS[client](server.httpd.server_port)
            if accepted:
                assert ask() == ANSWER
            else:
                with pytest.raises(StorylabError) as err:
                    ask()
                assert f"is {size} bytes, above the cap of {4 * MIB} bytes (set ${MAX_REPLY_ENV} to change it)" in str(err.value)
                assert len(server.calls) == 1  # refused, not retried


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_every_client_reads_the_cap_from_the_environment(client, monkeypatch):
    monkeypatch.setenv(MAX_REPLY_ENV, "3000")
    body = padded_chat(3001)
    with _Server(lambda h, n: _reply(h, 200, body)) as server:
        with pytest.raises(StorylabError, match="above the cap of 3000 bytes"):
            CLIENTS[client](server.httpd.server_port)()
    monkeypatch.setenv(MAX_REPLY_ENV, "3001")
    with _Server(lambda h, n: _reply(h, 200, body)) as server:
        assert CLIENTS[client](server.httpd.server_port)() == ANSWER


@pytest.mark.parametrize("status,honoured", [(429, True), (503, True), (500, False), (502, False)])
def test_retry_after_is_honoured_on_429_and_503_only(status, honoured):
    def busy_then_ok(h, n):
        if n == 1:
            return _reply(h, status, Retry_After="7")
        _reply(h, 200, _chat("B"))

    waits = []
    with _Server(busy_then_ok) as server:
        reply = post_with_retries(server.url, b"{}", {}, HttpLimits(timeout=5, retries=2, backoff=0.0), "backend x",
                                  parse=chat_reply_text, sleep=waits.append)
    assert reply == "B" and len(server.calls) == 2
    assert waits == ([7.0] if honoured else [0.0])  # backoff 0: only Retry-After makes the client wait
