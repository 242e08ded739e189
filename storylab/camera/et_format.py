"""Read and write the E.T. data layout (Courant et al., ECCV 2024, "E.T. the Exceptional Trajectories").

One sample ``<id>`` of a data set folder ``ROOT`` is spread over::

    ROOT/traj/<id>.txt           camera poses, KITTI text: 12 floats a line (the release writes ``%.6e``) =
                                 top 3x4 of a 4x4 pose, camera-to-world, OpenCV axes (x right, y down, z forward)
    ROOT/char/<id>.npy           character (hip-centre) positions, (N, 3) float (float32 in the release)
    ROOT/intrinsics/<id>.npy     camera intrinsics (fx, fy, cx, cy); read and written when present, not used
    ROOT/caption/<id>.txt        camera + character caption
    ROOT/caption_cam/<id>.txt    camera-only caption
    ROOT/cam_segments/<id>.npy   camera tag ids (0..26) of the N-1 motions between the N poses, (N-1,)
    ROOT/char_segments/<id>.npy  character tag ids, (N-1,)
    ROOT/{pure,mixed}_{train,test}_split.txt   one id a line, no newline after the last
                                 (``pure``: simple camera motions only, ``mixed``: all; ``full`` is
                                 storylab's older name and still read)

Every reader checks what it reads and raises :class:`StorylabError` with one line naming the file
and the problem; every writer is atomic (:mod:`storylab.io`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storylab.errors import StorylabError
from storylab.io import atomic_path, atomic_write_text, safe_id

ROTATION_TOLERANCE = 1e-3  # KITTI files are written with ~6 significant digits.
# |coordinate| a camera or character position may reach: E.T. is in metres (a shot spans tens of them);
# past ~1e154 the squared speed of a motion overflows float64, and 1e308 makes a difference infinite
MAX_COORDINATE = 1e6
SPLIT_SUBSETS = ("pure", "mixed", "full")


def validate_poses(kitti_poses: np.ndarray, name: str = "trajectory") -> np.ndarray:
    """Check an (N, 4, 4) camera-to-world pose array: finite, >= 2 frames, each R a rotation."""
    poses = np.asarray(kitti_poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise StorylabError(f"{name}: expected poses of shape (N, 4, 4), got {tuple(poses.shape)}")
    if poses.shape[0] < 2:
        raise StorylabError(f"{name}: a trajectory needs at least 2 frames, got {poses.shape[0]}")
    if not np.isfinite(poses).all():
        bad = int(np.argwhere(~np.isfinite(poses).reshape(len(poses), -1).all(1))[0, 0])
        raise StorylabError(f"{name}: non-finite value (NaN or inf) at frame {bad}")
    far = np.abs(poses[:, :3, 3]).max(axis=1) > MAX_COORDINATE
    if far.any():
        bad = int(np.flatnonzero(far)[0])
        raise StorylabError(f"{name}: frame {bad} has a translation of {np.abs(poses[bad, :3, 3]).max():.3g}, beyond "
                            f"the {MAX_COORDINATE:g} a camera position may reach (motion between frames would overflow)")
    rot = poses[:, :3, :3]
    ortho = np.abs(np.einsum("nji,njk->nik", rot, rot) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(rot)
    bad_frames = np.flatnonzero((ortho > ROTATION_TOLERANCE) | (np.abs(det - 1.0) > ROTATION_TOLERANCE))
    if bad_frames.size:
        i = int(bad_frames[0])
        raise StorylabError(f"{name}: frame {i} is not a rotation (max |R^T R - I| = {ortho[i]:.3g}, "
                            f"det = {det[i]:.4g}; need orthonormal with det +1 within {ROTATION_TOLERANCE:g})")
    return poses


def parse_kitti_text(text: str, name: str = "trajectory") -> np.ndarray:
    """Parse KITTI pose text (12 floats a line, the top 3x4 rows) into validated (N, 4, 4) poses."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 12:
            raise StorylabError(f"{name}: line {number} has {len(fields)} columns, a KITTI pose line has 12")
        try:
            rows.append([float(v) for v in fields])
        except ValueError:
            raise StorylabError(f"{name}: line {number} has a value that is not a number") from None
    if not rows:
        raise StorylabError(f"{name}: no poses (empty file)")
    top = np.asarray(rows, dtype=np.float64).reshape(-1, 3, 4)
    poses = np.tile(np.eye(4), (len(top), 1, 1))
    poses[:, :3, :] = top
    return validate_poses(poses, name)


def read_kitti_poses(path: str | os.PathLike) -> np.ndarray:
    """Read a KITTI trajectory file into (N, 4, 4) camera-to-world poses."""
    p = Path(path)
    if not p.is_file():
        raise StorylabError(f"trajectory file not found: {p}")
    return parse_kitti_text(p.read_text(encoding="utf-8", errors="replace"), str(p))


RELEASE_FLOAT_FORMAT = "{:.6e}"  # how the E.T. release writes its trajectories (numpy savetxt fmt="%.6e")


def kitti_text(kitti_poses: np.ndarray, float_format: str = "{:.9g}") -> str:
    """Format (N, 4, 4) poses as KITTI text (12 floats a line, 9 significant digits by default)."""
    poses = validate_poses(kitti_poses)
    return "".join(" ".join(float_format.format(v) for v in pose[:3, :].reshape(-1)) + "\n" for pose in poses)


def write_kitti_poses(path: str | os.PathLike, kitti_poses: np.ndarray, float_format: str = "{:.9g}") -> Path:
    """Write (N, 4, 4) poses as a KITTI text file, atomically."""
    return atomic_write_text(path, kitti_text(kitti_poses, float_format))


def validate_char(char_positions: np.ndarray, n_frames: int | None = None, name: str = "character") -> np.ndarray:
    """Check (N, 3) character positions: finite, >= 2 frames, and as long as the trajectory."""
    char = np.asarray(char_positions, dtype=np.float64)
    if char.ndim != 2 or char.shape[1] != 3:
        raise StorylabError(f"{name}: expected character positions of shape (N, 3), got {tuple(char.shape)}")
    if char.shape[0] < 2:
        raise StorylabError(f"{name}: a character path needs at least 2 frames, got {char.shape[0]}")
    if not np.isfinite(char).all():
        raise StorylabError(f"{name}: non-finite value (NaN or inf) in character positions")
    if np.abs(char).max() > MAX_COORDINATE:
        raise StorylabError(f"{name}: a character position of {np.abs(char).max():.3g} is beyond the "
                            f"{MAX_COORDINATE:g} a position may reach (motion between frames would overflow)")
    if n_frames is not None and char.shape[0] != n_frames:
        raise StorylabError(f"{name}: character has {char.shape[0]} frames but the trajectory has {n_frames}")
    return char


def read_char(path: str | os.PathLike, n_frames: int | None = None) -> np.ndarray:
    """Read a character ``.npy`` file (N, 3); ``n_frames`` checks it matches the trajectory."""
    p = Path(path)
    if not p.is_file():
        raise StorylabError(f"character file not found: {p}")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError):
        raise StorylabError(f"{p}: not a readable .npy array") from None
    return validate_char(arr, n_frames, str(p))


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Save a numpy array atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
    return Path(path)


def check_caption(caption: str, name: str = "caption") -> str:
    """A caption must contain words; return it stripped."""
    text = (caption or "").strip()
    if not text:
        raise StorylabError(f"{name} is empty")
    return text


@dataclass
class ETSample:
    """One E.T. sample: camera poses, optional character path, captions and per-frame tag ids."""

    sample_id: str
    kitti_poses: np.ndarray                    # (N, 4, 4) camera-to-world
    char_positions: np.ndarray | None = None   # (N, 3)
    caption: str | None = None
    caption_cam: str | None = None
    cam_segments: np.ndarray | None = None     # (N-1,) int tag ids, one per motion between poses
    char_segments: np.ndarray | None = None    # (N-1,) int tag ids
    intrinsics: np.ndarray | None = None       # (4,) fx, fy, cx, cy

    @property
    def n_frames(self) -> int:
        return int(self.kitti_poses.shape[0])


def read_sample(root: str | os.PathLike, sample_id: str) -> ETSample:
    """Read every part of sample ``sample_id`` that exists under ``root`` (traj/ is required)."""
    root = Path(root)
    safe_id(sample_id, "sample id")
    poses = read_kitti_poses(root / "traj" / f"{sample_id}.txt")
    n = len(poses)
    char_path = root / "char" / f"{sample_id}.npy"
    char = read_char(char_path, n) if char_path.exists() else None

    def text(folder: str) -> str | None:
        p = root / folder / f"{sample_id}.txt"
        return check_caption(p.read_text(encoding="utf-8"), str(p)) if p.exists() else None

    def array(folder: str) -> np.ndarray | None:
        p = root / folder / f"{sample_id}.npy"
        if not p.exists():
            return None
        try:
            return np.load(p, allow_pickle=False)
        except (ValueError, OSError):
            raise StorylabError(f"{p}: not a readable .npy array") from None

    def tags(folder: str) -> np.ndarray | None:
        arr = array(folder)
        if arr is None:
            return None
        arr = arr.reshape(-1)
        p = root / folder / f"{sample_id}.npy"
        if len(arr) != n - 1:
            raise StorylabError(f"{p}: expected {n - 1} tag ids (one per motion between the {n} poses), "
                                f"got {len(arr)}")
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 26:
            raise StorylabError(f"{p}: tag ids must be integers in 0..26")
        return arr.astype(np.int64)

    intrinsics = array("intrinsics")
    if intrinsics is not None and (intrinsics.size == 0 or not np.isfinite(intrinsics.astype(np.float64)).all()):
        raise StorylabError(f"{root / 'intrinsics' / (sample_id + '.npy')}: intrinsics must be finite numbers")
    return ETSample(sample_id, poses, char, text("caption"), text("caption_cam"), tags("cam_segments"),
                    tags("char_segments"), intrinsics)


def write_sample(root: str | os.PathLike, sample: ETSample) -> None:
    """Write every present part of ``sample`` under ``root`` as the E.T. release stores it (``%.6e``
    trajectories, float32 characters, N-1 tags), each file atomically."""
    root = Path(root)
    safe_id(sample.sample_id, "sample id")
    write_kitti_poses(root / "traj" / f"{sample.sample_id}.txt", sample.kitti_poses, RELEASE_FLOAT_FORMAT)
    if sample.char_positions is not None:
        char = validate_char(sample.char_positions, sample.n_frames)
        save_npy(root / "char" / f"{sample.sample_id}.npy", char.astype(np.float32))
    if sample.intrinsics is not None:
        save_npy(root / "intrinsics" / f"{sample.sample_id}.npy", np.asarray(sample.intrinsics, dtype=np.float32))
    for folder, value in (("caption", sample.caption), ("caption_cam", sample.caption_cam)):
        if value is not None:
            atomic_write_text(root / folder / f"{sample.sample_id}.txt", check_caption(value) + "\n")
    for folder, value in (("cam_segments", sample.cam_segments), ("char_segments", sample.char_segments)):
        if value is not None:
            if len(value) != sample.n_frames - 1:
                raise StorylabError(f"{folder} of {sample.sample_id}: need {sample.n_frames - 1} tags for "
                                    f"{sample.n_frames} poses, got {len(value)}")
            save_npy(root / folder / f"{sample.sample_id}.npy", np.asarray(value, dtype=np.int64))


def split_path(root: str | os.PathLike, subset: str, part: str) -> Path:
    """``ROOT/<subset>_<part>_split.txt`` (subset pure|mixed|full, part train|test)."""
    if subset not in SPLIT_SUBSETS or part not in ("train", "test"):
        raise StorylabError(f"unknown split '{subset}_{part}' (subsets: {', '.join(SPLIT_SUBSETS)}; parts: train, test)")
    return Path(root) / f"{subset}_{part}_split.txt"


def read_split(root: str | os.PathLike, subset: str = "full", part: str = "train") -> list[str]:
    """The sample ids of a split file."""
    p = split_path(root, subset, part)
    if not p.is_file():
        raise StorylabError(f"split file not found: {p} (is {Path(root)} an E.T.-format folder?)")
    ids = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen: dict[str, int] = {}
    for number, sample_id in enumerate(ids, start=1):
        safe_id(sample_id, f"sample id in {p.name}")
        if sample_id in seen:  # the sample would count twice in training and in every metric
            raise StorylabError(f"{p}: sample id {sample_id!r} is listed twice (entries {seen[sample_id]} and {number}); "
                                "list each sample once")
        seen[sample_id] = number
    if not ids:
        raise StorylabError(f"split file is empty: {p}")
    return ids


def write_split(root: str | os.PathLike, ids: list[str], subset: str = "mixed", part: str = "train") -> Path:
    """Write a split file atomically, as the release does: one id a line, no newline after the last."""
    return atomic_write_text(split_path(root, subset, part), "\n".join(ids))
