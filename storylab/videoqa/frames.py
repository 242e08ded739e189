"""Uniform frame sampling from a film with PyAV, as the SFD protocol feeds frames to VLMs.

SFD samples N frames uniformly over the whole film (``linspace`` over frame indices; 8 by default,
up to 512). Frames are found by seeking to each target time and decoding forward, so a 13-minute
film costs N seeks rather than a full decode.
"""

from __future__ import annotations

import base64
import io
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from storylab.errors import StorylabError
from storylab.io import safe_id, safe_join

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")


def find_video(videos_dir: str | os.PathLike, video_id: str) -> Path:
    """The file ``<videos_dir>/<video_id>.<ext>`` (or under a ``<N>p/`` resolution folder such as ``360p/``,
    as SF20K's downloader writes); a clear error if absent. The id is only ever a file-name stem."""
    folder = Path(videos_dir)
    safe_id(video_id, "video_id")
    places = [folder] + sorted((d for d in folder.glob("*p") if d.is_dir() and d.name[:-1].isdigit()),
                               key=lambda d: int(d.name[:-1]))
    for place in places:
        for suffix in VIDEO_SUFFIXES:
            candidate = safe_join(place, video_id, suffix, "video_id")
            if candidate.is_file():
                return candidate
    raise StorylabError(f"no video file for video_id {video_id} in {folder} (looked for {video_id}"
                        f"{{{','.join(VIDEO_SUFFIXES)}}}, also under <N>p/ folders)")


def sample_frame_times(duration: float, num_frames: int, fps: float) -> np.ndarray:
    """Times (s) of ``num_frames`` frames picked by ``linspace`` over the film's frame indices (SFD)."""
    total = max(int(round(duration * fps)), 1)
    indices = np.linspace(0, total - 1, num_frames).round().astype(int)
    return indices / fps


def sample_frames(path: str | os.PathLike, num_frames: int = 8, max_side: int = 512) -> list[np.ndarray]:
    """Decode ``num_frames`` uniformly spaced RGB frames ``(H, W, 3) uint8``, longer side <= ``max_side``."""
    import av

    if num_frames < 1:
        raise StorylabError(f"number of frames must be >= 1, got {num_frames}")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise StorylabError(f"video {path} cannot be opened: {exc}") from None
    with container:
        if not container.streams.video:
            raise StorylabError(f"video {path} has no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            raise StorylabError(f"video {path} has no known duration")
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        w, h = stream.codec_context.width, stream.codec_context.height
        scale = min(1.0, max_side / max(w, h))
        size = (max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2))
        frames = []
        try:
            for t in sample_frame_times(duration, num_frames, fps):
                target = start + t
                container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
                chosen = None
                for frame in container.decode(stream):
                    chosen = frame
                    if frame.time is not None and frame.time >= target - 0.5 / fps:
                        break
                if chosen is None:
                    raise StorylabError(f"video {path}: no frame decodes near {t:.2f} s")
                frames.append(chosen.to_ndarray(format="rgb24", width=size[0], height=size[1]))
        except av.error.FFmpegError as exc:
            raise StorylabError(f"video {path} cannot be decoded: {exc}") from None
    return frames


def encode_jpeg_base64(frame: np.ndarray, quality: int = 85) -> str:
    """A frame as a base64 JPEG string, the payload of an OpenAI-style ``image_url`` data URL."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return base64.b64encode(buf.getvalue()).decode("ascii")


class FrameCache:
    """Frames per film, decoded once and shared by all questions about it (a small LRU, thread-safe)."""

    def __init__(self, videos_dir: str | os.PathLike, num_frames: int = 8, max_side: int = 512, capacity: int = 4) -> None:
        self.videos_dir, self.num_frames, self.max_side, self.capacity = Path(videos_dir), num_frames, max_side, capacity
        self._items: OrderedDict[str, list[np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def frames(self, video_id: str) -> list[np.ndarray]:
        """The sampled frames of ``video_id`` (decoded on first use)."""
        with self._lock:
            if video_id in self._items:
                self._items.move_to_end(video_id)
                return self._items[video_id]
            frames = sample_frames(find_video(self.videos_dir, video_id), self.num_frames, self.max_side)
            self._items[video_id] = frames
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
            return frames
