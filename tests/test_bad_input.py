"""Each class of bad input at its one boundary: special files, checkpoints, chat replies, SPECs, run folders.

The fuzz table (``tests/test_fuzz_cli.py``) drives every class through every command; these tests pin
the boundary functions themselves, the messages they give, and what a killed run leaves behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from storylab.errors import StorylabError

ROOT = Path(__file__).resolve().parents[1]


# --- special files --------------------------------------------------------------------------------

@pytest.mark.parametrize("make, kind", [
    (lambda p: os.mkfifo(p), "a FIFO (named pipe)"),
    (lambda p: socket.socket(socket.AF_UNIX).bind(str(p)), "a socket"),
])
def test_atomic_write_refuses_to_rename_over_a_special_file(tmp_path, make, kind):
    from storylab.io import atomic_write_text

    target = tmp_path / "out.txt"
    make(target)
    with pytest.raises(StorylabError, match=f"cannot write {target}: it is {kind.replace('(', '.').replace(')', '.')}, "
                                            "not a regular file"):
        atomic_write_text(target, "x")
    assert not target.is_file() and target.exists()  # still the special file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temporary file left


def test_a_device_output_stays_a_device(tmp_path):
    """The issue's reproduction: ``camera generate --out n`` where n is /dev/null's device node."""
    from tests.cli_runner import run_cli

    node = tmp_path / "n"
    try:
        os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        node.symlink_to("/dev/null")
    result = run_cli("camera", "generate", "a", "--steps", "2", "--frames", "25", "--out", str(node))
    assert result.returncode == 2
    assert result.stderr == f"error: cannot write --out {node}: it is a character device, not a regular file " \
                            "(give a new file name)\n"
    assert not node.is_file() and node.exists()


def test_a_fifo_input_is_refused_before_it_is_opened(tmp_path):
    """Opening a FIFO for reading blocks until a writer comes: the check must not open it."""
    from tests.cli_runner import run_cli

    fifo = tmp_path / "f.wav"
    os.mkfifo(fifo)
    done = threading.Event()
    result = {}

    def run():
        result["r"] = run_cli("humor", "laughter", str(fifo))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    if not done.wait(30):
        with open(fifo, "wb"):  # unblock the reader so the thread ends
            pass
        pytest.fail("humor laughter blocked on a FIFO")
    assert result["r"].returncode == 2
    assert result["r"].stderr == f"error: cannot read MEDIA {fifo}: it is a FIFO (named pipe), not a regular file\n"


def test_trailing_slash_on_a_file_output_is_refused_and_on_a_folder_output_is_a_folder(tmp_path):
    from tests.cli_runner import run_cli

    image = tmp_path / "in.png"
    from PIL import Image
    Image.new("L", (16, 16)).save(image)
    result = run_cli("control", "extract", "canny", str(image), "--out", f"{tmp_path}/e.png/")
    assert result.returncode == 2 and not (tmp_path / "e.png").exists()
    assert result.stderr == f"error: cannot write --out {tmp_path}/e.png/: a path ending in '/' names a folder, " \
                            "a file is expected (drop the '/')\n"
    # an output the command does not declare as a file: the slash says folder, so an existing file is refused
    (tmp_path / "x.d").write_text("")
    result = run_cli("camera", "synth", "--n", "1", "--out", f"{tmp_path}/x.d/")
    assert result.returncode == 2 and "it is an existing file, a folder is expected" in result.stderr


# --- checkpoints ----------------------------------------------------------------------------------

def _checkpoint(tmp_path, state, **meta):
    from storylab.training.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "c.safetensors", state, "digits-denoiser", {"a": 1})
    if meta:
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file
        with safe_open(str(path), framework="pt") as f:
            old = dict(f.metadata())
        save_file(load_file(str(path)), str(path), metadata={**old, **meta})
    return path


@pytest.mark.parametrize("bad, count", [(float("nan"), 1), (float("inf"), 1), (float("-inf"), 1)])
def test_a_checkpoint_with_non_finite_weights_is_refused_naming_the_tensor(tmp_path, bad, count):
    from storylab.training.checkpoint import load_checkpoint

    w = torch.zeros(2, 3)
    w[1, 2] = bad
    path = _checkpoint(tmp_path, {"ok": torch.ones(4), "layer.weight": w, "steps": torch.tensor([3])})
    with pytest.raises(StorylabError) as info:
        load_checkpoint(path, "digits-denoiser")
    assert str(info.value) == (f"{path}: tensor 'layer.weight' holds {count} non-finite value (NaN or infinity) of 6; "
                               "the checkpoint is broken (a diverged run?)")


def test_an_unknown_format_version_is_refused_before_the_weights_are_read(tmp_path):
    from storylab.training.checkpoint import load_checkpoint, load_resume_state, save_resume_state

    path = _checkpoint(tmp_path, {"w": torch.ones(2)}, **{"storylab.format": "999"})
    with pytest.raises(StorylabError) as info:
        load_checkpoint(path)
    assert str(info.value) == (f"{path}: unknown storylab.format version '999' (this storylab reads version 1); "
                               "was it written by a newer storylab?")
    state = save_resume_state(tmp_path / "s.state.safetensors", {"step": 1})
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    with safe_open(str(state), framework="pt") as f:
        meta = dict(f.metadata())
    save_file(load_file(str(state)), str(state), metadata={**meta, "storylab.format": "2"})
    with pytest.raises(StorylabError, match="unknown storylab.format version '2'"):
        load_resume_state(state)


def test_a_checkpoint_without_a_format_key_still_loads(tmp_path):
    """Files written before the key existed (the shipped metric reference) read as version 1."""
    from safetensors.torch import save_file

    from storylab.training.checkpoint import load_checkpoint

    save_file({"w": torch.ones(2)}, str(tmp_path / "old.safetensors"), metadata={"storylab.kind": "x"})
    assert load_checkpoint(tmp_path / "old.safetensors").state_dict["w"].tolist() == [1.0, 1.0]


# --- chat replies ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body, why", [
    (b'{"choices":[{"message":{"content":null}}]}', "message content is null, not a string"),
    (b'{"choices":[{"message":{"content":3}}]}', "message content is a number, not a string"),
    (b'{"choices":[{"message":{"content":true}}]}', "message content is a boolean, not a string"),
    (b'{"choices":[{"message":{"content":[]}}]}', "message content is an empty list, not a string"),
    (b'{"choices":[{"message":{"content":[{"type":"text","text":"A"},null]}}]}',
     "message content is a list with a part that is not text, not a string"),
    (b'{"choices":[{"message":{"content":{"text":"A"}}}]}', "message content is an object, not a string"),
    (b'{"choices":[{"message":{"content":NaN}}]}', "not a chat completion"),
    (b'{"choices":[{"message":{"content":"A"}}],"usage":{"t":Infinity}}', "not a chat completion"),
    (b'{"choices":[]}', "not a chat completion"),
])
def test_a_chat_reply_whose_content_is_not_text_is_malformed(body, why):
    from storylab.http_client import Transient, chat_reply_text

    with pytest.raises(Transient, match="^malformed reply \\(" + why.replace("(", "\\(").replace(")", "\\)")):
        chat_reply_text(body)


def test_chat_reply_text_keeps_strings_and_text_parts():
    from storylab.http_client import chat_reply_text

    assert chat_reply_text(b'{"choices":[{"message":{"content":"Answer: B"}}]}') == "Answer: B"
    assert chat_reply_text(b'{"choices":[{"message":{"content":""}}]}') == ""
    parts = b'{"choices":[{"message":{"content":[{"type":"text","text":"Ans"},{"type":"text","text":"wer"}]}}]}'
    assert chat_reply_text(parts) == "Answer"


class _Server:
    def __init__(self, handler):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    handler(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_redirect_is_named_not_called_malformed():
    from storylab.http_client import HttpLimits, HttpRefused, post_with_retries

    def redirect(h):
        h.send_response(301)
        h.send_header("Location", "https://elsewhere.example/v1/chat/completions")
        h.send_header("Content-Length", "0")
        h.end_headers()

    server = _Server(redirect)
    try:
        with pytest.raises(HttpRefused) as info:
            post_with_retries(f"http://127.0.0.1:{server.port}/v1/chat/completions", b"{}", {},
                              HttpLimits(timeout=5, retries=2, backoff=0), "backend x")
    finally:
        server.close()
    assert str(info.value) == ("backend x refused the request: HTTP 301: the server redirects to "
                               "https://elsewhere.example/v1/chat/completions; give that address instead "
                               "(redirects are not followed)")


def test_every_command_that_talks_to_a_server_takes_the_same_timeout():
    """Derived from the command tree: a command with a server option (--endpoint, --backend, --judge)
    has --timeout, and its help starts with the one whole-request text."""
    from storylab.http_client import TIMEOUT_HELP
    from tests.test_fuzz_cli import _commands

    servers = [(path, cmd) for path, cmd in _commands()
               if any(o in ("--endpoint", "--backend", "--judge") for p in cmd.params for o in getattr(p, "opts", []))]
    assert {p for p, _ in servers} >= {"camera caption", "camera synth", "videoqa eval", "videoqa score"}
    for path, cmd in servers:
        timeout = [p for p in cmd.params if "--timeout" in getattr(p, "opts", [])]
        assert timeout, f"{path} talks to a server but has no --timeout"
        assert timeout[0].help.startswith(TIMEOUT_HELP), path


# --- SPECs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, key", [("pcs:s=1,s=2", "s"), ("pcs-mean:s=1,s=1", "s"), ("clamp:linear:c=1,c=2", "c"),
                                       ("interval:start=0,start=0.5", "start"),
                                       ("interval:sigma_lo=1,sigma_hi=2,sigma_lo=0", "sigma_lo")])
def test_a_spec_that_repeats_a_key_is_refused(spec, key):
    from storylab.guidance.schedules import parse_schedule

    with pytest.raises(StorylabError) as info:
        parse_schedule(spec)
    assert str(info.value) == f"schedule '{spec}': parameter '{key}' is given twice (give each parameter once)"


# --- trajectories and data sets -------------------------------------------------------------------

def test_positions_beyond_range_are_refused_where_squares_would_still_be_finite():
    from storylab.camera.et_format import MAX_COORDINATE, validate_char, validate_poses

    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[2, 1, 3] = 2 * MAX_COORDINATE
    with pytest.raises(StorylabError, match="frame 2 has a translation of 2e\\+06, beyond the 1e\\+06"):
        validate_poses(poses)
    poses[2, 1, 3] = MAX_COORDINATE  # the bound itself is allowed
    validate_poses(poses)
    with pytest.raises(StorylabError, match="character position of 1e\\+308 is beyond"):
        validate_char(np.array([[0.0, 0, 0], [0, 0, 1e308]]))


def test_a_split_naming_a_sample_twice_is_refused(tmp_path):
    from storylab.camera.et_format import read_split

    (tmp_path / "mixed_train_split.txt").write_text("a\nb\nc\nb")
    with pytest.raises(StorylabError) as info:
        read_split(tmp_path, "mixed", "train")
    assert str(info.value) == (f"{tmp_path / 'mixed_train_split.txt'}: sample id 'b' is listed twice (entries 2 and 4); "
                               "list each sample once")


# --- run folders, locks and signals ---------------------------------------------------------------

def _hanging_server():
    """A chat server that never answers (holds each request for a minute)."""
    return _Server(lambda h: time.sleep(60))


@pytest.mark.parametrize("sig, code, line", [(signal.SIGTERM, 143, "error: terminated"),
                                             (signal.SIGINT, 130, "error: interrupted")])
def test_a_signalled_run_that_saved_nothing_leaves_nothing(tmp_path, sig, code, line):
    """Kill ``videoqa eval`` while its requests wait on a server: one line, the exit code of the signal,
    promptly (the requests in flight are cut short), and no run folder."""
    server = _hanging_server()
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "storylab.cli", "videoqa", "eval", "--sample", "--backend",
                                 f"openai://127.0.0.1:{server.port}/m", "--no-progress", "--out", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                                # a pytest-xdist worker ignores SIGINT, and a child would inherit that
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while not (out / "run.json").exists():  # the lock is taken and the run is asking
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
        waited = time.monotonic() - sent
    finally:
        server.close()
    assert proc.returncode == code and stderr.strip().splitlines() == [line], stderr
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))
    assert waited < 20  # not the 120 s --timeout of the requests in flight


def test_a_failed_resumed_run_keeps_its_answers_and_releases_the_lock(tmp_path):
    from storylab.videoqa.backends.random_choice import RandomBackend
    from storylab.videoqa.runner import LOCK, EvalConfig, run_eval
    from storylab.videoqa.sample import sample_paths

    paths = sample_paths()
    out = tmp_path / "run"
    cfg = dict(questions=paths.questions, subtitles=paths.subtitles, out=out, progress=False, concurrency=1)
    run_eval(EvalConfig(**cfg, backend="random", limit=1))
    before = sorted(p.name for p in out.iterdir())

    class DownBackend(RandomBackend):  # the same run settings, a server that went away
        def answer(self, item):
            raise StorylabError("backend random: server is down")

    with pytest.raises(StorylabError, match="1 of .* answers are saved"):
        run_eval(EvalConfig(**cfg, backend="random"), DownBackend())
    with open(out / LOCK, "a") as handle:  # the failed run let go of the folder
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(handle, fcntl.LOCK_UN)
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 1
    assert set(before) <= {p.name for p in out.iterdir()}


def test_sf20k_subtitles_for_more_films_than_the_questions_are_accepted(tmp_path):
    """SF20K releases test_subtitles.csv for every test film; gt_samples.csv asks about a subset."""
    from tests.videoqa.release_files import OEQA_HEADER, OEQA_ROWS, WHISPER_HEADER, WHISPER_ROWS, write_csv

    from storylab.videoqa.runner import EvalConfig, run_eval

    asked = {"X66nawgM_G0", "GBrKM_e8ZoI"}  # the subtitles also cover -abc, which no question asks about
    questions = write_csv(tmp_path / "gt_samples.csv", OEQA_HEADER, [r for r in OEQA_ROWS if r[1] in asked])
    subtitles = write_csv(tmp_path / "test_subtitles.csv", WHISPER_HEADER, WHISPER_ROWS)
    summary = run_eval(EvalConfig(questions=questions, subtitles=subtitles, out=tmp_path / "run", task="oeqa",
                                  backend="random", progress=False, concurrency=1))
    assert summary["n"] == 2 and summary["subtitled_videos_without_questions"] == 1
    records = [json.loads(x) for x in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert {r["video_id"] for r in records} == asked
