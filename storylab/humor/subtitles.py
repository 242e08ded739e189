"""Humor's use of subtitles: one video's lines, checked against its duration, joined per clip window.

FunnyNet-W's text branch reads the lines spoken inside each clip. The formats (SRT, WebVTT, the
Short Film Dataset's subtitles CSV) are read by :mod:`storylab.subtitles`; this module picks the
file next to a video, checks the lines against the video's duration and joins those in a window.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from storylab.errors import StorylabError
from storylab.subtitles import SUBTITLE_SUFFIXES, Subtitle, format_timestamp, read_sfd_csv, read_subtitle_file

# A subtitle may end a little after the video (encoders round); more than this is an error.
DURATION_TOLERANCE = 1.0


def read_subtitles(path: str | os.PathLike, video_id: str) -> list[Subtitle]:
    """One video's lines from a ``.srt`` or ``.vtt`` file, or from an SFD ``.csv`` (the rows of ``video_id``; none if it has no rows)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return read_sfd_csv(path).get(video_id, [])
    if suffix in SUBTITLE_SUFFIXES:
        return read_subtitle_file(path)
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


def find_subtitles(media: str | os.PathLike) -> Path | None:
    """The subtitle file next to a media file with the same stem (``.srt``, then ``.vtt``), if any."""
    for suffix in SUBTITLE_SUFFIXES:
        cand = Path(media).with_suffix(suffix)
        if cand.exists():
            return cand
    return None
