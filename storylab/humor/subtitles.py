"""Subtitles from SRT, WebVTT or the Short Film Dataset's subtitles CSV (``text,start,end,speaker,video_id``).

FunnyNet-W's text branch reads the lines spoken inside each clip; a subtitle file is therefore parsed
into timed lines, checked against the video's duration, and the lines overlapping a window are joined.
Broken timestamps are reported with the file name and the line number.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from storylab.errors import StorylabError
from storylab.io import atomic_write_text

_TIME = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})\s*$")
_ARROW = "-->"
# A subtitle may end a little after the video (encoders round); more than this is an error.
DURATION_TOLERANCE = 1.0


@dataclass(frozen=True)
class Subtitle:
    """One timed subtitle line (seconds)."""

    start: float
    end: float
    text: str
    speaker: str = ""


def parse_timestamp(value: str, where: str = "") -> float:
    """Parse ``HH:MM:SS,mmm`` (SRT) or ``[HH:]MM:SS.mmm`` (WebVTT) into seconds."""
    m = _TIME.match(value)
    if not m:
        raise StorylabError(f"broken timestamp {value.strip()!r}{where}")
    hours = int(m.group(1) or 0)
    minutes, seconds = int(m.group(2)), int(m.group(3))
    millis = int(m.group(4).ljust(3, "0"))
    if minutes >= 60 or seconds >= 60:
        raise StorylabError(f"broken timestamp {value.strip()!r}{where}")
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def format_timestamp(seconds: float) -> str:
    """Format seconds as an SRT timestamp ``HH:MM:SS,mmm``."""
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def _parse_cues(text: str, name: str) -> list[Subtitle]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    subs: list[Subtitle] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _ARROW in line:
            where = f" in {name} line {i + 1}"
            left, right = line.split(_ARROW, 1)
            start = parse_timestamp(left, where)
            end = parse_timestamp(right.strip().split(" ")[0], where)  # WebVTT may add cue settings
            if end < start:
                raise StorylabError(f"subtitle ends before it starts ({left.strip()} --> {right.strip()}){where}")
            body = []
            i += 1
            while i < len(lines) and lines[i].strip():
                body.append(re.sub(r"<[^>]+>", "", lines[i]).strip())
                i += 1
            subs.append(Subtitle(start, end, " ".join(b for b in body if b)))
        i += 1
    return subs


def read_srt(path: str | os.PathLike) -> list[Subtitle]:
    """Read an SRT file (numbered cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` and text lines)."""
    p = _existing(path)
    subs = _parse_cues(p.read_text(encoding="utf-8-sig", errors="replace"), p.name)
    if not subs and p.read_text(encoding="utf-8-sig", errors="replace").strip():
        raise StorylabError(f"{p.name}: no subtitle cues found (expected 'start --> end' lines)")
    return subs


def read_vtt(path: str | os.PathLike) -> list[Subtitle]:
    """Read a WebVTT file (``WEBVTT`` header, cues ``MM:SS.mmm --> MM:SS.mmm``)."""
    p = _existing(path)
    text = p.read_text(encoding="utf-8-sig", errors="replace")
    if not text.lstrip().startswith("WEBVTT"):
        raise StorylabError(f"{p.name}: not a WebVTT file (no WEBVTT header)")
    return _parse_cues(text, p.name)


def read_sfd_csv(path: str | os.PathLike, video_id: str | None = None) -> list[Subtitle]:
    """Read a Short Film Dataset subtitles CSV (``text,start,end,speaker,video_id``; seconds), one video."""
    import pandas as pd

    p = _existing(path)
    try:
        df = pd.read_csv(p)
    except Exception as exc:  # pandas raises several parser errors
        raise StorylabError(f"{p.name}: unreadable CSV ({type(exc).__name__})") from exc
    missing = {"text", "start", "end"} - set(df.columns)
    if missing:
        raise StorylabError(f"{p.name}: subtitles CSV lacks column(s) {', '.join(sorted(missing))} "
                            "(expected text,start,end,speaker,video_id)")
    if video_id is not None and "video_id" in df.columns:
        df = df[df["video_id"].astype(str) == str(video_id)]
    starts = pd.to_numeric(df["start"], errors="coerce")
    ends = pd.to_numeric(df["end"], errors="coerce")
    bad = starts.isna() | ends.isna() | (ends < starts)
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0]) + 2  # header is line 1
        raise StorylabError(f"broken timestamp in {p.name} line {row}")
    speakers = df["speaker"].astype(str) if "speaker" in df.columns else [""] * len(df)
    return [Subtitle(float(s), float(e), str(t), str(sp))
            for s, e, t, sp in zip(starts, ends, df["text"].fillna(""), speakers)]


def read_subtitles(path: str | os.PathLike, video_id: str | None = None) -> list[Subtitle]:
    """Read subtitles by extension: ``.srt``, ``.vtt`` or an SFD-style ``.csv``."""
    suffix = Path(path).suffix.lower()
    if suffix == ".srt":
        return read_srt(path)
    if suffix == ".vtt":
        return read_vtt(path)
    if suffix == ".csv":
        return read_sfd_csv(path, video_id)
    raise StorylabError(f"unknown subtitle format '{suffix or Path(path).name}' (use .srt, .vtt or an SFD .csv)")


def check_against_duration(subs: Sequence[Subtitle], duration: float, name: str) -> None:
    """Raise if a subtitle ends after the video (more than a second of slack): the wrong file was given."""
    late = [s for s in subs if s.end > duration + DURATION_TOLERANCE]
    if late:
        raise StorylabError(f"{name}: subtitle at {format_timestamp(late[0].start)} ends at {late[0].end:.1f} s, "
                            f"after the video ({duration:.1f} s); is it the right subtitle file?")


def text_in_window(subs: Sequence[Subtitle], start: float, end: float) -> str:
    """Join the lines overlapping ``[start, end)``: the clip's text for FunnyNet-W's text branch."""
    return " ".join(s.text for s in subs if s.end > start and s.start < end and s.text)


def write_srt(path: str | os.PathLike, subs: Sequence[Subtitle]) -> Path:
    """Write subtitles as SRT, atomically."""
    blocks = [f"{i}\n{format_timestamp(s.start)} --> {format_timestamp(s.end)}\n{s.text}\n"
              for i, s in enumerate(subs, 1)]
    return atomic_write_text(path, "\n".join(blocks))


def find_subtitles(media: str | os.PathLike) -> Path | None:
    """The subtitle file next to a media file with the same stem (``.srt``, then ``.vtt``), if any."""
    p = Path(media)
    for suffix in (".srt", ".vtt"):
        cand = p.with_suffix(suffix)
        if cand.exists():
            return cand
    return None


def _existing(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise StorylabError(f"subtitle file not found: {p}")
    if p.is_dir():
        raise StorylabError(f"expected a subtitle file, got a folder: {p}")
    return p
