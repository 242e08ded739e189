"""Short Film Dataset files: question CSVs, subtitle CSVs, SRT/WebVTT subtitle files.

The column layout follows the public SFD / SF20K releases (Ghermi et al. 2024): one row per
question with five options and ``correct_answer`` in 0-4, and one row per subtitle segment
(WhisperX transcript, diarised speakers) with ``text, start, end, speaker, video_id``.
Every problem in a file is reported as one :class:`StorylabError` line that names the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from storylab.errors import StorylabError

QUESTION_COLUMNS = ("question_id", "video_id", "question", "answer",
                    "option_0", "option_1", "option_2", "option_3", "option_4", "correct_answer")
OPTIONAL_QUESTION_COLUMNS = ("video_url", "correct_letter", "movie_title", "movie_caption", "movie_synopsis")
SUBTITLE_COLUMNS = ("text", "start", "end", "speaker", "video_id")
LETTERS = "ABCDE"
SUBTITLE_FILE_SUFFIXES = (".srt", ".vtt")


@dataclass(frozen=True)
class SubtitleLine:
    """One transcript segment: seconds from the film's start, the speaker label and the text."""

    start: float
    end: float
    text: str
    speaker: str = ""


@dataclass(frozen=True)
class Question:
    """One SFD question with its five options and the index (0-4) of the correct one."""

    question_id: str
    video_id: str
    question: str
    answer: str
    options: tuple[str, ...]
    correct_answer: int
    movie_title: str = ""
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def correct_letter(self) -> str:
        """The letter A-E of the correct option."""
        return LETTERS[self.correct_answer]


def _read_csv(path: str | os.PathLike, what: str) -> pd.DataFrame:
    """Read a CSV as strings (empty cells become ""); one clear error for a missing or unreadable file."""
    p = Path(path)
    if not p.is_file():
        raise StorylabError(f"{what} file not found: {p}")
    try:
        return pd.read_csv(p, dtype=object, keep_default_na=False)  # plain str cells: fast to iterate
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorylabError(f"{what} file {p} is not a readable CSV: {first}") from None


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], path: str | os.PathLike, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise StorylabError(f"{what} file {path} lacks column(s): {', '.join(missing)}")


def load_questions(path: str | os.PathLike) -> list[Question]:
    """Read an SFD/SF20K question CSV into :class:`Question` records, checking every row.

    Required: ``question_id, video_id, question, answer, option_0..option_4, correct_answer``
    (an integer 0-4); optional ``correct_letter`` must agree with ``correct_answer``. Question ids
    must be unique and options non-empty.
    """
    df = _read_csv(path, "questions")
    _require_columns(df, QUESTION_COLUMNS, path, "questions")
    if len(df) == 0:
        raise StorylabError(f"questions file {path} has no rows")
    dup = df["question_id"][df["question_id"].duplicated()].tolist()
    if dup:
        raise StorylabError(f"questions file {path} has duplicate question_id(s): {', '.join(map(str, dup[:5]))}")
    questions = []
    for i, row in enumerate(df.to_dict("records")):
        line = i + 2  # header is line 1
        qid = str(row["question_id"]).strip()
        if not qid or not str(row["video_id"]).strip():
            raise StorylabError(f"questions file {path} line {line}: empty question_id or video_id")
        raw = str(row["correct_answer"]).strip()
        try:
            correct = int(float(raw))
            if float(raw) != correct:
                raise ValueError
        except ValueError:
            raise StorylabError(f"questions file {path} line {line} ({qid}): correct_answer {raw!r} is not an integer 0-4") from None
        if not 0 <= correct <= 4:
            raise StorylabError(f"questions file {path} line {line} ({qid}): correct_answer {correct} is outside 0-4")
        options = tuple(str(row[f"option_{k}"]).strip() for k in range(5))
        if any(not o for o in options):
            raise StorylabError(f"questions file {path} line {line} ({qid}): empty option")
        letter = str(row.get("correct_letter", "") or "").strip().upper()
        if letter and letter != LETTERS[correct]:
            raise StorylabError(f"questions file {path} line {line} ({qid}): correct_letter {letter} disagrees "
                                f"with correct_answer {correct} ({LETTERS[correct]})")
        extra = {c: str(row[c]) for c in OPTIONAL_QUESTION_COLUMNS if c in row and row[c]}
        questions.append(Question(question_id=qid, video_id=str(row["video_id"]).strip(),
                                  question=str(row["question"]).strip(), answer=str(row["answer"]).strip(),
                                  options=options, correct_answer=correct,
                                  movie_title=str(row.get("movie_title", "") or ""), extra=extra))
    return questions


def parse_timestamp(value: str) -> float:
    """Seconds from a subtitle time: a number of seconds, or ``[HH:]MM:SS[.,mmm]``."""
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = re.fullmatch(r"(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:[.,]\d+)?)", text)
    if not m:
        raise ValueError(text)
    hours = int(m.group(1) or 0)
    return hours * 3600 + int(m.group(2)) * 60 + float(m.group(3).replace(",", "."))


def load_subtitles_csv(path: str | os.PathLike) -> dict[str, list[SubtitleLine]]:
    """Read an SFD subtitle CSV (``text,start,end,speaker,video_id``) into time-sorted lines per video."""
    df = _read_csv(path, "subtitles")
    _require_columns(df, SUBTITLE_COLUMNS, path, "subtitles")
    out: dict[str, list[SubtitleLine]] = {}
    for i, row in enumerate(df.to_dict("records")):
        try:
            start, end = parse_timestamp(row["start"]), parse_timestamp(row["end"])
        except ValueError as exc:
            raise StorylabError(f"subtitles file {path} line {i + 2}: bad time {exc.args[0]!r}") from None
        if end < start:
            raise StorylabError(f"subtitles file {path} line {i + 2}: end {end} is before start {start}")
        vid = str(row["video_id"]).strip()
        if not vid:
            raise StorylabError(f"subtitles file {path} line {i + 2}: empty video_id")
        out.setdefault(vid, []).append(SubtitleLine(start, end, str(row["text"]).strip(), str(row["speaker"]).strip()))
    for lines in out.values():
        lines.sort(key=lambda s: (s.start, s.end))
    return out


_ASS_TAG = re.compile(r"\{\\[^}]*\}|<[^>]+>")


def load_subtitle_file(path: str | os.PathLike) -> list[SubtitleLine]:
    """Read one SRT or WebVTT file with FFmpeg's subtitle demuxers (through PyAV).

    FFmpeg turns each cue into an ASS dialogue line; styling tags are removed. SRT has no speaker
    field and FFmpeg drops WebVTT voice tags, so ``speaker`` is empty for these files.
    """
    import av

    p = Path(path)
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, OSError) as exc:
        raise StorylabError(f"subtitle file {p} cannot be read: {exc}") from None
    lines = []
    with container:
        if not container.streams.subtitles:
            raise StorylabError(f"subtitle file {p} has no subtitle stream")
        stream = container.streams.subtitles[0]
        tb = float(stream.time_base)
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            for sub in packet.decode():
                text = sub.dialogue.decode("utf-8", "replace") if hasattr(sub, "dialogue") else str(sub)
                text = " ".join(_ASS_TAG.sub("", text).replace("\\N", "\n").split())
                if text:
                    start = packet.pts * tb
                    lines.append(SubtitleLine(start, start + (packet.duration or 0) * tb, text))
    lines.sort(key=lambda s: (s.start, s.end))
    return lines


def load_subtitles(path: str | os.PathLike) -> dict[str, list[SubtitleLine]]:
    """Subtitles per video from an SFD CSV, or from a folder of ``<video_id>.srt|.vtt`` files."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in SUBTITLE_FILE_SUFFIXES)
        if not files:
            raise StorylabError(f"subtitle folder {p} has no .srt or .vtt files")
        out: dict[str, list[SubtitleLine]] = {}
        for f in files:
            if f.stem in out:
                raise StorylabError(f"subtitle folder {p} has two files for video {f.stem}")
            out[f.stem] = load_subtitle_file(f)
        return out
    if p.suffix.lower() in SUBTITLE_FILE_SUFFIXES:
        return {p.stem: load_subtitle_file(p)}
    return load_subtitles_csv(p)


def check_subtitle_videos(subtitles: dict[str, list[SubtitleLine]], questions: list[Question], source: str) -> None:
    """Refuse subtitles for videos that no question refers to (usually a mismatched pair of files)."""
    known = {q.video_id for q in questions}
    unknown = sorted(set(subtitles) - known)
    if unknown:
        more = f" (and {len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise StorylabError(f"subtitles {source} name video(s) with no question: {', '.join(unknown[:3])}{more} "
                             "(pass --ignore-extra-subtitles if that is intended)")
