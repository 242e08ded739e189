"""E.T. format I/O, DIRECTOR features round trip and bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from storylab.camera.et_format import (ETSample, parse_kitti_text, read_char, read_kitti_poses, read_sample,
                                       read_split, write_kitti_poses, write_sample, write_split)
from storylab.camera.features import (decode_camera, decode_character, encode_camera, encode_character,
                                      pad_features)
from storylab.errors import StorylabError


def random_poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.5, (n, 3))).as_matrix()
    poses[:, :3, 3] = np.cumsum(rng.normal(0, 0.05, (n, 3)), axis=0) + [0.1, -0.3, -2.0]
    return poses


def test_camera_features_round_trip_exact():
    poses = random_poses(120)
    feats = encode_camera(poses)
    assert feats.shape == (120, 9)
    np.testing.assert_allclose(decode_camera(feats), poses, atol=1e-5)


def test_character_features_round_trip_exact():
    char = np.cumsum(np.random.default_rng(1).normal(0, 0.03, (80, 3)), axis=0)
    np.testing.assert_allclose(decode_character(encode_character(char)), char, atol=1e-5)


def test_static_camera_features_are_standardised_constants():
    poses = np.tile(np.eye(4), (5, 1, 1))
    feats = encode_camera(poses)
    np.testing.assert_allclose(feats[1:, 6:], np.tile(-np.array([7.94e-5, -9.99e-5, 4.13e-4]) /
                                                        np.array([0.02784, 0.01820, 0.03139]), (4, 1)), rtol=1e-5)


def test_pad_features_shape_and_mask():
    padded, mask = pad_features(np.ones((7, 9), np.float32), 300)
    assert padded.shape == (300, 9) and mask.sum() == 7 and mask[:7].all() and not padded[7:].any()
    with pytest.raises(StorylabError, match="more than the model's maximum"):
        pad_features(np.ones((301, 9)), 300)


def test_kitti_write_read_round_trip(tmp_path):
    poses = random_poses(30)
    write_kitti_poses(tmp_path / "t.txt", poses)
    assert len((tmp_path / "t.txt").read_text().splitlines()) == 30
    np.testing.assert_allclose(read_kitti_poses(tmp_path / "t.txt"), poses, atol=1e-7)


def test_sample_layout_round_trip(tmp_path):
    poses = random_poses(40)
    char = np.zeros((40, 3))
    sample = ETSample("2024_x_00001_00000", poses, char, "The camera trucks right.", "The camera trucks right.",
                      np.full(39, 9), np.zeros(39, int))
    write_sample(tmp_path, sample)
    write_split(tmp_path, [sample.sample_id], "mixed", "train")
    for folder in ("traj", "char", "caption", "caption_cam", "cam_segments", "char_segments"):
        assert any((tmp_path / folder).iterdir())
    back = read_sample(tmp_path, read_split(tmp_path, "mixed", "train")[0])
    assert back.caption == sample.caption and (back.cam_segments == 9).all()
    np.testing.assert_allclose(back.kitti_poses, poses, rtol=1e-6, atol=1e-7)  # "%.6e": 7 significant digits


@pytest.mark.parametrize("text,message", [
    ("1 0 0 0 0 1 0 0 0 0 1\n" * 3, "has 11 columns"),
    ("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 nan 0 1 0 0 0 0 1 0\n", "non-finite"),
    ("1 0 0 0 0 1 0 0 0 0 1 0\n", "at least 2 frames"),
    ("1 0 0 0 0 1 0 0 0 0 1 0\n2 0 0 0 0 1 0 0 0 0 1 0\n", "frame 1 is not a rotation"),
    ("1 0 0 0 0 1 0 0 0 0 -1 0\n1 0 0 0 0 1 0 0 0 0 1 0\n", "frame 0 is not a rotation"),
    ("1 0 0 0 0 1 0 0 0 0 1 x\n1 0 0 0 0 1 0 0 0 0 1 0\n", "not a number"),
    ("", "empty"),
])
def test_bad_trajectories_are_clear_errors(text, message):
    with pytest.raises(StorylabError, match=message):
        parse_kitti_text(text, "t.txt")


def test_char_length_mismatch_and_missing_files(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((5, 3)))
    with pytest.raises(StorylabError, match="character has 5 frames but the trajectory has 6"):
        read_char(tmp_path / "c.npy", 6)
    with pytest.raises(StorylabError, match="not found"):
        read_kitti_poses(tmp_path / "missing.txt")
    with pytest.raises(StorylabError, match="split file not found"):
        read_split(tmp_path)


def test_release_tag_files_hold_n_minus_1_ids(tmp_path):
    poses = random_poses(12)
    write_sample(tmp_path, ETSample("s", poses, cam_segments=np.full(11, 9), char_segments=np.zeros(11, int)))
    assert read_sample(tmp_path, "s").cam_segments.shape == (11,)
    np.save(tmp_path / "cam_segments" / "s.npy", np.full(12, 9))  # one tag per pose: not the release's layout
    with pytest.raises(StorylabError, match=r"cam_segments/s.npy: expected 11 tag ids \(one per motion between the 12 poses\), got 12"):
        read_sample(tmp_path, "s")
    np.save(tmp_path / "cam_segments" / "s.npy", np.full(11, 27))
    with pytest.raises(StorylabError, match="tag ids must be integers in 0..26"):
        read_sample(tmp_path, "s")


def test_bad_release_folders_are_one_line_errors(tmp_path):
    from tests.cli_runner import run_cli

    poses = random_poses(30)
    for sid in ("a", "b"):
        write_sample(tmp_path, ETSample(sid, poses, np.zeros((30, 3)), "The camera moves.", "The camera moves.",
                                        np.zeros(29, int), np.zeros(29, int)))
    write_split(tmp_path, ["a", "b", "missing"], "mixed", "train")
    result = run_cli("train", "director", "--data", str(tmp_path), "--steps", "1", "--out", str(tmp_path / "d.safetensors"))
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: trajectory file not found")
    assert "missing.txt" in result.stderr and not (tmp_path / "d.safetensors").exists()
    write_split(tmp_path, ["a", "b"], "mixed", "train")
    np.save(tmp_path / "cam_segments" / "b.npy", np.zeros(30, int))
    result = run_cli("train", "director", "--data", str(tmp_path), "--steps", "1", "--out", str(tmp_path / "d.safetensors"))
    assert result.returncode == 2 and "b.npy: expected 29 tag ids" in result.stderr.strip().splitlines()[-1]
