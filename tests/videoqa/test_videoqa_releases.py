"""The authors' released layouts load and score: SF20K OEQA files, the HF export, Whisper and merged
subtitles, submission.csv, ids starting with - or _, videos under 360p/; scores hand-counted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import storylab.videoqa.cli  # noqa: F401 - registers the commands
from release_files import (HF_HEADER, HF_ROWS, MERGED_HEADER, OEQA_HEADER, OEQA_ROWS, SUBMISSION_HEADER,
                           SUBMISSION_ROWS, WHISPER_HEADER, WHISPER_ROWS, write_csv)
from storylab.cli_groups import app
from storylab.errors import StorylabError
from storylab.videoqa.data import load_questions, load_subtitles
from storylab.videoqa.frames import find_video
from storylab.videoqa.testing import ChatServer, request_text
from videoqa_helpers import write_video


def run(*args):
    return CliRunner().invoke(app, ["videoqa", *args])


@pytest.fixture
def release(tmp_path):
    files = {"oeqa": write_csv(tmp_path / "gt_samples.csv", OEQA_HEADER, OEQA_ROWS),
             "whisper": write_csv(tmp_path / "test_subtitles.csv", WHISPER_HEADER, WHISPER_ROWS),
             "submission": write_csv(tmp_path / "submission.csv", SUBMISSION_HEADER, SUBMISSION_ROWS),
             "hf": write_csv(tmp_path / "sf20k_hf.csv", HF_HEADER, HF_ROWS),
             "merged": write_csv(tmp_path / "subtitles.csv", MERGED_HEADER, [
                 ["-abc", "1.5", "4.0", " Welcome to the city.", "0.01"], ["_x", "0.0", "2.0", " Hello there.", "0.2"],
                 ["_x", "2.0", "3.5", " We found it!", "0.1"]])}
    files["root"] = tmp_path
    return files


def _judge(body):
    """A judge that answers the authors' prompt as a model might: readable, readable, chatty (unreadable)."""
    text = request_text(body)
    assert "Correct Answer:" in text and body["max_tokens"] == 16 and body["temperature"] == 0.0
    prediction = text.split("Predicted Answer: ")[1].split("\n")[0]
    return {"The main characters are a man and a woman.": "{'pred': 'yes', 'score': 5}",
            "Taking selfies": "{'pred': 'no', 'score': 1}"}.get(prediction, "Sure! {'pred': 'yes', 'score': 4}")


def test_oeqa_release_and_whisper_subtitles_load(release):
    questions = load_questions(release["oeqa"])
    assert [q.question_id for q in questions] == [r[0] for r in OEQA_ROWS]
    assert all(q.options == () and q.correct_answer is None and q.answer for q in questions)
    assert {q.video_id for q in questions} == {"X66nawgM_G0", "GBrKM_e8ZoI", "_ZrahHexT3M", "-abc"}
    subs = load_subtitles(release["whisper"])
    assert sorted(subs) == ["-abc", "GBrKM_e8ZoI", "X66nawgM_G0"]
    assert [(s.start, s.end, s.text, s.speaker) for s in subs["GBrKM_e8ZoI"]] == [
        (30.0, 38.0, "I'm going to the bathroom.", ""), (38.0, 40.0, "What? I'm going to the bathroom.", "")]
    merged = load_subtitles(release["merged"])
    assert [s.text for s in merged["_x"]] == ["Hello there.", "We found it!"] and merged["-abc"][0].start == 1.5
    with pytest.raises(StorylabError, match="has no options \\(option_0..option_4\\): it is an open-ended question set; "
                                            "use --task oeqa"):
        load_questions(release["oeqa"], "mcqa")


def test_hf_export_keeps_each_task_its_rows(release):
    mcqa, oeqa = load_questions(release["hf"], "mcqa"), load_questions(release["hf"], "oeqa")
    assert [q.question_id for q in mcqa] == ["-abc_01", "_x_01", "_x_02"]
    assert [q.correct_letter for q in mcqa] == ["B", "B", "A"] and mcqa[0].options[1] == "In a city."
    assert len(oeqa) == 5 and oeqa[3].options == () and oeqa[3].correct_answer is None  # every row has an answer


def test_oeqa_run_with_skip_missing_reports_both_metrics(release):
    """Random answers (random subtitle lines) judged by the authors' protocol; hand-counted metrics."""
    def judge(body):
        text = request_text(body)
        return "{'pred': 'yes', 'score': 3}" if "Who are the main characters?" in text else \
            ("{'pred': 'no', 'score': 2}" if "Zoe" in text else "{'pred': 'yes', 'sco")  # the last one cut at 16 tokens

    with ChatServer(judge) as server:
        res = run("eval", "--questions", str(release["oeqa"]), "--subtitles", str(release["whisper"]), "--task", "oeqa",
                  "--backend", "random", "--judge", server.spec("judge"), "--skip-missing", "--prompt-style", "sf20k",
                  "--out", str(release["root"] / "run"), "--no-progress")
    assert res.exit_code == 0, res.output
    summary = json.loads((release["root"] / "run" / "summary.json").read_text())
    # _ZrahHexT3M has no subtitles: its 2 questions are left out, 3 remain; verdicts yes/3, no/2, unreadable
    assert summary["n"] == 3 and summary["skipped_questions"] == 2 and summary["skipped_videos"] == ["_ZrahHexT3M"]
    assert summary["judged"] == 2 and summary["unparsed"] == 1 and summary["yes_rate"] == 1 / 2
    assert summary["mean_score"] == (3 + 2) / 2 and summary["llm_qa_eval"] == pytest.approx((3 + 2 + 0) / 5)
    assert summary["dataset"] == "gt_samples.csv" and summary["prompt_style"] == "sf20k"
    preds = [json.loads(line) for line in (release["root"] / "run" / "predictions.jsonl").read_text().splitlines()]
    lines = {s.text for subs in load_subtitles(release["whisper"]).values() for s in subs}
    assert all(p["response"] in lines for p in preds)  # random OEQA answers are lines of the film


def test_sf20k_submission_is_scored(release):
    with ChatServer(_judge) as server:
        res = run("score", str(release["submission"]), "--questions", str(release["oeqa"]), "--judge",
                  server.spec("judge"), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    # 3 predictions for 5 questions: yes/5, no/1, unreadable -> SFD 1 yes of 2 readable; SF20K (5 + 1 + 0) / 5
    assert out["n"] == 3 and out["missing"] == 2 and out["judged"] == 2 and out["yes_rate"] == 0.5
    assert out["llm_qa_eval"] == pytest.approx(6 / 5) and out["mean_score"] == 3.0


def test_mcqa_prompt_styles_and_parsers_on_the_hf_export(release):
    replies = {"Where does the movie take place?": "(2)", "Who are the main characters?": "B",
               "What is the mood of the final scene?": "The answer is (5)"}
    seen = {}

    def answer(body):
        text = request_text(body)
        question = next(q for q in replies if q in text)
        seen[question] = body
        return replies[question]

    results = {}
    for style in ("storylab", "longva", "sf20k"):
        with ChatServer(answer) as server:
            res = run("eval", "--questions", str(release["hf"]), "--subtitles", str(release["merged"]),
                      "--backend", server.spec("m"), "--prompt-style", style, "--out", str(release["root"] / style),
                      "--no-progress")
        assert res.exit_code == 0, res.output
        results[style] = json.loads((release["root"] / style / "summary.json").read_text())
        if style == "longva":
            body = seen["Where does the movie take place?"]
            assert body["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}
            text = request_text(body)
            assert "Subtitles: 00:00:01 - 00:00:04 Welcome to the city." in text
            assert "Possible answer choices:\n(1) In a forest.\n(2) In a city.\n(3) On a boat." in text
            assert text.endswith('Output the final answer in the format "(X)" where X is the correct digit choice. '
                                 "DO NOT OUTPUT with the full answer text or any other words.")
        if style == "sf20k":
            body = seen["Who are the main characters?"]
            assert [m["role"] for m in body["messages"]] == ["user"]  # SF20K sends no system turn
            assert "Subtitles:\nHello there.\nWe found it!\n\nQuestion: Who are the main characters?" in request_text(body)
    # correct: B, B, A. Lenient: (2)=B ok, B ok, (5)=E wrong -> 2/3. Strict LongVA regex: (2) ok, "B" unparsed, (5) wrong
    assert (results["storylab"]["n"], results["storylab"]["accuracy"], results["storylab"]["unparsed"]) == (3, 2 / 3, 0)
    assert (results["longva"]["accuracy"], results["longva"]["unparsed"], results["longva"]["parser"]) == \
        (1 / 3, 1, "longva-strict")
    run_json = json.loads((release["root"] / "longva" / "run.json").read_text())
    assert run_json["prompt_style"] == "longva" and run_json["parser"] == "longva-strict"
    res = run("score", str(release["root"] / "longva" / "predictions.jsonl"), "--questions", str(release["hf"]), "--json")
    assert json.loads(res.output)["accuracy"] == 1 / 3  # the records say which parser to use


def test_ids_starting_with_dash_or_underscore_and_360p_videos(release):
    videos = release["root"] / "videos"
    (videos / "360p").mkdir(parents=True)
    write_video(videos / "360p" / "-abc.mkv", num_frames=10)
    write_video(videos / "_x.mp4", num_frames=10)
    assert find_video(videos, "-abc").name == "-abc.mkv" and find_video(videos, "_x").parent == videos
    res = run("eval", "--questions", str(release["hf"]), "--videos", str(videos), "--mode", "V", "--frames", "2",
              "--backend", "random", "--prompt-style", "longva", "--out", str(release["root"] / "v"), "--no-progress")
    assert res.exit_code == 0, res.output
    summary = json.loads((release["root"] / "v" / "summary.json").read_text())
    assert summary["n"] == 3 and summary["unparsed"] == 0  # random replies "(k)" under the LongVA style


def test_bad_release_inputs_are_one_line(release, tmp_path):
    neither = write_csv(tmp_path / "neither.csv", ["question_id", "video_id", "question"], [["a", "v", "Why?"]])
    no_times = write_csv(tmp_path / "no_times.csv", ["video_id", "text"], [["-abc", "hello"]])
    slash = write_csv(tmp_path / "slash.csv", OEQA_HEADER, [["a", "../etc/passwd", "Why?", "Because."]])
    cases = [
        (["eval", "--questions", str(neither), "--task", "oeqa", "--subtitles", str(release["whisper"])],
         "has neither options (option_0..option_4) nor answers (answer)"),
        (["eval", "--questions", str(release["oeqa"]), "--task", "oeqa", "--subtitles", str(no_times)],
         "lacks column(s): start, end"),
        (["eval", "--questions", str(slash), "--task", "oeqa", "--subtitles", str(release["whisper"])],
         "refusing video_id in questions file"),
        (["eval", "--questions", str(release["oeqa"]), "--subtitles", str(release["whisper"])],
         "it is an open-ended question set; use --task oeqa"),
    ]
    for args, message in cases:
        res = run(*args, "--backend", "random", "--out", str(tmp_path / "x"), "--no-progress")
        assert isinstance(res.exception, StorylabError) and message in str(res.exception), (args, res.output)
    assert not (tmp_path / "x").exists()
    out = subprocess.run([sys.executable, "-m", "storylab.cli", "videoqa", "eval", "--questions", str(slash), "--task",
                          "oeqa", "--subtitles", str(release["whisper"]), "--out", str(tmp_path / "y")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and out.stderr.startswith("error: refusing video_id")
    assert "'../etc/passwd': an id must name a file inside its folder" in out.stderr
