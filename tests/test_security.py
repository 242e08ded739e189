"""What storylab trusts: no code runs from a data file, no id escapes its folder, no server is trusted blindly.

Each test plays the attacker: a planted pickle, an id that points elsewhere, a misbehaving server on
127.0.0.1. The expected outcome is written out in the test (nothing executed, one line, a bound).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from torch import nn

from storylab.errors import StorylabError
from storylab.http_client import HttpLimits, ServerUnavailable, parse_retry_after, post_json, post_with_retries
from storylab.io import safe_id, safe_join
from storylab.training import TrainConfig, load_resume_state, save_resume_state, state_path_for, train
from tests.cli_runner import run_cli

PACKAGE = Path(__file__).resolve().parents[1] / "storylab"


class _Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(path: Path, marker: Path, as_torch: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if as_torch:  # the zip container torch.save writes, with the evil pickle inside
        torch.save({"step": _Evil(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"step": _Evil(marker)}))


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_the_evil_pickle_really_runs_code_when_unpickled(tmp_path):
    """The payload of the tests below is live: plain unpickling executes it."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Evil(marker)))
    assert marker.exists()


def test_resume_state_round_trips_optimizer_rng_and_nested_values(tmp_path):
    model = nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.95))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "rng": torch.get_rng_state(),
             "step": 7, "ema": None, "config": {"lr": 1e-3, "betas": (0.8, 0.95), "nan": float("nan")}}
    path = tmp_path / "m.state.safetensors"
    save_resume_state(path, state)
    back = load_resume_state(path)
    assert back["step"] == 7 and back["ema"] is None
    assert back["config"]["betas"] == (0.8, 0.95) and back["config"]["nan"] != back["config"]["nan"]
    assert torch.equal(back["rng"], state["rng"])
    assert set(back["optimizer"]["state"]) == {0, 1}  # int keys stay ints
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.95)
    for key, value in state["optimizer"]["state"][0].items():
        assert torch.equal(back["optimizer"]["state"][0][key], value)
    fresh = torch.optim.AdamW(nn.Linear(3, 2).parameters(), lr=5.0)
    fresh.load_state_dict(back["optimizer"])  # the optimizer takes it back as it is
    assert fresh.param_groups[0]["lr"] == 1e-3


@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize("name", ["m.state.safetensors", "m.state.pt"])
def test_a_planted_pickle_is_refused_by_the_loop_and_never_runs(tmp_path, name, as_torch):
    marker = tmp_path / "pwned"
    _plant(tmp_path / name, marker, as_torch)
    model = nn.Linear(3, 1)
    loader = [(torch.randn(4, 3), torch.randn(4, 1))]

    def loss(m, batch):
        return ((m(batch[0]) - batch[1]) ** 2).mean()

    with pytest.raises(StorylabError) as info:
        train(model, loss, loader, TrainConfig(steps=2, progress=False),
              state_path=state_path_for(tmp_path / "m.safetensors"))
    assert not marker.exists()
    message = str(info.value)
    assert "\n" not in message and "delete it to start fresh" in message
    assert ("not a storylab state file" if name.endswith(".safetensors") else "old pickle resume state") in message


def test_another_safetensors_file_is_not_a_resume_state(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "m.state.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(StorylabError, match="not a storylab state file"):
        load_resume_state(path)


# every trainer, with the options that keep it tiny ({et}: an E.T.-format folder, {clips}: a labelled
# clips folder, made once below); each gets a planted pickle under the --out-derived state names, and
# the zoo ones also under their default names. test_every_trainer_has_a_row keeps it complete.
TRAINERS = [
    ["train", "digits", "--steps", "2"],
    ["train", "fashion-mnist", "--steps", "2"],
    ["train", "mnist", "--steps", "2"],
    ["train", "classifier", "--steps", "2"],
    ["train", "features", "--steps", "2"],
    ["train", "controlnet", "--condition", "canny", "--steps", "2"],
    ["train", "ae", "digits", "--steps", "2"],
    ["train", "vae", "digits", "--steps", "2"],
    ["train", "cvae", "digits", "--steps", "2"],
    ["train", "vqvae", "digits", "--steps", "2"],
    ["train", "gan", "digits", "--steps", "2"],
    ["train", "ldm", "digits", "--steps", "2"],
    ["train", "director", "--data", "{et}", "--steps", "2", "--batch-size", "4"],
    ["train", "clatr", "--data", "{et}", "--steps", "2", "--batch-size", "4"],
    ["train", "funnynet", "--data", "{clips}", "--modalities", "a,t", "--epochs", "1", "--batch-size", "2", "--dim", "32",
     "--audio-channels", "4", "--audio-dim", "16", "--frames", "2", "--frame-size", "16", "--text-tokens", "4",
     "--tokens", "4"],
]


@pytest.fixture(scope="module")
def trainer_data(tmp_path_factory) -> dict[str, str]:
    """A tiny E.T.-format set and a tiny labelled sitcom episode for the camera and humor trainers."""
    from storylab.camera.synth import SynthConfig, write_synth_dataset
    from storylab.humor.synth import SynthConfig as SitcomConfig, synth_sitcom

    root = tmp_path_factory.mktemp("trainer-data")
    write_synth_dataset(str(root / "et"), 12, seed=3, test_fraction=2 / 12, cfg=SynthConfig(max_seconds=2.5),
                        progress=False)
    synth_sitcom(root / "clips", SitcomConfig(episodes=1, duration=20.0, scenes=1, fps=5, width=64, height=48, seed=3),
                 progress=False)
    rows = [f"episode_001.mp4,{s}.0,{s + 8}.0,{s % 2},a line,train" for s in range(4)]
    (root / "clips" / "clips.csv").write_text("file,start,end,label,text,split\n" + "\n".join(rows) + "\n")
    return {"et": str(root / "et"), "clips": str(root / "clips")}


def _command(row: list[str], data: dict[str, str]) -> list[str]:
    return [a.format(**data) for a in row]


def test_every_trainer_has_a_row():
    """Derived from the command tree: a new ``storylab train`` command without a row above fails here
    (and so is never missing from the planted-pickle and foreign-state tests)."""
    from storylab.cli import command

    trainers = command().commands["train"].commands  # the click group of `storylab train`
    assert len(trainers) >= 15
    assert sorted(trainers) == sorted(row[1] for row in TRAINERS)


@pytest.mark.parametrize("legacy", [False, True], ids=["safetensors-name", "old-pt-name"])
@pytest.mark.parametrize("command", TRAINERS, ids=lambda c: " ".join(c[1:3]))
def test_no_trainer_runs_a_planted_resume_state(tmp_path, command, legacy, trainer_data):
    marker = tmp_path / "pwned"
    out = tmp_path / "model.safetensors"
    state = state_path_for(out)
    if legacy:
        state = state.with_name("model.state.pt")
    _plant(state, marker, as_torch=True)
    result = run_cli(*_command(command, trainer_data), "--out", str(out))
    assert not marker.exists()
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "resume state" in line and "delete it to start fresh" in line
    assert not out.exists()


@pytest.mark.parametrize("command", TRAINERS, ids=lambda c: " ".join(c[1:3]))
def test_no_trainer_resumes_a_state_of_another_run(tmp_path, command, trainer_data):
    """A genuine storylab resume state, but of another command: refused in one line naming both, the
    state left in place (a real partial run of that command is never thrown away)."""
    out = tmp_path / "model.safetensors"
    state = state_path_for(out)
    other = {"model": {}, "step": 1, "rng": torch.get_rng_state(), "optimizer": {}, "scheduler": {}, "opt_g": {},
             "opt_d": {}, "description": "another run"}
    save_resume_state(state, other)
    result = run_cli(*_command(command, trainer_data), "--out", str(out))
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert line.startswith(f"error: {state} is a resume state of 'another run', not of '"), line
    assert line.endswith(f"; delete {state} or pass --no-resume to start over"), line
    assert state.exists() and not out.exists()


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_default_zoo_state_names_are_guarded_too(tmp_path, family, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    _plant(tmp_path / "runs" / f"zoo_{family}.state.safetensors", marker, as_torch=False)
    result = run_cli("train", family, "digits", "--steps", "3")
    assert not marker.exists() and result.returncode == 2
    assert "not a storylab state file" in _one_line(result.stderr)


def test_no_unsafe_loader_anywhere_in_the_package():
    patterns = [r"weights_only\s*=\s*False", r"pickle\.loads?\(", r"allow_pickle\s*=\s*True",
                r"trust_remote_code\s*=\s*True", r"import\s+pickle", r"import\s+dill", r"cloudpickle",
                r"(?<![\w.])eval\(", r"(?<![\w.])exec\("]
    hits = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in patterns:
            for match in re.finditer(pattern, text):
                hits.append(f"{path.relative_to(PACKAGE)}: {match.group(0)}")
    for path in PACKAGE.rglob("*.py"):  # every torch.load must say weights_only=True
        for line in path.read_text(encoding="utf-8").splitlines():
            if "torch.load(" in line and "weights_only=True" not in line:
                hits.append(f"{path.relative_to(PACKAGE)}: {line.strip()}")
    assert hits == []


# ---- ids read from data files -------------------------------------------------------------------

BAD_IDS = ["../x", "../../etc/passwd", "/abs/evil", "a/b", "a\\b", "..", ".", "", "x..y", "C:evil", "nul\x00"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_safe_id_refuses_ids_that_leave_their_folder(bad):
    with pytest.raises(StorylabError, match="refusing video_id"):
        safe_id(bad, "video_id")


@pytest.mark.parametrize("good", ["-abc", "_x", "tt0111161", "a.b", "The Tower Clock"])
def test_safe_id_keeps_ordinary_ids(good, tmp_path):
    assert safe_id(good) == good
    assert safe_join(tmp_path, good, ".mp4") == tmp_path / f"{good}.mp4"


def test_video_qa_refuses_a_video_id_outside_the_videos_folder(tmp_path):
    from storylab.videoqa.frames import find_video

    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"not for the server")
    videos = tmp_path / "videos"
    videos.mkdir()
    for bad in ("../secret", str(tmp_path / "secret")):
        with pytest.raises(StorylabError, match="refusing video_id"):
            find_video(videos, bad)


def test_et_split_ids_cannot_escape_the_data_folder(tmp_path):
    from storylab.camera.et_format import read_sample, read_split

    root = tmp_path / "et"
    root.mkdir()
    (root / "pure_train_split.txt").write_text("ok_1\n../../x\n")
    with pytest.raises(StorylabError, match=r"refusing sample id in pure_train_split.txt '../../x'"):
        read_split(root, "pure", "train")
    with pytest.raises(StorylabError, match="refusing sample id"):
        read_sample(root, "/etc/passwd")


# ---- servers ------------------------------------------------------------------------------------

class _Server:
    """A loopback HTTP server whose one handler misbehaves as told; stopped on exit."""

    def __init__(self, handler) -> None:
        self.calls: list[float] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.calls.append(time.monotonic())
                try:
                    handler(self, len(outer.calls))
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1/chat/completions"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _chat(text: str) -> bytes:
    return json.dumps({"choices": [{"message": {"content": text}}]}).encode()


def _reply(h, status: int, body: bytes = b"", **headers: str) -> None:
    """Send one whole reply with a Content-Length (headers given as Retry_After="1" and so on)."""
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name.replace("_", "-"), value)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def test_a_trickling_server_cannot_hold_a_request_past_the_deadline():
    def trickle(h, n):
        body = _chat("A" * 200)
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for byte in body:  # one byte every 0.2 s: 40 s for the whole reply
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(0.2)

    with _Server(trickle) as server:
        t0 = time.monotonic()
        with pytest.raises(ServerUnavailable, match=r"no reply within 1 s \(whole-request deadline\)"):
            post_with_retries(server.url, b"{}", {}, HttpLimits(timeout=1.0, retries=0), "backend x")
        assert time.monotonic() - t0 < 2.5


def test_a_reply_above_the_cap_is_refused_and_the_run_caches_nothing(tmp_path):
    from storylab.videoqa.backends.openai_chat import OpenAIChatBackend
    from storylab.videoqa.cache import ResponseCache

    big = _chat("x" * 5000)

    def huge(h, n):
        _reply(h, 200, big)

    def chunked_huge(h, n):  # no Content-Length: the cap must hold while reading
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(big)

    for handler in (huge, chunked_huge):
        with _Server(handler) as server:
            cache = ResponseCache(tmp_path / f"cache-{handler.__name__}")
            port = server.httpd.server_port
            backend = OpenAIChatBackend(f"openai://127.0.0.1:{port}/m", cache=cache, retries=2, backoff=0.0,
                                        max_reply_bytes=1000)
            with pytest.raises(StorylabError, match="above the cap of 1000 bytes|exceeds the cap of 1000 bytes"):
                backend.chat("system", "question")
            assert len(server.calls) == 1  # not retried
        assert not any(p.is_file() and p.stat().st_size > 1000 for p in (tmp_path / f"cache-{handler.__name__}").rglob("*"))


def test_retry_after_is_honoured_on_429():
    def busy_then_ok(h, n):
        if n == 1:
            return _reply(h, 429, Retry_After="1")
        _reply(h, 200, _chat("B"))

    from storylab.http_client import chat_reply_text

    with _Server(busy_then_ok) as server:
        reply = post_with_retries(server.url, b"{}", {}, HttpLimits(timeout=5, retries=2, backoff=0.0), "backend x",
                                  parse=chat_reply_text)
        assert reply == "B"
        assert len(server.calls) == 2 and server.calls[1] - server.calls[0] >= 0.95  # backoff 0, Retry-After 1 s


def test_a_retry_after_longer_than_allowed_is_one_clear_error():
    def busy(h, n):
        _reply(h, 429, Retry_After="3600")

    with _Server(busy) as server:
        with pytest.raises(ServerUnavailable, match="retry after 3600 s, longer than the 60 s storylab waits"):
            post_with_retries(server.url, b"{}", {}, HttpLimits(timeout=5, retries=3), "backend x")
        assert len(server.calls) == 1


def test_retry_after_http_date_form():
    now = 1_000_000_000.0
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Sun, 09 Sep 2001 01:48:40 GMT", now=now) == pytest.approx(120.0)
    assert parse_retry_after("soon") is None


def test_camera_caption_goes_through_the_bounded_client_and_refuses_a_huge_caption():
    from storylab.camera.captions import MAX_CAPTION_CHARS, ChatCaptioner

    def long_caption(h, n):
        _reply(h, 200, _chat("The camera pushes in. " * 200))

    with _Server(long_caption) as server:
        captioner = ChatCaptioner(base_url=f"http://127.0.0.1:{server.httpd.server_port}/v1", retries=0)
        with pytest.raises(StorylabError, match=f"more than a caption \\({MAX_CAPTION_CHARS} at most\\)"):
            captioner._ask([{"role": "user", "content": "x"}])


def test_camera_caption_retries_a_transient_failure():
    from storylab.camera.captions import ChatCaptioner

    def fail_then_ok(h, n):
        if n == 1:
            return _reply(h, 503)
        _reply(h, 200, _chat("The camera trucks left."))

    with _Server(fail_then_ok) as server:
        captioner = ChatCaptioner(base_url=f"http://127.0.0.1:{server.httpd.server_port}/v1", backoff=0.0)
        assert captioner._ask([{"role": "user", "content": "x"}]) == "The camera trucks left."
        assert len(server.calls) == 2


def test_bad_limits_are_one_line():
    with pytest.raises(StorylabError, match="--timeout must be a finite number > 0"):
        HttpLimits(timeout=float("nan"))
    with pytest.raises(StorylabError, match="--backoff must be a finite number >= 0"):
        HttpLimits(backoff=-1)


def test_post_json_refuses_a_non_http_url():
    with pytest.raises(StorylabError, match="not an http"):
        post_json("file:///etc/passwd", b"", {}, HttpLimits())
