"""DIRECTOR trajectory features and their exact inverse (Courant et al., ECCV 2024, Sec. 4).

Camera, per frame (9 numbers): the 6D rotation representation (Zhou et al. 2019: the first two
columns of R) followed by the translation. Frame 0's translation is absolute, later frames carry the
translation delta t_i - t_{i-1}; translations are standardised with the published constants
(:mod:`storylab.camera.constants`). Character, per frame (3 numbers): frame 0 is the start position,
later frames the velocity p_i - p_{i-1}; all frames, frame 0 included, are standardised with the
velocity statistics (the authors' loader does so: its character statistics have three entries, so it
standardises the whole sequence in one go).
Sequences are zero-padded to ``MAX_FRAMES`` with a validity mask.
"""

from __future__ import annotations

import numpy as np

from storylab.camera.constants import (CAM_DELTA_MEAN, CAM_DELTA_STD, CAM_SHIFT_MEAN, CAM_SHIFT_STD, CHAR_DELTA_MEAN,
                                       CHAR_DELTA_STD, MAX_FRAMES)
from storylab.camera.et_format import validate_char, validate_poses
from storylab.errors import StorylabError

CAMERA_DIM = 9
CHARACTER_DIM = 3


def rotation_to_6d(rotations: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations -> (N, 6): the first two columns [r_1, r_2] (Zhou et al. 2019, eq. 14)."""
    return np.concatenate([rotations[:, :, 0], rotations[:, :, 1]], axis=1)


def rotation_from_6d(r6: np.ndarray) -> np.ndarray:
    """(N, 6) -> (N, 3, 3) by Gram-Schmidt (Zhou et al. 2019, eq. 15); exact for a valid rotation.

    Hand-written because scipy's Rotation has no 6D constructor; it is three lines of numpy.
    """
    a1, a2 = r6[:, :3], r6[:, 3:6]
    b1 = a1 / np.linalg.norm(a1, axis=1, keepdims=True).clip(1e-8)
    a2 = a2 - (b1 * a2).sum(1, keepdims=True) * b1
    b2 = a2 / np.linalg.norm(a2, axis=1, keepdims=True).clip(1e-8)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=2)


def encode_camera(kitti_poses: np.ndarray) -> np.ndarray:
    """(N, 4, 4) camera-to-world poses -> (N, 9) standardised DIRECTOR camera features."""
    poses = validate_poses(kitti_poses)
    trans = poses[:, :3, 3]
    t = np.empty_like(trans)
    t[0] = (trans[0] - CAM_SHIFT_MEAN) / CAM_SHIFT_STD
    t[1:] = (np.diff(trans, axis=0) - CAM_DELTA_MEAN) / CAM_DELTA_STD
    return np.concatenate([rotation_to_6d(poses[:, :3, :3]), t], axis=1).astype(np.float32)


def decode_camera(features: np.ndarray) -> np.ndarray:
    """(N, 9) camera features -> (N, 4, 4) camera-to-world poses (the exact inverse of :func:`encode_camera`)."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[1] != CAMERA_DIM:
        raise StorylabError(f"camera features must have shape (N, {CAMERA_DIM}), got {tuple(feats.shape)}")
    t = feats[:, 6:9]
    steps = np.empty_like(t)
    steps[0] = t[0] * CAM_SHIFT_STD + CAM_SHIFT_MEAN
    steps[1:] = t[1:] * CAM_DELTA_STD + CAM_DELTA_MEAN
    poses = np.tile(np.eye(4), (len(feats), 1, 1))
    poses[:, :3, :3] = rotation_from_6d(feats[:, :6])
    poses[:, :3, 3] = np.cumsum(steps, axis=0)
    return poses


def encode_character(char_positions: np.ndarray) -> np.ndarray:
    """(N, 3) character positions -> (N, 3) features: [start position, velocities], standardised with the
    velocity statistics (frame 0 too, as the authors' loader does)."""
    char = validate_char(char_positions)
    out = np.concatenate([char[:1], np.diff(char, axis=0)])
    return ((out - CHAR_DELTA_MEAN) / CHAR_DELTA_STD).astype(np.float32)


def decode_character(features: np.ndarray) -> np.ndarray:
    """(N, 3) character features -> (N, 3) positions (the exact inverse of :func:`encode_character`)."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[1] != CHARACTER_DIM:
        raise StorylabError(f"character features must have shape (N, {CHARACTER_DIM}), got {tuple(feats.shape)}")
    return np.cumsum(feats * CHAR_DELTA_STD + CHAR_DELTA_MEAN, axis=0)


def pad_features(features: np.ndarray, max_frames: int = MAX_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad (N, D) features to (max_frames, D); return them with the (max_frames,) validity mask."""
    n = len(features)
    if n > max_frames:
        raise StorylabError(f"trajectory has {n} frames, more than the model's maximum of {max_frames}")
    padded = np.zeros((max_frames, features.shape[1]), dtype=np.float32)
    padded[:n] = features
    mask = np.zeros(max_frames, dtype=bool)
    mask[:n] = True
    return padded, mask
