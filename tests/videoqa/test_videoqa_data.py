"""SFD files: questions CSV, subtitles from a CSV / folder / file, and one clear error per bad input."""

from __future__ import annotations

import pytest

from storylab.errors import StorylabError
from storylab.subtitles import Subtitle
from storylab.videoqa.data import check_subtitle_videos, load_questions, load_subtitles
from storylab.videoqa.sample import sample_paths
from videoqa_helpers import HEADER, question_row, write_questions


def test_shipped_sample_is_valid_sfd():
    paths = sample_paths()
    questions = load_questions(paths.questions)
    subs = load_subtitles(paths.subtitles)
    assert len(questions) >= 10
    assert all(len(q.options) == 5 and q.answer for q in questions)
    assert len({q.correct_answer for q in questions}) == 5  # every letter is the right one somewhere
    assert set(subs) == {"towerclock"} and len({s.speaker for s in subs["towerclock"]}) >= 3
    check_subtitle_videos(subs, questions, "sample")
    assert (paths.videos / "towerclock.mp4").stat().st_size < 400_000


def test_question_fields_round_trip(tmp_path):
    path = write_questions(tmp_path / "q.csv", [question_row("a_01", correct=3)])
    (q,) = load_questions(path)
    assert q.question_id == "a_01" and q.options[3] == "doors" and q.correct_letter == "D"


@pytest.mark.parametrize("rows, message", [
    ([question_row("a", correct=7)], "correct_answer 7 is outside 0-4"),
    ([question_row("a", correct="x")], "is not an integer 0-4"),
    ([question_row("a"), question_row("a")], "duplicate question_id(s): a"),
    ([], "has no rows"),
])
def test_bad_questions_are_one_clear_error(tmp_path, rows, message):
    path = write_questions(tmp_path / "q.csv", rows)
    with pytest.raises(StorylabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_questions(path)


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(",".join(h for h in HEADER if h not in ("option_4", "answer")) + "\n")
    with pytest.raises(StorylabError, match="lacks column\\(s\\): option_4$"):
        load_questions(path)
    with pytest.raises(StorylabError, match="not found"):
        load_questions(tmp_path / "nope.csv")


def test_correct_letter_must_agree(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text(",".join(HEADER + ["correct_letter"]) + "\n" + ",".join(map(str, question_row("a", correct=1))) + ",C\n")
    with pytest.raises(StorylabError, match="correct_letter C disagrees"):
        load_questions(path)


def test_subtitles_csv_and_unknown_videos(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("text,start,end,speaker,video_id\nlater,00:01:02.5,00:01:04,SPEAKER_01,film\nfirst,1,2,SPEAKER_00,film\n"
                    "stray,1,2,SPEAKER_00,other\n")
    subs = load_subtitles(path)
    assert [s.text for s in subs["film"]] == ["first", "later"] and subs["film"][1].start == 62.5
    questions = load_questions(write_questions(tmp_path / "q.csv", [question_row("a")]))
    assert check_subtitle_videos(subs, questions, str(path)) == ["other"]  # more films than questions: fine
    mismatched = load_questions(write_questions(tmp_path / "q2.csv", [question_row("a"), question_row("b", video="third")]))
    with pytest.raises(StorylabError, match="name video\\(s\\) with no question: other, and miss 1 film\\(s\\) "
                                            "the questions ask about: third"):
        check_subtitle_videos(subs, mismatched, str(path))


def test_subtitles_from_a_folder_or_one_file(tmp_path):
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / "film.srt").write_text("1\n00:00:01,000 --> 00:00:03,500\n<i>Hello</i> there.\nSecond line\n\n"
                                     "2\n00:01:04,000 --> 00:01:05,000\nBye\n")
    (folder / "other.vtt").write_text("WEBVTT\n\n00:01.000 --> 00:02.250\n<v Ana>Good evening.\n")
    (folder / "notes.txt").write_text("not subtitles")
    subs = load_subtitles(folder)
    assert subs == {"film": [Subtitle(1.0, 3.5, "Hello there. Second line"), Subtitle(64.0, 65.0, "Bye")],
                    "other": [Subtitle(1.0, 2.25, "Good evening.")]}
    assert load_subtitles(folder / "other.vtt") == {"other": subs["other"]}
    (folder / "film.vtt").write_text("WEBVTT\n\n00:01.000 --> 00:02.000\nHi\n")
    with pytest.raises(StorylabError, match="has two files for video film"):
        load_subtitles(folder)
    with pytest.raises(StorylabError, match="has no .srt or .vtt files"):
        load_subtitles(tmp_path)
    bad = tmp_path / "bad.srt"
    bad.write_text("")
    with pytest.raises(StorylabError, match=r"subtitle file .*bad\.srt has no subtitle cues"):
        load_subtitles(bad)
