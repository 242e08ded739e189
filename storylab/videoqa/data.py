"""Short Film Dataset files: question CSVs, and subtitles from a CSV, a folder of SRT/WebVTT files or one file.

The column layouts follow the public SFD / SF20K releases (Ghermi et al. 2024): questions with an
open-ended reference ``answer``, five options and ``correct_answer`` in 0-4, or both (the Hugging Face
export); subtitles as one row per segment, from raw Whisper output (18 columns, no speaker), SFD's
merged ``video_id,start,end,text,no_speech_prob`` or a diarised CSV with a ``speaker`` column.
The subtitle formats are read by :mod:`storylab.subtitles`. Every problem in a file is reported
as one :class:`StorylabError` line that names the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from storylab.errors import StorylabError
from storylab.io import safe_id
from storylab.subtitles import SUBTITLE_SUFFIXES, Subtitle, read_sfd_csv, read_subtitle_file

BASE_COLUMNS = ("question_id", "video_id", "question")
OPTION_COLUMNS = tuple(f"option_{k}" for k in range(5))
QUESTION_COLUMNS = BASE_COLUMNS + ("answer",) + OPTION_COLUMNS + ("correct_answer",)
OPTIONAL_QUESTION_COLUMNS = ("video_url", "correct_letter", "movie_title", "movie_caption", "movie_synopsis")
LETTERS = "ABCDE"


@dataclass(frozen=True)
class Question:
    """One SFD / SF20K question: its five options and the index (0-4) of the correct one (MCQA),
    its reference answer (OEQA), or both. OEQA-only rows have no options and ``correct_answer`` None."""

    question_id: str
    video_id: str
    question: str
    answer: str
    options: tuple[str, ...] = ()
    correct_answer: int | None = None
    movie_title: str = ""
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def correct_letter(self) -> str | None:
        """The letter A-E of the correct option (None for an open-ended-only question)."""
        return None if self.correct_answer is None else LETTERS[self.correct_answer]

    @property
    def has_mcqa(self) -> bool:
        """Whether the question has five options and a known correct one."""
        return len(self.options) == 5 and self.correct_answer is not None


def check_video_id(video_id: str, where: str) -> str:
    """Refuse a video id that could leave the videos folder (:func:`storylab.io.safe_id`); ids may start with - or _."""
    return safe_id(video_id, f"video_id in {where}")


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


def _correct_index(row: dict, path, line: int, qid: str) -> int | None:
    """``correct_answer`` (0-4) or, when it is empty, ``correct_letter`` (A-E); None when both are empty."""
    raw = str(row.get("correct_answer", "") or "").strip()
    letter = str(row.get("correct_letter", "") or "").strip().upper()
    if not raw:
        if not letter:
            return None
        if letter not in LETTERS:
            raise StorylabError(f"questions file {path} line {line} ({qid}): correct_letter {letter!r} is not A-E")
        return LETTERS.index(letter)
    try:
        correct = int(float(raw))
        if float(raw) != correct:
            raise ValueError
    except ValueError:
        raise StorylabError(f"questions file {path} line {line} ({qid}): correct_answer {raw!r} is not an integer 0-4") from None
    if not 0 <= correct <= 4:
        raise StorylabError(f"questions file {path} line {line} ({qid}): correct_answer {correct} is outside 0-4")
    if letter and letter != LETTERS[correct]:
        raise StorylabError(f"questions file {path} line {line} ({qid}): correct_letter {letter} disagrees "
                            f"with correct_answer {correct} ({LETTERS[correct]})")
    return correct


def load_questions(path: str | os.PathLike, task: str | None = None) -> list[Question]:
    """Read an SFD / SF20K question CSV into :class:`Question` records, checking every row.

    Every released layout loads: the open-ended release (``question_id, video_id, question, answer``,
    e.g. SF20K's ``gt_samples.csv`` and expert test set), the multiple-choice files with
    ``option_0..option_4`` and ``correct_answer`` (0-4), and the Hugging Face export that has both
    plus ``video_url`` and ``correct_letter``, where open-ended rows leave ``correct_answer`` empty.
    ``task="mcqa"`` keeps the rows with options and a correct answer, ``task="oeqa"`` those with a
    reference answer (a combined export holds both kinds); a file with none is an error. Question ids
    must be unique; video ids may start with ``-`` or ``_`` and never contain a path separator.
    """
    df = _read_csv(path, "questions")
    _require_columns(df, BASE_COLUMNS, path, "questions")
    has_answer = "answer" in df.columns
    present = [c for c in OPTION_COLUMNS if c in df.columns]
    if present and len(present) < 5:
        _require_columns(df, OPTION_COLUMNS, path, "questions")
    has_options = bool(present)
    if not has_options and not has_answer:
        raise StorylabError(f"questions file {path} has neither options (option_0..option_4) nor answers (answer); "
                            "it cannot be scored")
    if has_options and "correct_answer" not in df.columns and "correct_letter" not in df.columns:
        _require_columns(df, ("correct_answer",), path, "questions")
    if task == "mcqa" and not has_options:
        raise StorylabError(f"questions file {path} has no options (option_0..option_4): it is an open-ended "
                            "question set; use --task oeqa")
    if task == "oeqa" and not has_answer:
        raise StorylabError(f"questions file {path} has no answer column: it cannot be judged open-ended; use --task mcqa")
    if len(df) == 0:
        raise StorylabError(f"questions file {path} has no rows")
    dup = df["question_id"][df["question_id"].duplicated()].tolist()
    if dup:
        raise StorylabError(f"questions file {path} has duplicate question_id(s): {', '.join(map(str, dup[:5]))}")
    questions = []
    for i, row in enumerate(df.to_dict("records")):
        line = i + 2  # header is line 1
        qid = str(row["question_id"]).strip()
        video = str(row["video_id"]).strip()
        if not qid or not video:
            raise StorylabError(f"questions file {path} line {line}: empty question_id or video_id")
        check_video_id(video, f"questions file {path} line {line}")
        options: tuple[str, ...] = ()
        correct = None
        if has_options:
            options = tuple(str(row[c]).strip() for c in OPTION_COLUMNS)
            correct = _correct_index(row, path, line, qid)
            if not any(options) and correct is None:
                options = ()  # an open-ended row of the combined export
            elif any(not o for o in options):
                raise StorylabError(f"questions file {path} line {line} ({qid}): empty option")
            elif correct is None:
                raise StorylabError(f"questions file {path} line {line} ({qid}): options without correct_answer")
        answer = str(row.get("answer", "") or "").strip()
        if (task == "mcqa" and correct is None) or (task == "oeqa" and not answer):
            continue  # a row of the other task in a combined export
        extra = {c: str(row[c]) for c in OPTIONAL_QUESTION_COLUMNS if c in row and row[c]}
        questions.append(Question(question_id=qid, video_id=video, question=str(row["question"]).strip(),
                                  answer=answer, options=options, correct_answer=correct,
                                  movie_title=str(row.get("movie_title", "") or ""), extra=extra))
    if not questions:
        need = "options and a correct_answer" if task == "mcqa" else "a reference answer"
        raise StorylabError(f"questions file {path}: no row has {need}; it has no {task.upper()} questions")
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
        out = read_sfd_csv(p)
        for video in out:
            check_video_id(video, f"subtitles file {p}")
        return out
    out: dict[str, list[Subtitle]] = {}
    for f in files:
        if f.stem in out:
            raise StorylabError(f"subtitle folder {p} has two files for video {f.stem}")
        out[f.stem] = read_subtitle_file(f)
        if not out[f.stem]:
            raise StorylabError(f"subtitle file {f} has no subtitle cues")
    return out


def check_subtitle_videos(subtitles: dict[str, list[Subtitle]], questions: list[Question], source: str) -> list[str]:
    """The subtitled videos no question refers to; refused when the pair of files looks mismatched.

    Subtitles for more films than the questions ask about are normal (SF20K releases the subtitles
    of every test film, its expert questions cover a subset): those films are returned, unused. The
    pair is refused when subtitles name films with no question *and* some question's film has no
    subtitles, which is what a subtitles file of another split looks like.
    """
    known = {q.video_id for q in questions}
    unknown = sorted(set(subtitles) - known)
    uncovered = sorted(known - set(subtitles))
    if unknown and uncovered:
        def listed(ids: list[str]) -> str:
            return ", ".join(ids[:3]) + (f" (and {len(ids) - 3} more)" if len(ids) > 3 else "")
        raise StorylabError(f"subtitles {source} name video(s) with no question: {listed(unknown)}, and miss "
                            f"{len(uncovered)} film(s) the questions ask about: {listed(uncovered)}; are they of "
                            "another split? (pass --ignore-extra-subtitles if that is intended)")
    return unknown
