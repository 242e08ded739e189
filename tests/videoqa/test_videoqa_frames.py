"""Uniform (linspace) frame sampling with PyAV, and a clear error for a missing or broken video."""

from __future__ import annotations

import numpy as np
import pytest

from storylab.errors import StorylabError
from storylab.videoqa.frames import FrameCache, find_video, sample_frame_times, sample_frames
from storylab.videoqa.sample import render_frame
from videoqa_helpers import write_video


def test_linspace_times():
    assert np.allclose(sample_frame_times(2.0, 3, 10), [0.0, 1.0, 1.9])


def test_sample_frames_picks_uniform_frames(tmp_path):
    path = write_video(tmp_path / "film.mp4", num_frames=20, fps=10)
    frames = sample_frames(path, 4)
    levels = [int(round(f.mean() / 10)) for f in frames]
    assert levels == [0, 6, 13, 19]  # linspace(0, 19, 4) rounded
    assert frames[0].shape == (32, 32, 3) and frames[0].dtype == np.uint8
    assert sample_frames(path, 2, max_side=16)[0].shape == (16, 16, 3)


def test_missing_and_broken_videos(tmp_path):
    with pytest.raises(StorylabError, match="no video file for video_id film"):
        find_video(tmp_path, "film")
    (tmp_path / "film.mp4").write_bytes(b"not a video")
    with pytest.raises(StorylabError, match="cannot be opened"):
        FrameCache(tmp_path).frames("film")


def test_sample_film_frames_show_the_story():
    workshop, tower = render_frame(10.0), render_frame(150.0)
    assert workshop.shape == (180, 320, 3)
    assert tower.mean() < workshop.mean()  # the tower scene is at night
