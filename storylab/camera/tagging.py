"""Motion tagging, E.T.'s rule (Courant et al., ECCV 2024, Sec. 3 "Trajectory tagging").

1. Velocities: the camera's in its own frame, v_t = fps * translation(P_t^-1 P_{t+1}); the character's
   in world axes, v_t = fps * (p_{t+1} - p_t). The last frame repeats the last velocity so that every
   frame gets a tag.
2. Per frame and axis: active if |v_i| > static threshold; among two or three active axes, an axis j
   is dropped when (|v_m| - |v_j|) / |v_m| exceeds the difference threshold, m the strongest axis.
3. Label = 9a + 3b + c, with a, b, c in {0 none, 1 positive, 2 negative} for x, y, z: 27 classes.
4. Smoothing: a centred mode filter over 56 frames (ties keep the frame's own label), then segments
   shorter than 25 frames are merged into their longer neighbour, shortest first.

All steps are vectorised numpy (one-hot cumulative sums for the mode filter), which is what makes
tagging thousands of times faster than real time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from storylab.camera.constants import (CAM_DIFF_THRESHOLD, CAM_STATIC_THRESHOLD, CAMERA_AXIS_NAMES, CHAR_DIFF_THRESHOLD,
                                       CHAR_STATIC_THRESHOLD, CHARACTER_AXIS_NAMES, FPS, MIN_SEGMENT_FRAMES,
                                       MODE_FILTER_WINDOW, NUM_CLASSES)
from storylab.camera.et_format import validate_char, validate_poses


@dataclass
class Segment:
    """Frames ``start``..``end`` (0-based, inclusive) share one tag id."""

    start: int
    end: int
    label: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass
class MotionTags:
    """Per-frame tag ids (N,) and their segments, for the camera or the character."""

    frames: np.ndarray
    segments: list[Segment] = field(default_factory=list)
    kind: str = "camera"

    def names(self) -> list[str]:
        return [tag_name(int(i), self.kind) for i in self.frames]

    def to_json(self) -> dict:
        return {"frames": self.names(),
                "segments": [{"start": s.start, "end": s.end, "tag": tag_name(s.label, self.kind)}
                             for s in self.segments]}


def _axis_names(kind: str) -> tuple[tuple[str, str], ...]:
    return CAMERA_AXIS_NAMES if kind == "camera" else CHARACTER_AXIS_NAMES


def tag_name(label: int, kind: str = "camera") -> str:
    """Tag id -> name, e.g. 3 -> ``boom_bottom``... components joined with ``-`` in x, y, z order."""
    codes = (label // 9, (label // 3) % 3, label % 3)
    parts = [_axis_names(kind)[axis][code - 1] for axis, code in enumerate(codes) if code]
    return "-".join(parts) if parts else "static"


def tag_id(name: str, kind: str = "camera") -> int:
    """Tag name -> id (inverse of :func:`tag_name`)."""
    if name == "static":
        return 0
    label = 0
    for part in name.split("-"):
        for axis, pair in enumerate(_axis_names(kind)):
            if part in pair:
                label += (pair.index(part) + 1) * (9, 3, 1)[axis]
                break
        else:
            raise ValueError(f"unknown {kind} tag component '{part}'")
    return label


def camera_velocities(kitti_poses: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(N, 4, 4) poses -> (N-1, 3) velocities in the camera frame: fps * R_t^T (t_{t+1} - t_t)."""
    poses = validate_poses(kitti_poses)
    delta = np.diff(poses[:, :3, 3], axis=0)
    return fps * np.einsum("nji,nj->ni", poses[:-1, :3, :3], delta)


def character_velocities(char_positions: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(N, 3) positions -> (N-1, 3) world-frame velocities fps * (p_{t+1} - p_t)."""
    return fps * np.diff(validate_char(char_positions), axis=0)


def frame_labels(velocities: np.ndarray, static_threshold: float, diff_threshold: float) -> np.ndarray:
    """(M, 3) velocities -> (M,) raw tag ids by E.T.'s static and difference thresholds."""
    speed = np.abs(velocities)
    active = speed > static_threshold
    strongest = speed.max(axis=1, keepdims=True)
    relative = (strongest - speed) / np.where(strongest > 0, strongest, 1.0)
    active &= ~((active.sum(axis=1, keepdims=True) >= 2) & (relative > diff_threshold))
    codes = np.where(active, np.where(velocities > 0, 1, 2), 0)
    return codes @ np.array([9, 3, 1])


def mode_filter(labels: np.ndarray, window: int = MODE_FILTER_WINDOW, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Centred sliding-window mode of integer labels (window truncated at the ends; ties keep the own label).

    Hand-written with one-hot cumulative sums (O(N x classes)) because scipy.stats.mode over sliding
    windows is ~100x slower.
    """
    n = len(labels)
    onehot = np.zeros((n + 1, num_classes), dtype=np.float32)
    onehot[np.arange(1, n + 1), labels] = 1.0
    cumulative = np.cumsum(onehot, axis=0)
    idx = np.arange(n)
    lo = np.clip(idx - window // 2, 0, n)
    hi = np.clip(idx + (window - window // 2), 0, n)
    counts = cumulative[hi] - cumulative[lo]
    counts[idx, labels] += 0.5
    return counts.argmax(axis=1)


def segments_of(labels: np.ndarray) -> list[Segment]:
    """Runs of equal labels as :class:`Segment` objects."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[starts[1:] - 1, len(labels) - 1]
    return [Segment(int(s), int(e), int(labels[s])) for s, e in zip(starts, ends)]


def merge_short_segments(labels: np.ndarray, min_frames: int = MIN_SEGMENT_FRAMES) -> np.ndarray:
    """Merge segments shorter than ``min_frames`` into their longer neighbour, shortest first."""
    segs = [[s.start, s.end, s.label] for s in segments_of(labels)]
    while len(segs) > 1:
        lengths = [e - s + 1 for s, e, _ in segs]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_frames:
            break
        left = lengths[i - 1] if i > 0 else -1
        right = lengths[i + 1] if i + 1 < len(segs) else -1
        j = i - 1 if left >= right else i + 1
        segs[j][0], segs[j][1] = min(segs[j][0], segs[i][0]), max(segs[j][1], segs[i][1])
        del segs[i]
        k = 1  # neighbours with equal labels become one segment
        while k < len(segs):
            if segs[k][2] == segs[k - 1][2]:
                segs[k - 1][1] = segs[k][1]
                del segs[k]
            else:
                k += 1
    out = np.empty(len(labels), dtype=np.int64)
    for s, e, lab in segs:
        out[s:e + 1] = lab
    return out


def tag_velocities(velocities: np.ndarray, static_threshold: float, diff_threshold: float, kind: str,
                   window: int = MODE_FILTER_WINDOW, min_frames: int = MIN_SEGMENT_FRAMES) -> MotionTags:
    """(N-1, 3) velocities -> :class:`MotionTags` over N frames (thresholds, mode filter, merging)."""
    raw = frame_labels(velocities, static_threshold, diff_threshold)
    raw = np.r_[raw, raw[-1:]]
    smooth = merge_short_segments(mode_filter(raw, window), min_frames)
    return MotionTags(frames=smooth, segments=segments_of(smooth), kind=kind)


def tag_camera(kitti_poses: np.ndarray, fps: float = FPS) -> MotionTags:
    """E.T. camera motion tags of a (N, 4, 4) camera-to-world trajectory."""
    return tag_velocities(camera_velocities(kitti_poses, fps), CAM_STATIC_THRESHOLD, CAM_DIFF_THRESHOLD, "camera")


def tag_character(char_positions: np.ndarray, fps: float = FPS) -> MotionTags:
    """E.T. character motion tags of (N, 3) positions."""
    return tag_velocities(character_velocities(char_positions, fps), CHAR_STATIC_THRESHOLD, CHAR_DIFF_THRESHOLD,
                          "character")
