"""Media input/output with PyAV and subtitles parsing."""

import numpy as np
import pytest

from storylab.errors import StorylabError
from storylab.humor.media import load_audio, load_frames, media_duration, write_video, write_wav
from storylab.humor.subtitles import (Subtitle, check_against_duration, parse_timestamp, read_sfd_csv, read_srt,
                                      read_subtitles, read_vtt, text_in_window, write_srt)


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


def test_srt_vtt_csv_parse_and_round_trip(tmp_path):
    subs = [Subtitle(1.0, 2.5, "Hello there."), Subtitle(3.25, 4.0, "Why is the fridge full of socks?")]
    write_srt(tmp_path / "a.srt", subs)
    assert read_srt(tmp_path / "a.srt") == subs
    (tmp_path / "a.vtt").write_text("WEBVTT\n\n00:01.000 --> 00:02.500 align:start\n<v Bob>Hello there.\n\n"
                                    "01:02:03.250 --> 01:02:04.000\nLate line\n")
    vtt = read_vtt(tmp_path / "a.vtt")
    assert vtt[0] == Subtitle(1.0, 2.5, "Hello there.") and vtt[1].start == 3723.25
    (tmp_path / "s.csv").write_text("text,start,end,speaker,video_id\nHi,0.5,1.5,SPEAKER_00,ep1\nYo,2,3,SPEAKER_01,ep2\n")
    assert read_subtitles(tmp_path / "s.csv", video_id="ep2") == [Subtitle(2.0, 3.0, "Yo", "SPEAKER_01")]
    assert text_in_window(subs, 0.0, 3.0) == "Hello there."
    assert text_in_window(subs, 2.0, 3.5) == "Hello there. Why is the fridge full of socks?"


def test_broken_subtitles_are_reported_with_line(tmp_path):
    (tmp_path / "bad.srt").write_text("1\n00:00:01,000 --> 00:00:0x,500\nHi\n")
    with pytest.raises(StorylabError, match=r"broken timestamp .* bad.srt line 2"):
        read_srt(tmp_path / "bad.srt")
    (tmp_path / "back.srt").write_text("1\n00:00:05,000 --> 00:00:01,000\nHi\n")
    with pytest.raises(StorylabError, match="ends before it starts"):
        read_srt(tmp_path / "back.srt")
    (tmp_path / "bad.csv").write_text("text,start,end\nHi,abc,2\n")
    with pytest.raises(StorylabError, match="bad.csv line 2"):
        read_sfd_csv(tmp_path / "bad.csv")
    with pytest.raises(StorylabError, match="after the video"):
        check_against_duration([Subtitle(50.0, 70.0, "late")], 30.0, "x.srt")
    assert parse_timestamp("00:01:02,5") == 62.5
