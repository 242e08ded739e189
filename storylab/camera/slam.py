"""Real SLAM / motion-capture trajectories as E.T. trajectories: TUM RGB-D text files -> 25 fps camera-to-world.

The TUM RGB-D benchmark (Sturm et al., IROS 2012) writes one pose a line, ``timestamp tx ty tz qx qy qz qw``:
the position and orientation of the colour camera's optical centre in the world, i.e. camera-to-world,
with the optical frame's axes x right, y down, z forward - OpenCV's, which E.T. uses. E.T. works at
25 fps (its clips come from films) and on clips of at most 300 frames, so the stamped poses are
resampled on a uniform 25 fps grid: positions linearly, rotations by spherical linear interpolation
(scipy's ``Slerp``; hand-writing quaternion interpolation would add nothing).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from storylab.camera.constants import FPS, MAX_FRAMES
from storylab.camera.et_format import validate_poses
from storylab.errors import StorylabError


def read_tum(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM trajectory file -> (timestamps (M,), camera-to-world poses (M, 4, 4)), sorted by time."""
    from scipy.spatial.transform import Rotation

    p = Path(path)
    if not p.is_file():
        raise StorylabError(f"TUM trajectory file not found: {p}")
    rows = []
    for number, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.replace(",", " ").split()
        if len(fields) != 8:
            raise StorylabError(f"{p}: line {number} has {len(fields)} columns, a TUM pose line has 8 "
                                f"(timestamp tx ty tz qx qy qz qw)")
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            raise StorylabError(f"{p}: line {number} has a value that is not a number") from None
    if len(rows) < 2:
        raise StorylabError(f"{p}: a trajectory needs at least 2 poses, got {len(rows)}")
    data = np.asarray(rows)
    data = data[np.argsort(data[:, 0], kind="stable")]
    if not np.isfinite(data).all():
        raise StorylabError(f"{p}: non-finite value (NaN or inf)")
    quat = data[:, 4:8]
    norms = np.linalg.norm(quat, axis=1)
    if (np.abs(norms - 1.0) > 1e-2).any():
        raise StorylabError(f"{p}: line with a quaternion of norm {norms[np.abs(norms - 1) > 1e-2][0]:.3g}, need unit quaternions")
    poses = np.tile(np.eye(4), (len(data), 1, 1))
    poses[:, :3, :3] = Rotation.from_quat(quat / norms[:, None]).as_matrix()  # scipy order: x, y, z, w (TUM's)
    poses[:, :3, 3] = data[:, 1:4]
    return data[:, 0], poses


def resample_poses(timestamps: np.ndarray, poses: np.ndarray, fps: float = FPS, start: float | None = None,
                   max_frames: int | None = MAX_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Poses at ``start + k / fps`` (k = 0, 1, ...) within the recorded time span, at most ``max_frames``.

    Positions are interpolated linearly, rotations by slerp between the two neighbouring stamps.
    """
    from scipy.spatial.transform import Rotation, Slerp

    t = np.asarray(timestamps, dtype=np.float64)
    if np.any(np.diff(t) <= 0):
        keep = np.r_[True, np.diff(t) > 0]  # duplicated stamps: keep the first
        t, poses = t[keep], poses[keep]
    start = float(t[0]) if start is None else float(start)
    if not t[0] <= start < t[-1]:
        raise StorylabError(f"start time {start} is outside the recording ({t[0]} .. {t[-1]})")
    n = int(np.floor((t[-1] - start) * fps + 1e-9)) + 1
    if max_frames is not None:
        n = min(n, max_frames)
    if n < 2:
        raise StorylabError(f"the recording lasts {t[-1] - start:.3f} s after the start: less than 2 frames at {fps:g} fps")
    grid = start + np.arange(n) / fps
    out = np.tile(np.eye(4), (n, 1, 1))
    out[:, :3, 3] = np.stack([np.interp(grid, t, poses[:, i, 3]) for i in range(3)], axis=1)
    out[:, :3, :3] = Slerp(t, Rotation.from_matrix(poses[:, :3, :3]))(grid).as_matrix()
    return grid, validate_poses(out, "resampled trajectory")


def tum_clips(path: str | os.PathLike, fps: float = FPS, clip_frames: int = MAX_FRAMES) -> list[np.ndarray]:
    """A TUM recording cut into consecutive E.T.-sized clips (``clip_frames`` poses at ``fps``; the last
    one shorter), each (n, 4, 4) camera-to-world with OpenCV axes."""
    t, poses = read_tum(path)
    grid, resampled = resample_poses(t, poses, fps, max_frames=None)
    clips = [resampled[i:i + clip_frames] for i in range(0, len(resampled), clip_frames)]
    return [c for c in clips if len(c) >= 2]
