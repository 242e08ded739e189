"""Real trajectories: TUM RGB-D ground truth (from evo's test data, fetched at run time) as E.T. clips."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from storylab.camera.slam import read_tum, resample_poses, tum_clips
from storylab.camera.tagging import tag_camera, tag_name
from storylab.errors import StorylabError

EVO_DATA_ENV = "STORYLAB_EVO_TEST_DATA"


@pytest.fixture(scope="module")
def evo_data() -> Path:
    """evo's test/data folder (TUM fr1_xyz, fr2_desk ground truth; CC BY 4.0), never committed here."""
    folder = os.environ.get(EVO_DATA_ENV)
    if not folder or not (Path(folder) / "freiburg1_xyz-groundtruth.txt").is_file():
        pytest.skip(f"real TUM trajectories not available: set {EVO_DATA_ENV} to evo's test/data folder "
                    "(pip download --no-deps --no-binary :all: evo, then unpack; .ci/run does this)")
    return Path(folder)


def write_tum(path: Path, t: np.ndarray, poses: np.ndarray) -> Path:
    quat = Rotation.from_matrix(poses[:, :3, :3]).as_quat()
    lines = ["# timestamp tx ty tz qx qy qz qw"] + [
        " ".join(f"{v:.9f}" for v in (ti, *p[:3, 3], *q)) for ti, p, q in zip(t, poses, quat)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_resampling_hits_the_recorded_poses_and_interpolates_between(tmp_path):
    t = np.array([0.0, 0.04, 0.08, 0.12])
    poses = np.tile(np.eye(4), (4, 1, 1))
    poses[:, :3, :3] = Rotation.from_rotvec(np.outer([0, 0.1, 0.2, 0.3], [0, 1, 0])).as_matrix()
    poses[:, 0, 3] = [0.0, 1.0, 2.0, 3.0]
    t_read, p_read = read_tum(write_tum(tmp_path / "a.txt", t, poses))
    np.testing.assert_allclose(p_read, poses, atol=1e-8)
    grid, at_stamps = resample_poses(t_read, p_read, fps=25)  # 25 fps grid = the stamps
    np.testing.assert_allclose(grid, t, atol=1e-12)
    np.testing.assert_allclose(at_stamps, poses, atol=1e-8)
    _, half = resample_poses(t_read, p_read, fps=50)  # midpoints: half the angle, half the distance
    np.testing.assert_allclose(half[1, 0, 3], 0.5, atol=1e-9)
    np.testing.assert_allclose(Rotation.from_matrix(half[1, :3, :3]).as_rotvec(), [0, 0.05, 0], atol=1e-9)


@pytest.mark.parametrize("text,message", [
    ("0 1 2 3 0 0 0\n1 1 2 3 0 0 0 1\n", "has 7 columns"),
    ("0 1 2 3 0 0 0 2\n1 1 2 3 0 0 0 1\n", "unit quaternions"),
    ("0 1 2 3 0 0 0 x\n1 1 2 3 0 0 0 1\n", "not a number"),
    ("# only a comment\n0 1 2 3 0 0 0 1\n", "at least 2 poses"),
])
def test_bad_tum_files_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "t.txt").write_text(text)
    with pytest.raises(StorylabError, match=message):
        read_tum(tmp_path / "t.txt")


def test_fr1_xyz_is_tagged_as_the_camera_moved(evo_data):
    """fr1_xyz: the Kinect is moved back and forth along its principal axes - along z first, then x, then y."""
    from tests.camera.test_camera_tagging import expected_camera_tags

    t, poses = read_tum(evo_data / "freiburg1_xyz-groundtruth.txt")
    clips = tum_clips(evo_data / "freiburg1_xyz-groundtruth.txt")
    assert [len(c) for c in clips] == [300, 300, int(np.floor((t[-1] - t[0]) * 25)) + 1 - 600]
    names = []
    for clip in clips:
        tags = tag_camera(clip)
        assert tags.frames.tolist() == expected_camera_tags(clip)  # the rule written out independently
        names.append({tag_name(s.label) for s in tags.segments})
    assert {"push_in", "pull_out"} <= names[0] and names[0] <= {"push_in", "pull_out", "trucking_left", "trucking_right"}
    assert {"trucking_left", "trucking_right", "boom_top", "boom_bottom"} <= names[1]
    assert names[2] == {"boom_top", "boom_bottom"}
