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
    assert tag_name(2, "character") == "moves_backward" and tag_name(6, "character") == "moves_up"
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
    assert [(s.start, s.end, tag_name(s.label)) for s in tags.segments] == [(0, 100, "push_in")]


def test_camera_sequence_segments_and_frame_ranges():
    poses = camera_from_velocities([((0.6, 0, 0), 100), ((0, 0, 0), 80), ((0, 0, -0.5), 69)])
    tags = tag_camera(poses)
    assert len(tags.frames) == 250
    assert [(s.start, s.end, tag_name(s.label)) for s in tags.segments] == [
        (0, 99, "trucking_right"), (100, 179, "static"), (180, 249, "pull_out")]
    assert tags.to_json()["segments"][0] == {"start": 0, "end": 99, "tag": "trucking_right"}


def test_short_blips_are_smoothed_away():
    poses = camera_from_velocities([((0.6, 0, 0), 60), ((0, 0.5, 0), 10), ((0.6, 0, 0), 60)])
    assert [tag_name(s.label) for s in tag_camera(poses).segments] == ["trucking_right"]


def test_mode_filter_and_merge():
    labels = np.array([1] * 30 + [2] * 3 + [1] * 30)
    assert (mode_filter(labels, 56) == 1).all()
    merged = merge_short_segments(np.array([0] * 40 + [5] * 10 + [9] * 50), 25)
    assert merged.tolist() == [0] * 40 + [9] * 60


def test_character_tags():
    char = np.zeros((151, 3))
    char[1:76, 0] = np.cumsum(np.full(75, 1.2 / 25))
    char[76:, 0] = char[75, 0]
    tags = tag_character(char)
    assert [(s.start, s.end, tag_name(s.label, "character")) for s in tags.segments] == [
        (0, 74, "moves_right"), (75, 150, "static")]


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
    assert "Total frames 200;" in text and "Between frames 0 and 99: trucking_right;" in text


def test_synth_labels_come_from_the_tagger():
    rng = np.random.default_rng(3)
    for i in range(5):
        s = synth_sample(f"s{i}", rng)
        assert 50 <= s.n_frames <= 300
        assert (s.cam_segments == tag_camera(s.kitti_poses).frames).all()
        assert (s.char_segments == tag_character(s.char_positions).frames).all()
        np.testing.assert_allclose(s.char_positions[0], 0.0)
        assert s.caption and s.caption_cam
