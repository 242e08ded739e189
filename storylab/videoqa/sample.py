"""The shipped sample film "The Tower Clock": an original story of our own in the SFD file format.

``storylab/assets/videoqa/`` holds ``questions.csv`` (12 five-option questions with open-ended
reference answers), ``subtitles.csv`` (four scenes, four diarised speakers) and
``videos/towerclock.mp4``, a small film of simple drawn frames rendered by
:func:`render_tower_clock` so that the V and VL settings have real frames to decode. The frames
show each scene's place, characters, weather and props, so some questions can be answered from them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_VIDEO_ID = "towerclock"


@dataclass(frozen=True)
class SamplePaths:
    """Where the shipped sample's files are."""

    questions: Path
    subtitles: Path
    videos: Path


def sample_paths() -> SamplePaths:
    """Paths of the shipped sample (questions CSV, subtitles CSV, videos folder)."""
    root = Path(__file__).resolve().parent.parent / "assets" / "videoqa"
    return SamplePaths(root / "questions.csv", root / "subtitles.csv", root / "videos")


# (start s, end s, scene) of the four scenes; the subtitles of each scene fall inside its span.
SCENES = ((0.0, 59.0, "workshop"), (59.0, 118.0, "market"), (118.0, 189.0, "tower"), (189.0, 232.0, "morning"))


def _figure(draw, x: int, y: int, colour: tuple[int, int, int], name: str, scale: float = 1.0) -> None:
    """A simple character: head, body and a name label."""
    r = int(9 * scale)
    draw.ellipse([x - r, y - 3 * r, x + r, y - r], fill=(235, 200, 170))
    draw.rectangle([x - r, y - r, x + r, y + 3 * r], fill=colour)
    draw.text((x - 3 * len(name), y + 3 * r + 3), name, fill=(255, 255, 255))


def _clock(draw, cx: int, cy: int, radius: int, hours: float, face=(245, 240, 220)) -> None:
    """A clock face whose hands show ``hours`` (0-12, fractional)."""
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=face, outline=(60, 40, 20), width=2)
    minute = (hours % 1) * 2 * math.pi
    hour = (hours % 12) / 12 * 2 * math.pi
    for angle, length, width in ((hour, 0.5, 3), (minute, 0.8, 2)):
        draw.line([cx, cy, cx + radius * length * math.sin(angle), cy - radius * length * math.cos(angle)],
                  fill=(20, 20, 20), width=width)


def render_frame(t: float, width: int = 320, height: int = 180) -> np.ndarray:
    """The sample film's frame at time ``t`` seconds as an ``(H, W, 3) uint8`` array."""
    from PIL import Image, ImageDraw

    scene = next((s for a, b, s in SCENES if a <= t < b), SCENES[-1][2])
    img = Image.new("RGB", (width, height))
    d = ImageDraw.Draw(img)
    if scene == "workshop":
        d.rectangle([0, 0, width, height], fill=(120, 80, 50))
        d.rectangle([0, 125, width, height], fill=(80, 50, 30))  # workbench
        for i, cx in enumerate((40, 95, 150, 205, 260)):
            _clock(d, cx, 35, 16, 1.5 + 2.3 * i + t / 60)
        _figure(d, 110, 95, (110, 110, 110), "TOBIAS")
        _figure(d, 210, 100, (190, 40, 40), "MIRA", 0.9)
        d.text((6, 165), "The workshop - the old man's hands shake", fill=(255, 230, 180))
    elif scene == "market":
        d.rectangle([0, 0, width, 100], fill=(140, 190, 235))
        d.rectangle([0, 100, width, height], fill=(90, 150, 70))
        for i, x in enumerate((10, 120, 230)):  # stalls with striped awnings
            for k in range(4):
                d.rectangle([x + 20 * k, 40, x + 20 * k + 10, 55], fill=(220, 60, 60) if (k + i) % 2 else (250, 250, 250))
            d.rectangle([x, 55, x + 80, 95], fill=(160, 110, 60))
        _figure(d, 80, 120, (190, 40, 40), "MIRA", 0.9)
        _figure(d, 130, 128, (50, 90, 200), "JONAH", 0.7)
        d.ellipse([142, 128, 156, 140], fill=(200, 200, 210))  # the tin of buttons
        if t >= 86:
            _figure(d, 240, 120, (130, 60, 150), "MRS ALDER")
        d.text((6, 165), "The market - a tin of buttons for a kite", fill=(20, 40, 20))
    elif scene == "tower":
        d.rectangle([0, 0, width, height], fill=(15, 20, 45))
        d.rectangle([110, 20, 210, height], fill=(45, 45, 60))  # tower
        ticking = t >= 173
        _clock(d, 160, 60, 34, (11.9 + (t - 173) / 120) if ticking else 4.25)
        d.ellipse([60, 110, 90, 140], fill=(250, 210, 90))  # lantern glow
        _figure(d, 75, 150, (190, 40, 40), "MIRA", 0.6)
        _figure(d, 245, 152, (50, 90, 200), "JONAH", 0.5)
        rng = np.random.default_rng(int(t * 2))
        for x, y in rng.integers(0, [width, height], size=(60, 2)):  # rain
            d.line([int(x), int(y), int(x) - 3, int(y) + 10], fill=(150, 170, 220), width=1)
        d.text((6, 4), "The tower at night - rain", fill=(200, 210, 255))
    else:
        d.rectangle([0, 0, width, height], fill=(250, 230, 160))
        d.rectangle([40, 50, 280, 150], fill=(120, 80, 50))  # shop front
        sign = "TOBIAS & MIRA CLOCKMAKERS" if t >= 214 else "TOBIAS CLOCKMAKER"
        d.rectangle([50, 30, 270, 48], fill=(30, 60, 30))
        d.text((60, 34), sign, fill=(240, 220, 120))
        _clock(d, 290, 25, 18, 7.0 + (t - 189) / 3600)
        _figure(d, 110, 110, (110, 110, 110), "TOBIAS")
        _figure(d, 180, 115, (190, 40, 40), "MIRA", 0.9)
        if t >= 222:  # the promised kite
            d.polygon([(240, 60), (260, 85), (240, 110), (220, 85)], fill=(220, 170, 40), outline=(120, 90, 20))
        d.text((6, 165), "Morning - the clock strikes seven", fill=(60, 40, 20))
    return np.asarray(img)


def render_tower_clock(path: str | os.PathLike, fps: int = 2, width: int = 320, height: int = 180) -> Path:
    """Render the sample film to an H.264 MP4 with PyAV (atomic write); a few hundred KB at most."""
    import av

    from storylab.io import atomic_path

    duration = SCENES[-1][1]
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": "30", "preset": "veryslow"}
            for i in range(int(duration * fps)):
                frame = av.VideoFrame.from_ndarray(render_frame(i / fps, width, height), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return Path(path)
