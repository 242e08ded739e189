"""The front door keeps its promises: Ctrl-C, a reproducible seed, resume states of another run."""

import signal

from safetensors.torch import load_file

from tests.cli_runner import run_cli

TINY = ["--steps", "2", "--batch-size", "8", "--channels", "8", "--no-progress"]


def _one_error_line(result, needle):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], \
        result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch):
    """A real SIGINT, delivered while the command runs (at its output check), ends as 'error: interrupted'."""
    import storylab.cli_types

    def interrupted(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # to this thread: handled before the call returns, whatever other threads exist

    monkeypatch.setattr(storylab.cli_types, "check_output", interrupted)
    # a pytest-xdist worker runs with SIGINT ignored; a terminal's foreground command has Python's handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = run_cli("control", "extract", "canny", str(tmp_path / "missing.png"), "--out", str(tmp_path / "c.png"))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.returncode == 130 and result.stderr.strip() == "error: interrupted", result.stderr
    assert list(tmp_path.iterdir()) == []


def test_same_seed_same_weights_and_resume_states_of_another_run(tmp_path):
    a, b, c = (tmp_path / f"{n}.safetensors" for n in "abc")
    for out, seed in ((a, "3"), (b, "3"), (c, "4")):
        result = run_cli("train", "digits", "--out", str(out), "--seed", seed, *TINY)
        assert result.returncode == 0, result.stderr
    wa, wb, wc = (load_file(str(p)) for p in (a, b, c))
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)  # bit-identical
    assert any(not (wa[k] == wc[k]).all() for k in wa)  # another seed, other initial weights

    # the same run again: finished, said plainly, exit 0, the weights untouched
    def weights(path):
        return {k: v.clone() for k, v in load_file(str(path)).items()}

    def same(x, y):
        return x.keys() == y.keys() and all((x[k] == y[k]).all() for k in x)

    before = weights(a)
    result = run_cli("train", "digits", "--out", str(a), "--seed", "3", *TINY)
    assert result.returncode == 0 and "already finished" in result.stdout and "nan" not in result.stdout, result.stdout
    assert same(weights(a), before)
    # another architecture, other settings, fewer steps than saved: one line each, nothing written
    result = run_cli("train", "digits", "--out", str(a), "--seed", "3", *TINY[:-3], "--channels", "16", "--steps", "4",
                     "--no-progress")
    _one_error_line(result, "was made by another architecture")
    result = run_cli("train", "digits", "--out", str(a), "--seed", "3", "--lr", "0.01", *TINY[2:], "--steps", "4")
    _one_error_line(result, "other settings (lr 0.002 -> 0.01)")
    result = run_cli("train", "digits", "--out", str(a), "--seed", "3", *TINY[2:], "--steps", "1")
    _one_error_line(result, "past --steps 1")
    assert same(weights(a), before)


def test_camera_caption_speaks_the_openai_endpoint_syntax_of_videoqa(tmp_path):
    """openai://HOST:PORT/MODEL names server and model, as in videoqa; the old URL + --model still works."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen = []

    class Chat(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body["model"]))
            reply = json.dumps({"choices": [{"message": {"content": "The camera dollies right."}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Chat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        traj = tmp_path / "traj.txt"
        traj.write_text("\n".join(f"1 0 0 {0.05 * i:.3f} 0 1 0 0 0 0 1 0" for i in range(40)) + "\n")
        port = server.server_address[1]
        for endpoint, extra in ((f"openai://127.0.0.1:{port}/tiny-llm", []),
                                (f"http://127.0.0.1:{port}/v1", ["--model", "old-style"])):
            result = run_cli("camera", "caption", str(traj), "--endpoint", endpoint, *extra)
            assert result.returncode == 0 and "The camera dollies right." in result.stdout, result.stderr
        assert seen == [("/v1/chat/completions", "tiny-llm"), ("/v1/chat/completions", "old-style")]
        result = run_cli("camera", "caption", str(traj), "--endpoint", "notaurl")
        _one_error_line(result, "not of the form openai://HOST:PORT/MODEL")
    finally:
        server.shutdown()


def test_help_speaks_one_vocabulary(monkeypatch):
    """--scale (old spellings hidden), flags without a value placeholder, shipped defaults as short names."""
    import re

    monkeypatch.setenv("COLUMNS", "300")  # no wrapping inside the help table

    for args in (("train", "ldm"), ("evaluate", "zoo"), ("camera", "generate"), ("evaluate", "director")):
        text = run_cli(*args, "--help").stdout
        assert "--scale" in text and "--guidance-scale" not in text and "--cfg-scale" not in text, args
    text = run_cli("guidance", "weights", "--help").stdout
    assert "--json" in text and "<bool>" not in text
    text = run_cli("sample", "digits", "--help").stdout
    assert "shipped digits_denoiser.safetensors" in text and not re.search(r"/\S*storylab/assets", text)
    assert "1<=x<=10000" in text  # the range of --steps
    for old in ("--cfg-scale", "--guidance-scale"):  # still accepted, as aliases of --scale
        result = run_cli("evaluate", "zoo" if old == "--cfg-scale" else "controlnet", old, "nan")
        _one_error_line(result, "Invalid value for '--scale': must be a finite number")
