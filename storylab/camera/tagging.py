"""Motion tagging, E.T.'s rule (Courant et al., ECCV 2024, Sec. 3 "Trajectory tagging"), as the authors' code runs it.

1. Velocities between consecutive poses: the camera's in its own frame, v_t = fps * translation(P_t^-1 P_{t+1});
   the character's in world axes, v_t = fps * (p_{t+1} - p_t). N poses give N-1 velocities and so
   N-1 tags (tag t describes the motion from pose t to pose t+1); that is what E.T. stores in
   ``cam_segments``/``char_segments`` and what every metric compares.
2. Per velocity and axis: active if |v_i| > static threshold; among two or three active axes, an axis j
   is dropped when (|v_m| - |v_j|) / |v_m| exceeds the difference threshold, m the strongest axis
   (the same as the authors' pairwise comparisons).
3. Label = 9a + 3b + c, with a, b, c in {0 none, 1 positive, 2 negative} for x, y, z: 27 classes.
4. Smoothing with the smoothing parameter W = 56: a mode filter over frames i - W/2 .. i + W/2
   (57 frames, truncated at the ends), ties going to the smallest id (scipy.stats.mode's rule, so
   static wins a tie); a sequence shorter than W is not smoothed at all.
5. Merging, repeated while the shortest segment (the first of equal ones) is shorter than 25 frames:
   a first/last segment goes whole to its only neighbour, a middle one is split half/half between
   its two neighbours (the left one takes the odd frame). Neighbours with equal labels stay
   separate segments for the rest of the merging (their lengths are not added).

Checked frame for frame against the authors' code (docs/camera.md). All steps except the merge loop
are vectorised numpy (one-hot cumulative sums for the mode filter), which is what makes tagging
thousands of times faster than real time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from storylab.camera.constants import (CAM_DIFF_THRESHOLD, CAM_STATIC_THRESHOLD, CAMERA_AXIS_NAMES, CHAR_DIFF_THRESHOLD,
                                       CHAR_STATIC_THRESHOLD, CHARACTER_AXIS_NAMES, FPS, LEGACY_CHARACTER_PREFIX,
                                       MIN_SEGMENT_FRAMES, MODE_FILTER_WINDOW, NUM_CLASSES)
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
    """Tag ids of the N-1 motions between N poses (E.T.'s stored form) and their segments."""

    frames: np.ndarray
    segments: list[Segment] = field(default_factory=list)
    kind: str = "camera"

    def names(self) -> list[str]:
        return [tag_name(int(i), self.kind) for i in self.frames]

    def per_pose(self) -> np.ndarray:
        """One tag per pose (N,) for display: the last pose repeats the last motion's tag."""
        return np.r_[self.frames, self.frames[-1:]]

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
        if kind != "camera" and part.startswith(LEGACY_CHARACTER_PREFIX):
            part = "move_" + part[len(LEGACY_CHARACTER_PREFIX):]
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
    """E.T.'s mode filter: frame i takes the most frequent label of frames i - window//2 .. i + window//2
    (truncated at the ends), ties to the smallest label; sequences shorter than ``window`` are returned unchanged.

    Hand-written with one-hot cumulative sums (O(N x classes)) because scipy.stats.mode over sliding
    windows is ~100x slower; argmax returns the first maximum, i.e. the smallest label, as scipy does.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n < window:
        return labels.copy()
    half = window // 2
    onehot = np.zeros((n + 1, num_classes), dtype=np.int32)
    onehot[np.arange(1, n + 1), labels] = 1
    cumulative = np.cumsum(onehot, axis=0)
    idx = np.arange(n)
    lo = np.clip(idx - half, 0, n)
    hi = np.clip(idx + half + 1, 0, n)
    return (cumulative[hi] - cumulative[lo]).argmax(axis=1)


def segments_of(labels: np.ndarray) -> list[Segment]:
    """Runs of equal labels as :class:`Segment` objects."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[starts[1:] - 1, len(labels) - 1]
    return [Segment(int(s), int(e), int(labels[s])) for s, e in zip(starts, ends)]


def merge_short_segments(labels: np.ndarray, min_frames: int = MIN_SEGMENT_FRAMES) -> np.ndarray:
    """E.T.'s merging: while the shortest segment (the first of equal ones) is under ``min_frames``, give it
    to its only neighbour at either end, or split it between both (the left one takes the odd frame).

    Segments are only ever resized, never joined, so two neighbours with the same label keep separate
    lengths for the rest of the loop (the authors' rule).
    """
    segs = [[s.start, s.end, s.label] for s in segments_of(labels)]
    while len(segs) > 1:
        lengths = [e - s + 1 for s, e, _ in segs]
        i = int(np.argmin(lengths))
        length = lengths[i]
        if length >= min_frames:
            break
        if i == 0:
            segs[1][0] -= length
        elif i == len(segs) - 1:
            segs[i - 1][1] += length
        else:
            segs[i - 1][1] += length - length // 2
            segs[i + 1][0] -= length // 2
        del segs[i]
    out = np.empty(len(labels), dtype=np.int64)
    for s, e, lab in segs:
        out[s:e + 1] = lab
    return out


def tag_velocities(velocities: np.ndarray, static_threshold: float, diff_threshold: float, kind: str,
                   window: int = MODE_FILTER_WINDOW, min_frames: int = MIN_SEGMENT_FRAMES) -> MotionTags:
    """(N-1, 3) velocities -> :class:`MotionTags` with N-1 tags (thresholds, mode filter, merging)."""
    raw = frame_labels(velocities, static_threshold, diff_threshold)
    smooth = merge_short_segments(mode_filter(raw, window), min_frames)
    return MotionTags(frames=smooth, segments=segments_of(smooth), kind=kind)


def tag_camera(kitti_poses: np.ndarray, fps: float = FPS) -> MotionTags:
    """E.T. camera motion tags of a (N, 4, 4) camera-to-world trajectory."""
    return tag_velocities(camera_velocities(kitti_poses, fps), CAM_STATIC_THRESHOLD, CAM_DIFF_THRESHOLD, "camera")


def tag_character(char_positions: np.ndarray, fps: float = FPS) -> MotionTags:
    """E.T. character motion tags of (N, 3) positions."""
    return tag_velocities(character_velocities(char_positions, fps), CHAR_STATIC_THRESHOLD, CHAR_DIFF_THRESHOLD,
                          "character")
