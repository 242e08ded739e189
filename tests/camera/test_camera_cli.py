"""Camera CLI: tag JSON, bad input (one line, exit 2, nothing written), synth, generate + render, chat captions."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from storylab.camera.captions import ChatCaptioner
from storylab.camera.director import Director, DirectorConfig
from storylab.camera.et_format import write_kitti_poses
from storylab.camera.tagging import tag_camera
from storylab.camera.training import save_director
from storylab.cli import app
from tests.cli_runner import run_cli

ROOT = Path(__file__).resolve().parents[2]


def trucking_file(path: Path, n: int = 120) -> Path:
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, 0, 3] = np.arange(n) * 0.8 / 25
    write_kitti_poses(path, poses)
    return path


def test_tag_json_camera_and_character(tmp_path):
    traj = trucking_file(tmp_path / "t.txt")
    char = np.zeros((120, 3))
    char[:, 0] = np.arange(120) * 1.0 / 25
    np.save(tmp_path / "c.npy", char)
    result = CliRunner().invoke(app, ["camera", "tag", str(traj), "--char", str(tmp_path / "c.npy"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["camera"]["segments"] == [{"start": 0, "end": 118, "tag": "trucking_right"}]  # 119 motions
    assert data["character"]["segments"] == [{"start": 0, "end": 118, "tag": "move_right"}]
    assert len(data["camera"]["frames"]) == 119  # E.T. stores N-1 tags for N poses


@pytest.mark.parametrize("content,message", [
    ("1 0 0 0 0 1 0 0 0 0 1\n1 0 0 0 0 1 0 0 0 0 1\n", "columns"),
    ("1 0 0 0 0 1 0 0 0 0 1 inf\n1 0 0 0 0 1 0 0 0 0 1 0\n", "non-finite"),
    ("1 0 0 0 0 1 0 0 0 0 1 0\n", "at least 2 frames"),
    ("1 0 0 0 0 1 0 0 0 0 1 0\n0.5 0 0 0 0 1 0 0 0 0 1 0\n", "not a rotation"),
])
def test_bad_trajectory_is_one_line_exit_2(tmp_path, content, message):
    traj = tmp_path / "bad.txt"
    traj.write_text(content)
    proc = run_cli("camera", "tag", str(traj), "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_generate_bad_inputs_write_nothing(tmp_path):
    traj = trucking_file(tmp_path / "t.txt", 40)
    np.save(tmp_path / "c.npy", np.zeros((30, 3)))
    out = tmp_path / "gen.txt"
    proc = run_cli("camera", "generate", "   ", "--out", str(out))
    assert proc.returncode == 2 and "caption is empty" in proc.stderr and not out.exists()
    proc = run_cli("camera", "tag", str(traj), "--char", str(tmp_path / "c.npy"))
    assert proc.returncode == 2 and "character has 30 frames but the trajectory has 40" in proc.stderr


def test_generate_and_render_with_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "d.safetensors"
    save_director(ckpt, Director(DirectorConfig.build("crossattn", d_model=32, n_layers=1, n_heads=2, cond_layers=1)))
    out, png = tmp_path / "gen.txt", tmp_path / "gen.png"
    result = CliRunner().invoke(app, ["camera", "generate", "The camera trucks right.", "--checkpoint", str(ckpt),
                                      "--frames", "14", "--char-motion", "right", "--out", str(out),
                                      "--render", str(png), "--steps", "2", "--schedule", "linear"])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) == 14 and all(len(line.split()) == 12 for line in lines)
    assert png.read_bytes()[:4] == b"\x89PNG"
    # the made-up character is kept beside --out: 14 frames walking right at 1.2 m/s from the origin
    char = np.load(tmp_path / "gen_char.npy")
    np.testing.assert_allclose(char, np.arange(14)[:, None] * [1.2 / 25, 0, 0], atol=1e-6)
    gif = tmp_path / "gen.gif"
    result = CliRunner().invoke(app, ["camera", "render", str(out), "--out", str(gif)])
    assert result.exit_code == 0 and f"character: {tmp_path / 'gen_char.npy'}" in result.output
    assert red_pixels(gif) > 50  # the character's trail and dot (tab:red)


def red_pixels(gif) -> int:
    """Pixels close to matplotlib's tab:red (214, 39, 40) in the last frame of a GIF."""
    from PIL import Image

    with Image.open(gif) as im:
        im.seek(im.n_frames - 1)
        rgb = np.asarray(im.convert("RGB")).astype(int)
    return int((np.abs(rgb - [214, 39, 40]).sum(-1) < 60).sum())


def test_render_gif(tmp_path):
    traj = trucking_file(tmp_path / "t.txt", 12)
    result = CliRunner().invoke(app, ["camera", "render", str(traj), "--out", str(tmp_path / "a.gif")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a.gif").read_bytes()[:3] == b"GIF"
    assert red_pixels(tmp_path / "a.gif") == 0  # no character file beside t.txt


def test_synth_writes_the_release_layout(tmp_path):
    result = CliRunner().invoke(app, ["camera", "synth", "--n", "6", "--out", str(tmp_path / "d"), "--seed", "1",
                                      "--max-seconds", "4"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "d"
    text = (root / "mixed_train_split.txt").read_text()
    assert not text.endswith("\n")  # as the release: no newline after the last id
    ids = text.split("\n")
    assert len(ids) == 5 and len((root / "mixed_test_split.txt").read_text().split("\n")) == 1
    for folder, ext in (("traj", "txt"), ("char", "npy"), ("caption", "txt"), ("caption_cam", "txt"),
                        ("cam_segments", "npy"), ("char_segments", "npy"), ("intrinsics", "npy")):
        assert (root / folder / f"{ids[0]}.{ext}").exists()
    lines = (root / "traj" / f"{ids[0]}.txt").read_text().splitlines()
    assert all(len(v) == 12 and all("e" in x and len(x.split("e")[0].split(".")[1]) == 6 for x in v)
               for v in (line.split() for line in lines))  # numpy's "%.6e"
    char = np.load(root / "char" / f"{ids[0]}.npy")
    assert char.dtype == np.float32 and char.shape == (len(lines), 3)
    assert np.load(root / "cam_segments" / f"{ids[0]}.npy").shape == (len(lines) - 1,)
    assert np.load(root / "char_segments" / f"{ids[0]}.npy").shape == (len(lines) - 1,)
    assert np.load(root / "intrinsics" / f"{ids[0]}.npy").shape == (4,)


class _Chat(http.server.BaseHTTPRequestHandler):
    answers: list[str] = []
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        answer = type(self).answers[min(len(type(self).requests), len(type(self).answers)) - 1]
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_chat_captioner_reprompts_on_frame_numbers(tmp_path):
    _Chat.answers = ["Between frames 0 and 119 the camera trucks right.", "The camera trucks right."]
    _Chat.requests = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Chat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        poses = np.tile(np.eye(4), (120, 1, 1))
        poses[:, 0, 3] = np.arange(120) * 0.8 / 25
        captioner = ChatCaptioner(base_url=f"http://127.0.0.1:{server.server_port}/v1")
        assert captioner.caption(tag_camera(poses)) == "The camera trucks right."
    finally:
        server.shutdown()
    first = _Chat.requests[0]
    assert first["temperature"] == 0.6 and first["top_p"] == 0.95
    assert "Between frames 0 and 118: trucking_right;" in first["messages"][-1]["content"]
    assert len(_Chat.requests) == 2 and len(_Chat.requests[1]["messages"]) == 4
