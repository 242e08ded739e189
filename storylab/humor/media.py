"""Media input and output with PyAV: audio at 16 kHz with its channels kept, frames at a chosen rate.

FunnyNet-W (Liu, Courant, Kalogeiton, IJCV 2024) works on 16 kHz audio and on frames sampled from the
clip; the laughter detector needs the stereo channels separately (the L - R trick), so decoding never
downmixes. Every failure a user can cause (missing file, no audio stream, corrupt or truncated
container) becomes one :class:`StorylabError` line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from storylab.errors import StorylabError
from storylab.io import atomic_path, check_input_file

SAMPLE_RATE = 16_000
MEDIA_SUFFIXES = (".mp4", ".mkv", ".webm", ".wav", ".m4a", ".mov", ".avi", ".mp3", ".ogg", ".flac")


@dataclass
class AudioTrack:
    """Decoded audio: ``samples`` (C, N) float32 in [-1, 1] at ``sample_rate``; ``layout`` as FFmpeg names it."""

    samples: np.ndarray
    sample_rate: int
    layout: str

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[1] / self.sample_rate

    def mono(self) -> np.ndarray:
        """The full mix averaged over channels, (N,)."""
        return self.samples.mean(axis=0)


@dataclass
class Frames:
    """Frames sampled at a fixed rate: ``images`` (T, H, W, 3) uint8 RGB and their ``times`` in seconds."""

    images: np.ndarray
    times: np.ndarray
    fps: float


def _open(path: str | os.PathLike):
    import av

    p = Path(path)
    if not p.exists():
        raise StorylabError(f"media file not found: {p}")
    if p.is_dir():
        raise StorylabError(f"expected a media file, got a folder: {p}")
    check_input_file(p)  # a FIFO or a device inside a folder of media would block FFmpeg
    try:
        return av.open(str(p))
    except av.FFmpegError as exc:
        raise StorylabError(f"cannot read {p.name}: not a media file or a corrupt container ({exc.strerror or type(exc).__name__})") from exc


def media_duration(path: str | os.PathLike) -> float:
    """Duration of a media file in seconds (container duration, else the longest stream)."""
    with _open(path) as container:
        return media_duration_from(container)


def has_audio(path: str | os.PathLike) -> bool:
    """Whether the file has at least one audio stream."""
    return has_stream(path, "audio")


def has_stream(path: str | os.PathLike, kind: str) -> bool:
    """Whether the file has at least one stream of ``kind`` ("audio" or "video")."""
    with _open(path) as container:
        return len(getattr(container.streams, kind)) > 0


# full scale of each integer sample format FFmpeg decodes to (24-bit PCM arrives as s32, low byte zero)
_FULL_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2.0 ** 31, "s64": 2.0 ** 63}


def frame_samples(frame) -> np.ndarray:
    """A decoded audio frame as (C, N) float32 in [-1, 1], whatever its sample format and channel count.

    Packed formats (``s16``: L R L R ...) are de-interleaved, planar ones (``s16p``) taken as they
    are; unsigned 8-bit is centred on 128. Done here rather than by FFmpeg's resampler so that no
    channel layout (8, 12, 32 channels, or an unnamed one) ever has to be understood by it.
    """
    fmt = frame.format.name
    base = fmt[:-1] if frame.format.is_planar else fmt
    channels = len(frame.layout.channels)
    raw = frame.to_ndarray()
    data = raw if frame.format.is_planar else raw.reshape(-1, channels).T
    if base in ("flt", "dbl"):
        return data.astype(np.float32, copy=False)
    if base not in _FULL_SCALE:
        raise StorylabError(f"unsupported audio sample format {fmt!r}")
    out = data.astype(np.float64)
    if base == "u8":
        out -= 128.0
    return (out / _FULL_SCALE[base]).astype(np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> AudioTrack:
    """Decode the first audio stream at ``sample_rate`` with every channel kept (FunnyNet-W, 16 kHz).

    Any channel count and any PCM or float WAV (8/16/24/32-bit, float, double) decodes: samples are
    converted by :func:`frame_samples` and each channel is resampled on its own by a mono FFmpeg
    resampler (the same filter a multi-channel resampler applies to every channel).
    """
    import av

    p = Path(path)
    with _open(p) as container:
        if not container.streams.audio:
            raise StorylabError(f"{p.name} has no audio stream; laughter detection and FunnyNet-W need the sound track")
        stream = container.streams.audio[0]
        layout = stream.layout.name if stream.layout is not None else "mono"
        channels = stream.channels or 1
        if layout in ("", "unknown") or layout.endswith("channels") or "(" in layout:
            layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
        per_channel: list[list[np.ndarray]] = []  # resampled pieces of each channel
        resamplers: list = []
        source_rate = 0
        try:
            for frame in container.decode(stream):
                block = frame_samples(frame)  # (C, n) at the source rate
                if not per_channel:
                    source_rate, channels = int(frame.sample_rate), block.shape[0]
                    per_channel = [[] for _ in range(channels)]
                    if source_rate != sample_rate:
                        resamplers = [av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
                                      for _ in range(channels)]
                if block.shape[0] != channels:
                    raise StorylabError(f"cannot decode the audio of {p.name}: the channel count changes mid-stream")
                for c in range(channels):
                    if not resamplers:
                        per_channel[c].append(block[c])
                        continue
                    mono = av.AudioFrame.from_ndarray(np.ascontiguousarray(block[c:c + 1]), format="flt", layout="mono")
                    mono.sample_rate = source_rate
                    per_channel[c].extend(out.to_ndarray()[0] for out in resamplers[c].resample(mono))
            for c, resampler in enumerate(resamplers):  # flush each resampler's delay line
                per_channel[c].extend(out.to_ndarray()[0] for out in resampler.resample(None))
        except av.FFmpegError as exc:
            raise StorylabError(f"cannot decode the audio of {p.name}: corrupt or truncated file ({exc.strerror or type(exc).__name__})") from exc
    tracks = [np.concatenate(pieces) if pieces else np.zeros(0, np.float32) for pieces in per_channel]
    n = min((len(t) for t in tracks), default=0)
    if n == 0:
        raise StorylabError(f"{p.name}: the audio stream decoded to nothing (empty or truncated file)")
    samples = np.stack([t[:n] for t in tracks]).astype(np.float32, copy=False)  # (C, N)
    return AudioTrack(samples=np.ascontiguousarray(samples), sample_rate=sample_rate, layout=layout)


def load_frames(path: str | os.PathLike, fps: float = 2.0, size: int | None = None,
                start: float = 0.0, end: float | None = None) -> Frames:
    """Sample RGB frames at ``fps`` (nearest earlier decoded frame), optionally resized to ``size`` x ``size``."""
    import av

    p = Path(path)
    if fps <= 0:
        raise StorylabError(f"frame rate must be positive, got {fps}")
    with _open(p) as container:
        if not container.streams.video:
            raise StorylabError(f"{p.name} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        total = media_duration_from(container)
        end = total if end is None else min(end, total)
        targets = np.arange(start, end - 1e-9, 1.0 / fps) if end > start else np.zeros(0)
        images: list[np.ndarray] = []
        times: list[float] = []
        k = 0
        last = None
        try:
            if start > 0:
                container.seek(int(start * 1_000_000), any_frame=False, backward=True)
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else 0.0
                while k < len(targets) and targets[k] < t - 1e-6:
                    if last is not None:
                        images.append(last)
                        times.append(float(targets[k]))
                    k += 1
                if k >= len(targets):
                    break
                img = frame.to_ndarray(format="rgb24") if size is None else \
                    frame.reformat(width=size, height=size, format="rgb24").to_ndarray()
                last = img
            while k < len(targets) and last is not None:  # frames after the last decoded one
                images.append(last)
                times.append(float(targets[k]))
                k += 1
        except av.FFmpegError as exc:
            raise StorylabError(f"cannot decode the video of {p.name}: corrupt or truncated file ({exc.strerror or type(exc).__name__})") from exc
    if not images:
        raise StorylabError(f"{p.name}: no frames could be decoded")
    return Frames(images=np.stack(images), times=np.asarray(times), fps=fps)


def media_duration_from(container) -> float:
    """Duration of an open container in seconds."""
    if container.duration:
        return container.duration / 1_000_000
    best = 0.0
    for stream in container.streams:
        if stream.duration and stream.time_base:
            best = max(best, float(stream.duration * stream.time_base))
    return best


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write (C, N) float audio as 16-bit PCM WAV with PyAV, atomically."""
    import av

    samples = np.atleast_2d(samples)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(pcm.shape[0])
    if layout is None:
        raise StorylabError(f"cannot write {pcm.shape[0]} channels to WAV (use 1, 2 or 6)")
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="wav") as out:
            stream = out.add_stream("pcm_s16le", rate=sample_rate, layout=layout)
            frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), format="s16", layout=layout)
            frame.sample_rate = sample_rate
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    return Path(path)


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int, audio: np.ndarray | None,
                sample_rate: int = SAMPLE_RATE, crf: int = 28) -> Path:
    """Encode RGB frames (H.264) and (C, N) audio (AAC) into an mp4/mkv, atomically."""
    import av

    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w") as out:
            vstream = None
            astream = None
            if audio is not None:
                audio = np.atleast_2d(audio).astype(np.float32)
                layout = {1: "mono", 2: "stereo"}[audio.shape[0]]
                astream = out.add_stream("aac", rate=sample_rate, layout=layout)
                astream.bit_rate = 128_000
            for i, img in enumerate(frames):
                if vstream is None:
                    vstream = out.add_stream("libx264", rate=Fraction(fps))
                    vstream.height, vstream.width = int(img.shape[0]), int(img.shape[1])
                    vstream.pix_fmt = "yuv420p"
                    vstream.options = {"crf": str(crf), "preset": "veryfast"}
                    vstream.thread_count = 1
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts = i
                for packet in vstream.encode(frame):
                    out.mux(packet)
            if vstream is not None:
                for packet in vstream.encode(None):
                    out.mux(packet)
            if astream is not None:
                block = 1024
                for j, s in enumerate(range(0, audio.shape[1], block)):
                    part = np.ascontiguousarray(audio[:, s:s + block])
                    frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=astream.layout.name)
                    frame.sample_rate = sample_rate
                    frame.pts = s
                    for packet in astream.encode(frame):
                        out.mux(packet)
                for packet in astream.encode(None):
                    out.mux(packet)
    return Path(path)
