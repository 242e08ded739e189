"""``load_audio`` on WAV files of any channel count and sample format, written here byte by byte.

The files are built from the RIFF layout itself (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT and
WAVE_FORMAT_EXTENSIBLE with a channel mask), not with the library under test, and the expected
samples are the quantised values divided by the format's full scale, written out below.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from storylab.humor.media import load_audio

FORMATS = {  # name -> (bits, WAVE format tag, full scale)
    "u8": (8, 1, 128.0), "s16": (16, 1, 32768.0), "s24": (24, 1, 2.0 ** 23), "s32": (32, 1, 2.0 ** 31),
    "f32": (32, 3, None), "f64": (64, 3, None),
}


def _quantise(x: np.ndarray, kind: str) -> tuple[bytes, np.ndarray]:
    """(data chunk bytes, the values a correct decoder returns) for (N, C) samples in [-1, 1)."""
    bits, _, scale = FORMATS[kind]
    if kind in ("f32", "f64"):
        values = x.astype("<f4" if kind == "f32" else "<f8")
        return values.tobytes(), values.astype(np.float64)
    q = np.clip(np.round(x * scale), -scale, scale - 1).astype(np.int64)
    if kind == "u8":
        return (q + 128).astype(np.uint8).tobytes(), q / scale
    if kind == "s24":
        b = (q & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(*q.shape, 4)[..., :3]
        return b.tobytes(), q / scale
    return q.astype("<i2" if kind == "s16" else "<i4").tobytes(), q / scale


def write_wav(path, x: np.ndarray, rate: int, kind: str, extensible: bool) -> np.ndarray:
    """Write (N, C) samples as a WAV file; return the (C, N) values a decoder must give back."""
    n, c = x.shape
    bits, tag, _ = FORMATS[kind]
    data, expected = _quantise(x, kind)
    align = c * bits // 8
    if extensible:  # cbSize 22: valid bits, channel mask, sub-format GUID (tag + the KSDATAFORMAT suffix)
        guid = struct.pack("<IHH", tag, 0, 0x10) + bytes([0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71])
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, c, rate, rate * align, align, bits, 22, bits, (1 << c) - 1) + guid
    else:
        fmt = struct.pack("<HHIIHH", tag, c, rate, rate * align, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return expected.T


def _tones(n: int, c: int, rate: int) -> np.ndarray:
    """(N, C): channel k a sine of its own frequency, so that a swapped or mixed channel shows."""
    freqs = 200.0 + 150.0 * np.arange(c)
    return 0.5 * np.sin(2 * np.pi * np.arange(n)[:, None] * freqs / rate)


@pytest.mark.parametrize("channels", [1, 2, 6, 8, 32])
@pytest.mark.parametrize("kind", list(FORMATS))
@pytest.mark.parametrize("extensible", [False, True])
def test_every_channel_count_and_sample_format_decodes_exactly(tmp_path, channels, kind, extensible):
    expected = write_wav(tmp_path / "a.wav", _tones(1600, channels, 16_000), 16_000, kind, extensible)
    track = load_audio(tmp_path / "a.wav")
    assert track.samples.shape == (channels, 1600) and track.sample_rate == 16_000
    np.testing.assert_allclose(track.samples, expected, atol=1e-7, rtol=0)


@pytest.mark.parametrize("channels", [2, 8])
def test_a_96_khz_file_is_resampled_channel_by_channel(tmp_path, channels):
    """At 96 kHz each channel is resampled to 16 kHz on its own: its tone keeps its frequency and amplitude."""
    rate = 96_000
    write_wav(tmp_path / "a.wav", _tones(rate // 2, channels, rate), rate, "s16", extensible=True)
    track = load_audio(tmp_path / "a.wav")
    assert track.samples.shape[0] == channels and abs(track.samples.shape[1] - 8000) <= 32
    middle = track.samples[:, 1000:7000]  # away from the resampler's edges
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.shape[1]), axis=1))
    peaks = np.fft.rfftfreq(middle.shape[1], 1 / 16_000)[spectrum.argmax(axis=1)]
    np.testing.assert_allclose(peaks, 200.0 + 150.0 * np.arange(channels), atol=3.0)
    np.testing.assert_allclose(np.abs(middle).max(axis=1), 0.5, atol=0.01)


def test_laughter_reads_any_channel_of_an_eight_channel_file(tmp_path):
    from tests.cli_runner import run_cli

    write_wav(tmp_path / "eight.wav", _tones(32_000, 8, 16_000), 16_000, "s16", extensible=False)
    for extra in ([], ["--channel", "7"]):
        result = run_cli("humor", "laughter", str(tmp_path / "eight.wav"), "--json", *extra)
        assert result.returncode == 0, result.stderr
    result = run_cli("humor", "laughter", str(tmp_path / "eight.wav"), "--channel", "8")
    assert result.returncode == 2 and result.stderr == "error: channel 8 does not exist: the audio has 8 channel(s)\n"
