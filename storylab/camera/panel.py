"""The camera wing's interactive panel: caption (+ character motion) -> DIRECTOR trajectory, tags, figures.

Plain functions over the shipped tiny DIRECTOR checkpoints (Courant et al., ECCV 2024); the web app
and ``storylab demo`` call them. The loaded generator is kept per process, so a second caption costs
only the text encoding and the EDM Heun sampling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from storylab.camera.constants import FPS
from storylab.errors import StorylabError


@lru_cache(maxsize=3)
def _generator(config: str) -> Any:
    from storylab.camera.generate import TrajectoryGenerator, shipped_checkpoint

    return TrajectoryGenerator(shipped_checkpoint(config))


@dataclass
class TrajectoryResult:
    """A generated camera path, the character path, the re-tagged camera segments and the timings."""

    caption: str
    kitti_poses: np.ndarray      # (N, 4, 4) camera-to-world
    char_positions: np.ndarray   # (N, 3)
    segments: list[dict[str, Any]]  # {"start_s", "end_s", "frames", "tag"} of the re-tagged camera motion
    char_segments: list[dict[str, Any]]
    seconds: float               # encode + sample (the model was already loaded)
    load_seconds: float


def _segment_rows(tags: Any, fps: float) -> list[dict[str, Any]]:
    from storylab.camera.tagging import tag_name

    return [{"start_s": round(s.start / fps, 2), "end_s": round((s.end + 1) / fps, 2), "frames": s.length,
             "tag": tag_name(s.label, tags.kind)} for s in tags.segments]


def caption_trajectory(caption: str, char_motion: str = "static", guidance_scale: float = 1.4,
                       schedule: str = "constant", frames: int = 150, steps: int = 10, seed: int = 0,
                       config: str = "twostage", char_positions: np.ndarray | None = None) -> TrajectoryResult:
    """Generate a camera trajectory for ``caption`` with DIRECTOR (EDM Heun + CFG) and re-tag its motion (E.T. tags).

    ``char_positions`` (an uploaded (N, 3) track) replaces the synthetic ``char_motion`` path.
    """
    from storylab.camera.generate import character_motion
    from storylab.camera.tagging import tag_camera, tag_character

    if not 2 <= int(frames) <= 300:
        raise StorylabError(f"frames must be between 2 and 300, got {frames}")
    if not 1 <= int(steps) <= 200:
        raise StorylabError(f"steps must be between 1 and 200, got {steps}")
    char = char_positions if char_positions is not None else character_motion(char_motion, int(frames))
    gen = _generator(config)
    t0 = time.perf_counter()
    result = gen(caption, char, float(guidance_scale), schedule, int(seed), int(steps))
    seconds = time.perf_counter() - t0
    return TrajectoryResult(caption.strip(), result.kitti_poses, result.char_positions,
                            _segment_rows(tag_camera(result.kitti_poses), FPS),
                            _segment_rows(tag_character(result.char_positions), FPS), seconds, gen.load_seconds)


def read_char_track(path: str | Path, max_frames: int = 300) -> np.ndarray:
    """An uploaded character track (.npy of shape (N, 3)), checked as the CLI's ``--char`` is."""
    from storylab.camera.et_format import read_char

    if Path(path).suffix.lower() != ".npy":
        raise StorylabError(f"a character track must be a .npy file of shape (N, 3), got {Path(path).name}")
    char = read_char(path)
    if len(char) > max_frames:
        raise StorylabError(f"the character track has {len(char)} frames, more than the model's maximum of {max_frames}")
    return char


def write_kitti(path: str | Path, result: TrajectoryResult) -> Path:
    """The trajectory as a KITTI pose file (12 numbers a line), written atomically."""
    from storylab.camera.et_format import write_kitti_poses

    return write_kitti_poses(path, result.kitti_poses)


def trajectory_plotly(result: TrajectoryResult, n_frustums: int = 8) -> Any:
    """An interactive plotly 3D figure: camera path, frustums along it (dark = early), character path.

    Axes as :mod:`storylab.camera.render`: x right, z forward, up = -y (OpenCV world).
    """
    import plotly.graph_objects as go

    from storylab.camera.render import _frustum_size, _plot_coords, frustum_lines

    cam = _plot_coords(result.kitti_poses[:, :3, 3])
    ch = _plot_coords(result.char_positions)
    fig = go.Figure()
    fig.add_trace(go.Scatter3d(x=cam[:, 0], y=cam[:, 1], z=cam[:, 2], mode="lines", name="camera",
                               line={"color": "#1f77b4", "width": 6}))
    fig.add_trace(go.Scatter3d(x=ch[:, 0], y=ch[:, 1], z=ch[:, 2], mode="lines", name="character",
                               line={"color": "#d62728", "width": 6}))
    fig.add_trace(go.Scatter3d(x=[cam[0, 0], ch[0, 0]], y=[cam[0, 1], ch[0, 1]], z=[cam[0, 2], ch[0, 2]],
                               mode="markers", name="start", marker={"size": 4, "color": ["#1f77b4", "#d62728"]}))
    size = _frustum_size(result.kitti_poses, result.char_positions)
    idx = np.linspace(0, len(cam) - 1, n_frustums).round().astype(int)
    for k, i in enumerate(idx):
        xs, ys, zs = [], [], []
        for line in frustum_lines(result.kitti_poses[i], size):
            p = _plot_coords(line)
            xs += [*p[:, 0], None]
            ys += [*p[:, 1], None]
            zs += [*p[:, 2], None]
        shade = int(40 + 180 * k / max(1, len(idx) - 1))
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", showlegend=k == 0,
                                   name=f"frustum (frame {i})" if k else "frustums (dark = early)",
                                   line={"color": f"rgb({shade // 3},{shade // 2},{shade})", "width": 2}))
    fig.update_layout(scene={"xaxis_title": "x (right)", "yaxis_title": "z (forward)", "zaxis_title": "up (-y)",
                             "aspectmode": "data"},
                      margin={"l": 0, "r": 0, "t": 30, "b": 0}, height=480,
                      title={"text": result.caption[:80], "font": {"size": 13}})
    return fig


def render_trajectory(path: str | Path, result: TrajectoryResult) -> Path:
    """A static 3D picture (PNG) of the trajectory, its frustums and the character (matplotlib)."""
    from storylab.camera.render import render_png

    return render_png(path, result.kitti_poses, result.char_positions, result.caption)
