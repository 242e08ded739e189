"""Camera motion in the camera's own frame: the representation of the two-stage DIRECTOR variant.

E.T.'s tags are a function of the camera-frame velocity v_t = fps * R_t^T (p_{t+1} - p_t) (Courant et
al., ECCV 2024, Sec. 3; :func:`storylab.camera.tagging.camera_velocities`). DIRECTOR's features carry
world-frame translation deltas and absolute rotations, so a static camera is one point of a 9 x T space
the denoiser must hit within ~0.03 standard units per frame. Here the rows after the first carry the
motion *between* poses in the camera's frame:

* row 0: DIRECTOR's frame-0 features (6D rotation of R_0, standardised absolute translation);
* row t >= 1: (6D(R_{t-1}^T R_t) - 6D(I)) / ``rot_scale`` and R_{t-1}^T (p_t - p_{t-1}) / ``trans_scale``.

So the all-zero rows decode to a camera that does not move or turn, exactly, and E.T.'s tag of motion
t - 1 reads row t's translation alone. A per-axis *no-motion gate* (:func:`apply_motion_gate`) sets the
translation of axes a tag plan marks as still to exactly zero.

Tag plans are per-axis codes, (T, 3) floats in {-1, 0, 1} (x right, y down, z forward; 0 = still),
aligned to rows: row t holds the code of tag t - 1, row 0 is 0.
"""

from __future__ import annotations

import numpy as np
import torch

from storylab.camera.constants import CAM_SHIFT_MEAN, CAM_SHIFT_STD
from storylab.camera.features import CAMERA_DIM, rotation_from_6d, rotation_to_6d
from storylab.errors import StorylabError

IDENTITY_6D = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def encode_ego(kitti_poses: np.ndarray, rot_scale: float, trans_scale: np.ndarray) -> np.ndarray:
    """(N, 4, 4) camera-to-world poses -> (N, 9) camera-frame motion features (module docstring)."""
    poses = np.asarray(kitti_poses, dtype=np.float64)
    rot, trans = poses[:, :3, :3], poses[:, :3, 3]
    out = np.zeros((len(poses), CAMERA_DIM))
    out[0, :6] = rotation_to_6d(rot[:1])[0]
    out[0, 6:] = (trans[0] - CAM_SHIFT_MEAN) / CAM_SHIFT_STD
    if len(poses) > 1:
        relative = np.einsum("nji,njk->nik", rot[:-1], rot[1:])  # R_{t-1}^T R_t, (N-1, 3, 3)
        out[1:, :6] = (rotation_to_6d(relative) - IDENTITY_6D) / rot_scale
        local = np.einsum("nji,nj->ni", rot[:-1], np.diff(trans, axis=0))  # R_{t-1}^T (p_t - p_{t-1})
        out[1:, 6:] = local / np.asarray(trans_scale)
    return out.astype(np.float32)


def decode_ego(features: np.ndarray, rot_scale: float, trans_scale: np.ndarray) -> np.ndarray:
    """(N, 9) camera-frame motion features -> (N, 4, 4) poses (the exact inverse of :func:`encode_ego`)."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[1] != CAMERA_DIM:
        raise StorylabError(f"camera features must have shape (N, {CAMERA_DIM}), got {tuple(feats.shape)}")
    n = len(feats)
    poses = np.tile(np.eye(4), (n, 1, 1))
    rot = rotation_from_6d(feats[:1, :6])[0]
    pos = feats[0, 6:] * CAM_SHIFT_STD + CAM_SHIFT_MEAN
    poses[0, :3, :3], poses[0, :3, 3] = rot, pos
    if n > 1:
        relative = rotation_from_6d(feats[1:, :6] * rot_scale + IDENTITY_6D)  # (N-1, 3, 3)
        local = feats[1:, 6:] * np.asarray(trans_scale)
        for t in range(1, n):
            pos = pos + rot @ local[t - 1]
            rot = rot @ relative[t - 1]
            poses[t, :3, :3], poses[t, :3, 3] = rot, pos
    return poses


def ego_scales(poses: list[np.ndarray]) -> tuple[float, np.ndarray]:
    """Standardisation of :func:`encode_ego` from training poses: one rms for the six rotation channels
    (the diagonal ones are second order in the angle) and the per-axis rms of the local translation."""
    unit = [encode_ego(p, 1.0, np.ones(3))[1:] for p in poses if len(p) > 1]
    rows = np.concatenate(unit)
    rot = float(np.sqrt((rows[:, :6] ** 2).mean()))
    trans = np.sqrt((rows[:, 6:] ** 2).mean(axis=0))
    return max(rot, 1e-8), np.maximum(trans, 1e-8)


def tag_codes(labels: np.ndarray) -> np.ndarray:
    """(M,) E.T. tag ids (9a + 3b + c; code 1 = positive, 2 = negative) -> (M, 3) codes in {-1, 0, 1}."""
    labels = np.asarray(labels, dtype=np.int64)
    digits = np.stack([labels // 9, (labels // 3) % 3, labels % 3], axis=-1)
    return np.where(digits == 1, 1.0, np.where(digits == 2, -1.0, 0.0))


def codes_to_labels(codes: np.ndarray) -> np.ndarray:
    """(M, 3) codes in {-1, 0, 1} -> (M,) tag ids (the inverse of :func:`tag_codes`)."""
    codes = np.asarray(codes)
    digits = np.where(codes > 0.5, 1, np.where(codes < -0.5, 2, 0))
    return digits @ np.array([9, 3, 1])


def plan_rows(cam_segments: torch.Tensor) -> torch.Tensor:
    """(B, T) padded tags (n_i - 1 tags, then -1) -> (B, T, 3) row-aligned codes (row t = tag t - 1)."""
    labels = cam_segments.clamp(min=0).numpy()
    codes = torch.from_numpy(tag_codes(labels)).float() * (cam_segments >= 0)[..., None]
    return torch.cat([torch.zeros_like(codes[:, :1]), codes[:, :-1]], dim=1)


def apply_motion_gate(features: torch.Tensor, plan: torch.Tensor, mode: str = "axis") -> torch.Tensor:
    """Zero the camera-frame translation where the plan says still (rows >= 1; row 0 is absolute).

    ``axis``: every axis whose code is 0; ``frame``: whole rows whose three codes are 0 (a static
    camera only); ``none``: unchanged.
    """
    if mode == "none":
        return features
    if mode not in ("axis", "frame"):
        raise StorylabError(f"unknown motion gate '{mode}' (choose from axis, frame, none)")
    still = plan == 0 if mode == "axis" else (plan == 0).all(-1, keepdim=True).expand_as(plan)
    still = still.clone()
    still[:, 0] = False
    out = features.clone()
    out[..., 6:] = out[..., 6:].masked_fill(still, 0.0)
    return out


def ego_to_world(features: torch.Tensor, mask: torch.Tensor | None, rot_scale: float,
                 trans_scale) -> torch.Tensor:
    """(B, T, 9) camera-frame motion features -> DIRECTOR's standardised world features on each sample's
    valid frames (padding rows stay zero)."""
    from storylab.camera.features import encode_camera

    out = torch.zeros_like(features)
    lengths = mask.sum(1).tolist() if mask is not None else [features.shape[1]] * len(features)
    for i, n in enumerate(lengths):
        poses = decode_ego(features[i, :int(n)].double().cpu().numpy(), rot_scale, np.asarray(trans_scale))
        out[i, :int(n)] = torch.from_numpy(encode_camera(poses)).to(out)
    return out


def world_to_ego(features: torch.Tensor, mask: torch.Tensor, rot_scale: float, trans_scale) -> torch.Tensor:
    """(N, T, 9) DIRECTOR world features -> camera-frame motion features on the valid frames (padding zero)."""
    from storylab.camera.features import decode_camera

    out = torch.zeros_like(features)
    for i, n in enumerate(mask.sum(1).tolist()):
        poses = decode_camera(features[i, :int(n)].double().numpy())
        out[i, :int(n)] = torch.from_numpy(encode_ego(poses, rot_scale, np.asarray(trans_scale)))
    return out
