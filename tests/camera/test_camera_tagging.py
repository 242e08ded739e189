"""E.T. motion tagging on constructed trajectories, tag names, captions and the synthetic set."""

from __future__ import annotations

import numpy as np
import pytest

from storylab.camera.captions import TemplateCaptioner, outline
from storylab.camera.synth import look_at, synth_sample
from storylab.camera.tagging import (frame_labels, merge_short_segments, mode_filter, tag_camera, tag_character,
                                     tag_id, tag_name)


def camera_from_velocities(velocities_per_s: list[tuple[np.ndarray, int]], rotation: np.ndarray | None = None,
                           fps: int = 25) -> np.ndarray:
    """Poses whose camera-frame velocity is the given constant per block of frames."""
    rotation = np.eye(3) if rotation is None else rotation
    steps = np.concatenate([np.tile(np.asarray(v, float) / fps, (n, 1)) for v, n in velocities_per_s])
    n = len(steps) + 1
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = rotation
    poses[1:, :3, 3] = np.cumsum(steps @ rotation.T, axis=0)
    return poses


def test_label_formula_and_names():
    assert tag_name(0) == "static"
    assert tag_name(9) == "trucking_right" and tag_name(18) == "trucking_left"
    assert tag_name(3) == "boom_bottom" and tag_name(6) == "boom_top"
    assert tag_name(1) == "push_in" and tag_name(2) == "pull_out"
    assert tag_name(9 + 1) == "trucking_right-push_in"
    assert tag_name(18 + 6 + 2) == "trucking_left-boom_top-pull_out"
    assert tag_name(2, "character") == "move_backward" and tag_name(6, "character") == "move_up"
    assert tag_id("moves_left-moves_up", "character") == tag_id("move_left-move_up", "character") == 24
    assert all(tag_id(tag_name(i)) == i for i in range(27))


def test_thresholds_static_and_difference():
    v = np.array([[0.01, 0.0, 0.0],      # below static threshold
                  [0.5, 0.0, 0.0],       # truck right
                  [0.5, 0.0, 0.45],      # both within 40 %: truck right + push in
                  [0.5, 0.0, 0.2],       # (0.5-0.2)/0.5 = 0.6 > 0.4: push dropped
                  [-0.5, -0.4, 0.1]])    # truck left + boom top, push dropped
    assert frame_labels(v, 0.02, 0.4).tolist() == [0, 9, 10, 9, 18 + 6]


def test_rotated_camera_uses_its_own_frame():
    rotation = look_at(np.zeros(3), np.array([1.0, 0.0, 0.0]))  # looking along world +x
    poses = camera_from_velocities([((0, 0, 0.8), 100)], rotation)  # moving forward in camera frame
    tags = tag_camera(poses)
    assert [(s.start, s.end, tag_name(s.label)) for s in tags.segments] == [(0, 99, "push_in")]


def test_camera_sequence_segments_and_frame_ranges():
    poses = camera_from_velocities([((0.6, 0, 0), 100), ((0, 0, 0), 80), ((0, 0, -0.5), 69)])
    tags = tag_camera(poses)
    assert len(tags.frames) == 249  # one tag per motion between the 250 poses
    assert [(s.start, s.end, tag_name(s.label)) for s in tags.segments] == [
        (0, 99, "trucking_right"), (100, 179, "static"), (180, 248, "pull_out")]
    assert tags.to_json()["segments"][0] == {"start": 0, "end": 99, "tag": "trucking_right"}


def test_short_blips_are_smoothed_away():
    poses = camera_from_velocities([((0.6, 0, 0), 60), ((0, 0.5, 0), 10), ((0.6, 0, 0), 60)])
    assert [tag_name(s.label) for s in tag_camera(poses).segments] == ["trucking_right"]


def brute_force_mode(labels: list[int]) -> list[int]:
    """E.T.'s smoothing written out: frames i-28..i+28 (cut at the ends), most frequent label, ties to the
    smallest; a sequence shorter than 56 is left alone."""
    if len(labels) < 56:
        return list(labels)
    out = []
    for i in range(len(labels)):
        window = labels[max(0, i - 28):i + 29]
        counts = {v: window.count(v) for v in set(window)}
        best = max(counts.values())
        out.append(min(v for v, c in counts.items() if c == best))
    return out


def brute_force_merge(labels: list[int], min_len: int = 25) -> list[int]:
    """E.T.'s merging written out on (label, length) runs; runs are resized, never joined."""
    runs = []
    for v in labels:
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([v, 1])
    while len(runs) > 1:
        k = min(range(len(runs)), key=lambda j: (runs[j][1], j))
        n = runs[k][1]
        if n >= min_len:
            break
        if k == 0:
            runs[1][1] += n
        elif k == len(runs) - 1:
            runs[-2][1] += n
        else:
            runs[k - 1][1] += (n + 1) // 2
            runs[k + 1][1] += n // 2
        runs.pop(k)
    return [v for v, n in runs for _ in range(n)]


def brute_force_labels(v: np.ndarray, static: float, diff: float) -> list[int]:
    """Per-motion label from the paper's text: active axes, pairwise relative differences, 9a + 3b + c."""
    out = []
    for vel in v:
        active = [abs(x) > static for x in vel]
        if sum(active) >= 2:
            strongest = max(abs(x) for x, a in zip(vel, active) if a)
            active = [a and (strongest - abs(x)) / strongest <= diff for x, a in zip(vel, active)]
        code = [0 if not a else (1 if x > 0 else 2) for x, a in zip(vel, active)]
        out.append(9 * code[0] + 3 * code[1] + code[2])
    return out


@pytest.mark.parametrize("n,classes,seed", [(40, 3, 0), (55, 2, 1), (56, 2, 2), (57, 3, 3), (120, 2, 4),
                                            (300, 4, 5), (300, 27, 6), (90, 2, 7)])
def test_mode_filter_matches_a_brute_force_sliding_mode(n, classes, seed):
    labels = np.random.default_rng(seed).integers(0, classes, n)
    assert mode_filter(labels).tolist() == brute_force_mode(labels.tolist())


def test_mode_filter_window_ties_and_short_clips_by_hand():
    # frame 28 sees frames 0..56: 29 ones and 28 twos -> 1; a 56-frame window would see a 28/28 tie
    labels = np.array([1] * 29 + [2] * 71)
    assert mode_filter(labels)[28] == 1 and mode_filter(labels)[29] == 2
    # a tie goes to the smallest id, not to the frame's own label: in 28 x 5 then 28 x 3, frame 27 sees
    # frames 0..55 (28/28) and frame 26 frames 0..54 (28 fives, 27 threes)
    tie = np.array([5] * 28 + [3] * 28)
    assert mode_filter(tie)[27] == 3 and mode_filter(tie)[26] == 5
    short = np.array([9] * 26 + [1] * 25)  # 51 < 56 tags: left as they are
    assert mode_filter(short).tolist() == short.tolist()


@pytest.mark.parametrize("labels,expected", [
    ([0] * 30 + [5] * 9 + [9] * 30, [0] * 35 + [9] * 34),          # split, the left takes the odd frame
    ([0] * 40 + [5] * 10 + [9] * 50, [0] * 45 + [9] * 55),         # even split
    ([2] * 10 + [1] * 40, [1] * 50),                               # first segment: to its only neighbour
    ([1] * 40 + [2] * 10, [1] * 50),                               # last segment
    # equal neighbours stay two segments: 30,20,4,20,30 -> 30,22,22,30 -> the first 22 splits 11/11
    ([5] * 30 + [1] * 20 + [2] * 4 + [1] * 20 + [3] * 30, [5] * 41 + [1] * 33 + [3] * 30),
    ([4] * 24 + [7] * 24, [7] * 48),                               # the first of two equally short ones goes
    ([6] * 25, [6] * 25),
])
def test_merge_short_segments_by_hand(labels, expected):
    assert merge_short_segments(np.array(labels)).tolist() == expected
    assert brute_force_merge(labels) == expected


@pytest.mark.parametrize("seed", range(6))
def test_merge_matches_the_written_out_rule_on_random_runs(seed):
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.integers(0, 4, 30), rng.integers(1, 40, 30))
    assert merge_short_segments(labels).tolist() == brute_force_merge(labels.tolist())


def expected_camera_tags(poses: np.ndarray) -> list[int]:
    """The whole camera rule written out independently: camera-frame velocities, labels, mode, merging."""
    v = np.array([25 * np.linalg.inv(a)[:3, :3] @ (b[:3, 3] - a[:3, 3]) for a, b in zip(poses[:-1], poses[1:])])
    return brute_force_merge(brute_force_mode(brute_force_labels(v, 0.02, 0.4)))


ROT = look_at(np.zeros(3), np.array([1.0, -0.3, 0.4]))
TRAJECTORIES = {
    "static": ([((0, 0, 0), 120)], None),
    "truck right": ([((0.7, 0, 0), 150)], None),
    "truck left then right": ([((-0.7, 0, 0), 80), ((0.7, 0, 0), 80)], None),
    "push in / pull out": ([((0, 0, 0.6), 90), ((0, 0, -0.6), 90)], None),
    "booms": ([((0, -0.4, 0), 70), ((0, 0, 0), 40), ((0, 0.4, 0), 70)], None),
    "combo truck+boom+push": ([((0.5, -0.45, 0.42), 100), ((0.5, 0.0, 0.45), 100)], None),
    "rotated camera": ([((0, 0, 0.8), 60), ((-0.6, 0, 0), 60), ((0, 0.5, 0), 60)], ROT),
    "alternating short segments": ([((0.6, 0, 0), 12), ((-0.6, 0, 0), 12)] * 10, None),
    "alternating with static": ([((0.6, 0, 0), 20), ((0, 0, 0), 9)] * 8, None),
    "shorter than the window": ([((0.6, 0, 0), 26), ((0, 0, 0.6), 25)], None),
    "40-frame clip": ([((0, 0, 0.6), 15), ((0.6, 0, 0), 24)], None),
}


@pytest.mark.parametrize("name", list(TRAJECTORIES))
def test_camera_tags_match_the_written_out_rule(name):
    blocks, rotation = TRAJECTORIES[name]
    poses = camera_from_velocities(blocks, rotation)
    tags = tag_camera(poses)
    assert len(tags.frames) == len(poses) - 1
    assert tags.frames.tolist() == expected_camera_tags(poses)


def test_hand_worked_camera_cases():
    short = tag_camera(camera_from_velocities([((0.6, 0, 0), 26), ((0, 0, 0.6), 25)]))  # 51 tags: not smoothed
    assert [(s.start, s.end, tag_name(s.label)) for s in short.segments] == [(0, 25, "trucking_right"),
                                                                              (26, 50, "push_in")]
    clip = tag_camera(camera_from_velocities([((0, 0, 0.6), 15), ((0.6, 0, 0), 24)]))  # 39 tags
    assert clip.names() == ["trucking_right"] * 39  # the 15-frame push is the shortest, given to its neighbour


def test_character_tags():
    char = np.zeros((151, 3))
    char[1:76, 0] = np.cumsum(np.full(75, 1.2 / 25))
    char[76:, 0] = char[75, 0]
    tags = tag_character(char)
    assert [(s.start, s.end, tag_name(s.label, "character")) for s in tags.segments] == [
        (0, 74, "move_right"), (75, 149, "static")]


def test_template_caption_sequences_and_outline():
    cam = tag_camera(camera_from_velocities([((0.6, 0, 0), 100), ((0, 0, 0.6), 99)]))
    char = np.zeros((200, 3))
    char[1:101, 0] = np.cumsum(np.full(100, 1.0 / 25))
    char[101:, 0] = char[100, 0]
    caption = TemplateCaptioner().caption(cam, tag_character(char))
    assert caption.startswith("The camera ") and caption.endswith(".")
    assert "character" in caption and ("then" in caption or "after which" in caption)
    assert not any(c.isdigit() for c in caption)
    assert caption == TemplateCaptioner().caption(cam, tag_character(char))  # deterministic
    text = outline(cam, tag_character(char))
    assert "Total frames 199;" in text and "Between frames 0 and 99: trucking_right;" in text


def test_synth_labels_come_from_the_tagger():
    rng = np.random.default_rng(3)
    for i in range(5):
        s = synth_sample(f"s{i}", rng)
        assert 50 <= s.n_frames <= 300
        assert (s.cam_segments == tag_camera(s.kitti_poses).frames).all()
        assert (s.char_segments == tag_character(s.char_positions).frames).all()
        np.testing.assert_allclose(s.char_positions[0], 0.0)
        assert s.caption and s.caption_cam
