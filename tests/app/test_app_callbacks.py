"""The app's callbacks and command without a browser: error lines as the CLI's, sketch handling, lazy gradio."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest

from storylab.app import callbacks as cb
from storylab.errors import StorylabError
from tests.cli_runner import run_cli


def test_a_bad_schedule_shows_the_cli_error_line_and_nothing_else():
    cli = run_cli("guidance", "weights", "--schedule", "zigzag")
    line = cli.stderr.strip().splitlines()[-1]
    assert cli.returncode == 2 and line.startswith("error: ")
    status, *outputs = cb.guidance_generate("digits", "cfg", 3.0, "zigzag", "constant", "ddim", 4, 0, 1)
    assert status == line and outputs == [None, None, None]


def test_an_unexpected_failure_is_one_line_too(caplog):
    @cb.one_line_errors(1)
    def broken():
        raise ZeroDivisionError("division by zero")

    assert broken() == ("error: internal error (ZeroDivisionError: division by zero); the server log has the details",
                        None)
    assert "Traceback" in caplog.text  # the details go to the server log, not the page


def test_weights_frame_plots_the_schedules_that_parse():
    frame = cb.weights_frame("linear", "zigzag", 3.0, 5)
    assert set(frame["schedule"]) == {"linear"}
    # linear shape p normalised to mean 1 over 5 steps: w_i = 2 * (s - 1) * p_i, p_i = i / 4
    assert list(frame["guidance scale"]) == pytest.approx([1 + 2 * 2.0 * i / 4 for i in range(5)])


def test_sketches_become_bright_ink_on_black():
    from storylab.images.commands.panel import sketch_to_gray

    rgba = np.zeros((20, 20, 4), dtype=np.uint8)  # transparent paper, one opaque black stroke
    rgba[5:15, 9:11, 3] = 255
    gray = sketch_to_gray(rgba)
    assert gray[10, 10] == pytest.approx(255) and gray[0, 0] == pytest.approx(0)
    white = np.full((20, 20, 3), 255, dtype=np.uint8)
    with pytest.raises(StorylabError, match="the sketch is empty"):
        sketch_to_gray(white)
    with pytest.raises(StorylabError, match="draw a sketch or upload an image first"):
        sketch_to_gray(None)


def test_app_command_rejects_a_bad_port_and_a_busy_one():
    r = run_cli("app", "--port", "0")
    assert r.returncode == 2 and r.stderr.strip() == ("error: Invalid value for '--port': must be 1<=x<=65535, got 0 "
                                                "(see 'storylab app --help')")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli("app", "--port", str(port))
    assert r.returncode == 2 and r.stderr.strip() == f"error: port {port} on 127.0.0.1 is in use; pass another --port"


def test_help_does_not_import_gradio_and_the_app_binds_loopback_by_default():
    code = ("import sys; import storylab.cli; from storylab.app.cli import app_command; import inspect; "
            "print('gradio' in sys.modules, inspect.signature(app_command).parameters['host'].default.default)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "127.0.0.1"]


def test_every_callback_fails_with_as_many_values_as_its_tab_shows(tmp_path):
    """The error path returns (status, None * n): n must match the outputs the layout binds (read from the Blocks)."""
    from storylab.app.layout import build_app

    demo = build_app(tmp_path)
    bound = {getattr(f.fn, "__name__", None): len(f.outputs) for f in demo.fns.values()}
    callbacks = {"guidance": cb.guidance_generate, "control": cb.control_generate, "camera": cb.camera_generate,
                 "humor": cb.humor_detect, "videoqa": cb.videoqa_answer}
    for name, fn in callbacks.items():
        assert fn.n_outputs + 1 == bound[name], (name, fn.n_outputs + 1, bound[name])
    cancels = [f for f in demo.fns.values() if getattr(f.fn, "__name__", None) == "_cancelled"]
    assert len(cancels) == len(callbacks)  # a Cancel button on every tab that runs a model


def test_schedule_b_is_checked_before_schedule_a_samples(monkeypatch):
    import storylab.images.commands.panel as panel

    calls = []
    monkeypatch.setattr(panel, "guidance_grid", lambda *a, **k: calls.append(a))
    cli = run_cli("guidance", "weights", "--schedule", "clamp:linear")
    status, *outputs = cb.guidance_generate("digits", "cfg", 3.0, "constant", "clamp:linear", "ddim", 4, 0, 1)
    assert status == cli.stderr.strip() and outputs == [None, None, None]
    assert calls == []  # nothing sampled


@pytest.mark.parametrize("seed", [1e30, -1, 2.5, None, float("nan")])
def test_a_seed_out_of_range_is_one_line_in_every_tab(seed):
    shown = "None" if seed is None else f"{seed:g}"
    expected = (f"error: seed must be a whole number in 0..4294967295, got {shown}" if seed is not None else
                "error: seed must be a whole number in 0..4294967295, got None")
    assert cb.guidance_generate("digits", "cfg", 3.0, "constant", "linear", "ddim", 4, seed, 1)[0] == expected
    assert cb.control_generate(None, None, "scribble", 1.0, 0.0, 1.0, "none", 4, seed)[0] == expected
    assert cb.camera_generate("a", "static", None, 1.4, "constant", 25, 2, seed, "/nonexistent")[0] == expected


def test_a_bad_upload_is_the_cli_line_with_the_users_file_name(tmp_path):
    upload_dir = tmp_path / "gradio" / "0123abcd"  # where gradio keeps an uploaded copy
    upload_dir.mkdir(parents=True)
    notes = upload_dir / "notes.png"
    notes.write_text("not an image\n")
    cli = run_cli("control", "extract", "canny", str(notes), "--out", str(tmp_path / "e.png"))
    assert cli.returncode == 2
    status = cb.control_generate(None, str(notes), "scribble", 1.0, 0.0, 1.0, "none", 4, 0)[0]
    assert status == cli.stderr.strip().replace(str(notes), "notes.png")
    assert str(upload_dir) not in status

    questions = upload_dir / "questions.csv"
    questions.write_text("question_id,video_id,question\nq1,film,Why?\n")
    status = cb.videoqa_answer("upload", str(questions), None, "random", "", "L", None, str(tmp_path))[0]
    assert status.startswith("error: ") and "questions.csv" in status and str(upload_dir) not in status


def test_status_text_keeps_angle_brackets_and_markdown_characters():
    """Escaped for gradio's Markdown: entities for < > &, a backslash before markdown punctuation."""
    text = "error: expected clamp:<shape>:c=<floor> in episode_001 *x* [a](b) & `c`"
    shown = cb.status_markdown(text)
    assert "<" not in shown and ">" not in shown
    import html
    import re
    unescaped = html.unescape(re.sub(r"\\(.)", r"\1", shown))  # what a CommonMark renderer shows
    assert unescaped == text
