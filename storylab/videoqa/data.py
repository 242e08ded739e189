"""Short Film Dataset files: question CSVs, and subtitles from a CSV, a folder of SRT/WebVTT files or one file.

The column layout follows the public SFD / SF20K releases (Ghermi et al. 2024): one row per
question with five options and ``correct_answer`` in 0-4, and one row per subtitle segment
(WhisperX transcript, diarised speakers) with ``text, start, end, speaker, video_id``.
The subtitle formats are read by :mod:`storylab.subtitles`. Every problem in a file is reported
as one :class:`StorylabError` line that names the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from storylab.errors import StorylabError
from storylab.subtitles import SUBTITLE_SUFFIXES, Subtitle, read_sfd_csv, read_subtitle_file

QUESTION_COLUMNS = ("question_id", "video_id", "question", "answer",
                    "option_0", "option_1", "option_2", "option_3", "option_4", "correct_answer")
OPTIONAL_QUESTION_COLUMNS = ("video_url", "correct_letter", "movie_title", "movie_caption", "movie_synopsis")
LETTERS = "ABCDE"


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


def load_subtitles(path: str | os.PathLike) -> dict[str, list[Subtitle]]:
    """Subtitles per video from an SFD subtitles CSV, a folder of ``<video_id>.srt|.vtt`` files, or one such file.

    A subtitle file without any cue is refused: its film would silently get no subtitles.
    """
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in SUBTITLE_SUFFIXES)
        if not files:
            raise StorylabError(f"subtitle folder {p} has no .srt or .vtt files")
    elif p.suffix.lower() in SUBTITLE_SUFFIXES:
        files = [p]
    else:
        return read_sfd_csv(p)
    out: dict[str, list[Subtitle]] = {}
    for f in files:
        if f.stem in out:
            raise StorylabError(f"subtitle folder {p} has two files for video {f.stem}")
        out[f.stem] = read_subtitle_file(f)
        if not out[f.stem]:
            raise StorylabError(f"subtitle file {f} has no subtitle cues")
    return out


def check_subtitle_videos(subtitles: dict[str, list[Subtitle]], questions: list[Question], source: str) -> None:
    """Refuse subtitles for videos that no question refers to (usually a mismatched pair of files)."""
    known = {q.video_id for q in questions}
    unknown = sorted(set(subtitles) - known)
    if unknown:
        more = f" (and {len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise StorylabError(f"subtitles {source} name video(s) with no question: {', '.join(unknown[:3])}{more} "
                             "(pass --ignore-extra-subtitles if that is intended)")
