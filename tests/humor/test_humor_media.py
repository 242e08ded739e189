"""Media input/output with PyAV, and humor's subtitle helpers (one video's lines, duration check, windows)."""

import numpy as np
import pytest

from storylab.errors import StorylabError
from storylab.humor.media import load_audio, load_frames, media_duration, write_video, write_wav
from storylab.humor.subtitles import check_against_duration, find_subtitles, read_subtitles, text_in_window
from storylab.subtitles import Subtitle, write_srt


def test_wav_round_trip_keeps_channels_and_resamples(tmp_path):
    sr = 44_100
    t = np.arange(sr) / sr
    audio = np.stack([np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 220 * t)]).astype(np.float32) * 0.5
    write_wav(tmp_path / "a.wav", audio, sample_rate=sr)
    track = load_audio(tmp_path / "a.wav")
    assert track.sample_rate == 16_000 and track.channels == 2 and track.layout == "stereo"
    assert abs(track.duration - 1.0) < 0.01
    peaks = np.abs(track.samples[:, 1000:-1000]).max(axis=1)
    assert np.allclose(peaks, [0.5, 0.125], atol=0.02)  # each channel keeps its own level


def test_mp4_round_trip_audio_and_frames(tmp_path):
    sr = 16_000
    audio = np.zeros((2, 2 * sr), np.float32)
    audio[0] = 0.3 * np.sin(2 * np.pi * 300 * np.arange(2 * sr) / sr)
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(20)]  # 2 s at 10 fps, brightness = 10 * index
    write_video(tmp_path / "v.mp4", frames, 10, audio)
    assert abs(media_duration(tmp_path / "v.mp4") - 2.0) < 0.1
    track = load_audio(tmp_path / "v.mp4")
    assert track.channels == 2
    assert np.abs(track.samples[0]).max() > 0.2 and np.abs(track.samples[1]).max() < 0.05
    got = load_frames(tmp_path / "v.mp4", fps=2, size=32)
    assert got.images.shape == (4, 32, 32, 3)
    assert np.allclose(got.times, [0, 0.5, 1.0, 1.5])
    assert np.allclose(got.images[:, 16, 16, 0], [0, 50, 100, 150], atol=8)  # the frame shown at each time


def test_no_audio_stream_is_one_clear_error(tmp_path):
    write_video(tmp_path / "silent.mp4", [np.zeros((32, 32, 3), np.uint8)] * 5, 5, None)
    with pytest.raises(StorylabError, match="no audio stream"):
        load_audio(tmp_path / "silent.mp4")


def test_corrupt_and_truncated_containers(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(StorylabError, match="corrupt"):
        load_audio(tmp_path / "junk.mp4")
    audio = (np.random.default_rng(0).standard_normal((2, 16_000 * 2)) * 0.1).astype(np.float32)
    write_video(tmp_path / "ok.mp4", [np.zeros((32, 32, 3), np.uint8)] * 10, 5, audio)
    data = (tmp_path / "ok.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(StorylabError, match="cut.mp4"):
        load_audio(tmp_path / "cut.mp4")
    with pytest.raises(StorylabError, match="not found"):
        load_audio(tmp_path / "missing.mp4")


def test_one_videos_subtitles_from_srt_or_sfd_csv(tmp_path):
    subs = [Subtitle(1.0, 2.5, "Hello there."), Subtitle(3.25, 4.0, "Why is the fridge full of socks?")]
    write_srt(tmp_path / "ep1.srt", subs)
    assert find_subtitles(tmp_path / "ep1.mp4") == tmp_path / "ep1.srt"
    assert find_subtitles(tmp_path / "ep2.mp4") is None
    assert read_subtitles(tmp_path / "ep1.srt", video_id="ignored") == subs
    (tmp_path / "s.csv").write_text("text,start,end,speaker,video_id\nHi,0.5,1.5,SPEAKER_00,ep1\nYo,2,3,SPEAKER_01,ep2\n")
    assert read_subtitles(tmp_path / "s.csv", video_id="ep2") == [Subtitle(2.0, 3.0, "Yo", "SPEAKER_01")]
    assert read_subtitles(tmp_path / "s.csv", video_id="ep3") == []
    with pytest.raises(StorylabError, match=r"unknown subtitle format '\.txt' \(use \.srt, \.vtt or an SFD \.csv\)"):
        read_subtitles(tmp_path / "s.txt", video_id="ep1")
    assert text_in_window(subs, 0.0, 3.0) == "Hello there."
    assert text_in_window(subs, 2.0, 3.5) == "Hello there. Why is the fridge full of socks?"
    assert text_in_window(subs, 2.5, 3.25) == ""


def test_subtitles_after_the_video_are_refused():
    with pytest.raises(StorylabError, match=r"x\.srt: subtitle at 00:00:50,000 ends at 70\.0 s, after the video \(30\.0 s\)"):
        check_against_duration([Subtitle(50.0, 70.0, "late")], 30.0, "x.srt")
    check_against_duration([Subtitle(25.0, 30.9, "just in")], 30.0, "x.srt")
