"""Pictures of a camera trajectory: a 3D plot with frustums (PNG) and an animation (GIF) of camera and character.

OpenCV world axes (y down) are drawn with "up" up: plot (x, z, -y).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from storylab.errors import StorylabError
from storylab.io import atomic_path, atomic_savefig


def _plot_coords(points: np.ndarray) -> np.ndarray:
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)


def frustum_lines(pose: np.ndarray, size: float = 0.25) -> list[np.ndarray]:
    """Line segments (world coordinates) of a pinhole frustum for one camera-to-world pose."""
    corners_cam = np.array([[-1, -0.6, 1.2], [1, -0.6, 1.2], [1, 0.6, 1.2], [-1, 0.6, 1.2]]) * size
    centre = pose[:3, 3]
    corners = corners_cam @ pose[:3, :3].T + centre
    lines = [np.stack([centre, c]) for c in corners]
    lines += [np.stack([corners[i], corners[(i + 1) % 4]]) for i in range(4)]
    lines.append(np.stack([corners[0], corners[1]]) + (pose[:3, :3] @ np.array([0, -0.15, 0]) * size))  # top mark
    return lines


def _frustum_size(kitti_poses: np.ndarray, char: np.ndarray | None) -> float:
    pts = np.concatenate([kitti_poses[:, :3, 3]] + ([char] if char is not None else []))
    return float(max(0.15, 0.06 * (pts.max(0) - pts.min(0)).max()))


def _setup_axes(ax, kitti_poses: np.ndarray, char: np.ndarray | None) -> None:
    pts = [kitti_poses[:, :3, 3]] + ([char] if char is not None else [])
    allp = _plot_coords(np.concatenate(pts))
    centre, half = allp.mean(0), max(0.5, (allp.max(0) - allp.min(0)).max() / 2 + 0.4)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_xlabel("x (right)")
    ax.set_ylabel("z (forward)")
    ax.set_zlabel("up (-y)")


def render_png(path: str | os.PathLike, kitti_poses: np.ndarray, char: np.ndarray | None = None,
               title: str | None = None, n_frustums: int = 8) -> Path:
    """3D plot of the camera path with frustums along it and the character path; written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    cam = _plot_coords(kitti_poses[:, :3, 3])
    ax.plot(*cam.T, color="tab:blue", lw=2, label="camera")
    idx = np.linspace(0, len(kitti_poses) - 1, n_frustums).round().astype(int)
    size = _frustum_size(kitti_poses, char)
    colours = plt.cm.viridis(np.linspace(0, 1, len(idx)))
    for i, colour in zip(idx, colours):
        for line in frustum_lines(kitti_poses[i], size):
            ax.plot(*_plot_coords(line).T, color=colour, lw=1)
    if char is not None:
        ch = _plot_coords(char)
        ax.plot(*ch.T, color="tab:red", lw=2, label="character")
        ax.scatter(*ch[0], color="tab:red", marker="o", s=30)
    ax.scatter(*cam[0], color="tab:blue", marker="o", s=30, label="start")
    _setup_axes(ax, kitti_poses, char)
    ax.view_init(elev=25, azim=-60)
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title if len(title) < 80 else title[:77] + "...", fontsize=9)
    path = atomic_savefig(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def render_gif(path: str | os.PathLike, kitti_poses: np.ndarray, char: np.ndarray | None = None,
               title: str | None = None, fps: int = 12, stride: int = 2) -> Path:
    """Animation (GIF, Pillow writer) of the camera frustum moving along its path with the character."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    if Path(path).suffix.lower() != ".gif":
        raise StorylabError(f"animation path must end in .gif, got {path}")
    fig = plt.figure(figsize=(5, 4.5))
    ax = fig.add_subplot(projection="3d")
    _setup_axes(ax, kitti_poses, char)
    ax.view_init(elev=25, azim=-60)
    if title:
        ax.set_title(title if len(title) < 60 else title[:57] + "...", fontsize=8)
    cam = _plot_coords(kitti_poses[:, :3, 3])
    trail, = ax.plot([], [], [], color="tab:blue", lw=2, label="camera")
    size = _frustum_size(kitti_poses, char)
    frustum = [ax.plot([], [], [], color="tab:blue", lw=1)[0] for _ in frustum_lines(kitti_poses[0], size)]
    if char is not None:
        ch = _plot_coords(char)
        char_trail, = ax.plot([], [], [], color="tab:red", lw=2, label="character")
        char_dot, = ax.plot([], [], [], "o", color="tab:red")
    ax.legend(loc="upper left", fontsize=7)
    frames = list(range(0, len(kitti_poses), stride))

    def update(t: int):
        trail.set_data_3d(*cam[:t + 1].T)
        for artist, line in zip(frustum, frustum_lines(kitti_poses[t], size)):
            artist.set_data_3d(*_plot_coords(line).T)
        if char is not None:
            char_trail.set_data_3d(*ch[:t + 1].T)
            char_dot.set_data_3d(*ch[t:t + 1].T)
        return [trail, *frustum]

    anim = FuncAnimation(fig, update, frames=frames, blit=False)
    with atomic_path(path) as tmp:
        anim.save(tmp, writer=PillowWriter(fps=fps), dpi=70)
    plt.close(fig)
    return Path(path)


def render(path: str | os.PathLike, kitti_poses: np.ndarray, char: np.ndarray | None = None,
           title: str | None = None) -> Path:
    """PNG plot or GIF animation, by the file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return render_png(path, kitti_poses, char, title)
    if suffix == ".gif":
        return render_gif(path, kitti_poses, char, title)
    raise StorylabError(f"render path must end in .png or .gif, got {path}")
