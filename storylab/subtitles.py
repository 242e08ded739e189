"""Timed subtitle lines from SRT, WebVTT and the Short Film Dataset's subtitles CSV; SRT output.

Shared by the humor wing (FunnyNet-W's text branch) and the video-QA wing (SFD prompts). The SFD
CSV (Ghermi et al. 2024) has one row per transcript segment with ``video_id, start, end, text``
(times in seconds) and, when diarised, ``speaker``; the released files are raw Whisper output
(18 columns, no speaker) or SFD's merged ``video_id,start,end,text,no_speech_prob``. Every broken input is one :class:`StorylabError` line that names the file, and
the line for a broken or backwards timestamp.
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from storylab.errors import StorylabError
from storylab.io import atomic_write_text

SFD_COLUMNS = ("text", "start", "end", "video_id")  # required; "speaker" is optional
SUBTITLE_SUFFIXES = (".srt", ".vtt")

_CLOCK = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d+))?")
_TAG = re.compile(r"\{\\[^}]*\}|<[^>]+>")  # ASS overrides such as {\an8}; <i>, <b>, WebVTT <v Name>
_ARROW = "-->"


@dataclass(frozen=True)
class Subtitle:
    """One timed subtitle line: seconds from the video's start, the text and the speaker label (may be empty)."""

    start: float
    end: float
    text: str
    speaker: str = ""


def parse_timestamp(value: str | float, path: str | os.PathLike | None = None, line: int | None = None) -> float:
    """Seconds from SRT ``HH:MM:SS,mmm``, WebVTT ``[HH:]MM:SS.mmm`` or a plain number of seconds (SFD CSV).

    The fraction may have any number of digits or be left out; minutes and seconds must be below 60.
    A broken value raises :class:`StorylabError` naming ``path`` and ``line`` when they are given.
    """
    text = str(value).strip()
    m = _CLOCK.fullmatch(text)
    if m:
        hours, minutes, seconds = int(m[1] or 0), int(m[2]), int(m[3])
        if minutes < 60 and seconds < 60:
            return hours * 3600 + minutes * 60 + seconds + float(f"0.{m[4] or 0}")
    else:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number) and number >= 0:
            return number
    where = (f" in {path}" if path is not None else "") + (f" line {line}" if line is not None else "")
    raise StorylabError(f"broken timestamp {text!r}{where}")


def format_timestamp(seconds: float) -> str:
    """Format seconds as an SRT timestamp ``HH:MM:SS,mmm``."""
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def _span(start: str, end: str, path: Path, line: int) -> tuple[float, float]:
    """Parse a start/end pair; an end before the start is an error."""
    a, b = parse_timestamp(start, path, line), parse_timestamp(end, path, line)
    if b < a:
        raise StorylabError(f"subtitle ends before it starts in {path} line {line} (end {b} is before start {a})")
    return a, b


def _read_text(path: str | os.PathLike) -> tuple[Path, str]:
    p = Path(path)
    if not p.exists():
        raise StorylabError(f"subtitle file not found: {p}")
    if p.is_dir():
        raise StorylabError(f"expected a subtitle file, got a folder: {p}")
    return p, decode_text(p.read_bytes(), p)


def decode_text(data: bytes, path: Path) -> str:
    """Text of a subtitle file: UTF-8 (with or without BOM) or UTF-16 with a BOM; anything else is a clear error.

    A Latin-1 or Windows-1252 file is not guessed at (its bytes are valid in several encodings):
    the error names the first byte that is not UTF-8 and how to convert the file.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise StorylabError(f"{path}: broken UTF-16 text at byte {exc.start}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if b"\x00" in data[:2]:
            hint = "it looks like UTF-16 without a byte-order mark; convert it, e.g. iconv -f utf-16le -t utf-8"
        else:
            hint = (f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8 (Latin-1 or Windows-1252?); "
                    "convert it, e.g. iconv -f latin1 -t utf-8")
        raise StorylabError(f"{path}: not UTF-8 text, {hint}") from None


def _parse_cues(text: str, path: Path, unescape: bool) -> list[Subtitle]:
    """Cues of an SRT or WebVTT text: a ``start --> end`` line, then text lines up to a blank line."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    subs: list[Subtitle] = []
    i = 0
    while i < len(lines):
        if _ARROW in lines[i]:
            left, right = lines[i].split(_ARROW, 1)
            right = right.strip().split(" ")[0]  # WebVTT may add cue settings after the end time
            start, end = _span(left, right, path, i + 1)
            body = []
            i += 1
            while i < len(lines) and lines[i].strip():
                body.append(_TAG.sub("", lines[i]).strip())
                i += 1
            words = " ".join(" ".join(body).split())
            if words:
                subs.append(Subtitle(start, end, html.unescape(words) if unescape else words))
        i += 1
    return sorted(subs, key=lambda s: (s.start, s.end))


def read_srt(path: str | os.PathLike) -> list[Subtitle]:
    """Read an SRT file (numbered cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` and text lines), sorted by time.

    Parsed here rather than with FFmpeg's demuxers (PyAV): FFmpeg refuses a file with a broken
    timestamp without saying where, or folds the broken cue into the previous one's text; this
    parser names the file and line. Styling tags are removed and a cue's lines joined with spaces;
    cues without text are dropped. An empty file has no cues; text without any cue is an error.
    """
    p, text = _read_text(path)
    if text.strip() and _ARROW not in text:
        raise StorylabError(f"{p}: no subtitle cues found (expected 'start --> end' lines)")
    return _parse_cues(text, p, unescape=False)


def read_vtt(path: str | os.PathLike) -> list[Subtitle]:
    """Read a WebVTT file (``WEBVTT`` header, cues ``[HH:]MM:SS.mmm --> [HH:]MM:SS.mmm [settings]``), sorted by time.

    Parsed by hand for line-numbered errors, as :func:`read_srt`; voice tags (``<v Name>``) and other
    tags are removed and character references (``&amp;``) decoded.
    """
    p, text = _read_text(path)
    if not text.lstrip().startswith("WEBVTT"):
        raise StorylabError(f"{p}: not a WebVTT file (no WEBVTT header)")
    return _parse_cues(text, p, unescape=True)


def read_subtitle_file(path: str | os.PathLike) -> list[Subtitle]:
    """Read one ``.srt`` or ``.vtt`` file, chosen by its extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".srt":
        return read_srt(path)
    if suffix == ".vtt":
        return read_vtt(path)
    raise StorylabError(f"unknown subtitle format '{suffix or Path(path).name}' (use .srt or .vtt)")


def read_sfd_csv(path: str | os.PathLike) -> dict[str, list[Subtitle]]:
    """Read an SFD subtitles CSV (``text,start,end,video_id`` [+ ``speaker``], any other columns ignored) into time-sorted lines per video.

    Times are seconds, or clock times as :func:`parse_timestamp` reads them. A broken or backwards
    time and an empty ``video_id`` are reported with the file and line.
    """
    p, text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text), restval="")
    out: dict[str, list[Subtitle]] = {}
    try:
        missing = [c for c in SFD_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise StorylabError(f"subtitles file {p} lacks column(s): {', '.join(missing)}")
        for row in reader:
            line = reader.line_num  # the row's last line in the file
            start, end = _span(row["start"], row["end"], p, line)
            video = row["video_id"].strip()
            if not video:
                raise StorylabError(f"empty video_id in subtitles file {p} line {line}")
            out.setdefault(video, []).append(Subtitle(start, end, row["text"].strip(), (row.get("speaker") or "").strip()))
    except csv.Error as exc:
        raise StorylabError(f"subtitles file {p} is not a readable CSV: {exc} (line {reader.line_num})") from None
    for lines in out.values():
        lines.sort(key=lambda s: (s.start, s.end))
    return out


def write_srt(path: str | os.PathLike, subs: Sequence[Subtitle]) -> Path:
    """Write subtitles as SRT (numbered cues, ``HH:MM:SS,mmm`` times), atomically."""
    blocks = [f"{i}\n{format_timestamp(s.start)} --> {format_timestamp(s.end)}\n{s.text}\n"
              for i, s in enumerate(subs, 1)]
    return atomic_write_text(path, "\n".join(blocks))
