"""The `storylab videoqa` commands as a user runs them: eval, score, table, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

import storylab.videoqa.cli  # noqa: F401 - registers the commands
from storylab.cli_groups import app
from storylab.errors import StorylabError
from storylab.videoqa.sample import sample_paths
from storylab.videoqa.testing import ChatServer


def run(*args):
    return CliRunner().invoke(app, ["videoqa", *args])


def storylab(*args):
    return subprocess.run([sys.executable, "-m", "storylab.cli", "videoqa", *args], capture_output=True, text=True)


def test_eval_score_table_round_trip(tmp_path):
    q = str(sample_paths().questions)
    with ChatServer(lambda body: "The answer is B) ...") as server:
        res = run("eval", "--sample", "--mode", "VL", "--backend", server.spec("vlm"), "--name", "Local VLM",
                  "--frames", "2", "--out", str(tmp_path / "vlm"), "--no-progress")
    assert res.exit_code == 0, res.output
    assert "Local VLM" in res.output and "accuracy" in res.output
    res = run("eval", "--sample", "--backend", "random", "--out", str(tmp_path / "rand"), "--no-progress")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "vlm" / "summary.json").read_text())
    res = run("score", str(tmp_path / "vlm" / "predictions.jsonl"), "--questions", q, "--json")
    scored = json.loads(res.output)
    assert scored["accuracy"] == summary["accuracy"] and scored["n"] == 12 and 0 <= scored["accuracy"] <= 1
    res = run("table", str(tmp_path), "--json")
    rows = {(r["method"], r["task"], r["mode"]): r for r in json.loads(res.output)}
    assert set(rows) == {("Local VLM", "mcqa", "VL"), ("Random", "mcqa", "L")}
    vlm = rows[("Local VLM", "mcqa", "VL")]
    assert vlm["percent"] == 100 * summary["accuracy"] and vlm["n"] == 12
    assert vlm["dataset"] == "The Tower Clock (sample)" and vlm["prompt_style"] == "storylab"
    res = CliRunner().invoke(app, ["videoqa", "table", str(tmp_path), "--paper"], env={"COLUMNS": "250"})
    assert "LLoVi (paper)" in res.output and "MCQA VL" in res.output and "(n=12)" in res.output
    assert "The Tower Clock (sample)" in res.output and "Data set" in res.output


def test_score_accepts_foreign_predictions(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"question_id": "towerclock_00", "response": "(2)"}\n'
                     '{"question_id": "towerclock_01", "response": "answer: d."}\n'
                     '{"question_id": "towerclock_02", "response": "dunno"}\n')
    res = run("score", str(preds), "--questions", str(sample_paths().questions), "--json")
    out = json.loads(res.output)
    assert out["accuracy"] == 2 / 3 and out["n"] == 3 and out["unparsed"] == 1 and out["missing"] == 9


def test_bad_inputs_raise_clear_errors(tmp_path):
    q = str(sample_paths().questions)
    cases = [
        (["eval", "--out", str(tmp_path / "x")], "--questions is required"),
        (["eval", "--sample", "--mode", "LV", "--out", str(tmp_path / "x")], "unknown mode 'LV'"),
        (["eval", "--questions", q, "--mode", "L", "--out", str(tmp_path / "x")], "mode L needs --subtitles"),
        (["eval", "--sample", "--mode", "V", "--videos", str(tmp_path), "--out", str(tmp_path / "x")],
         "no video file for video_id towerclock"),
        (["eval", "--sample", "--backend", "gpt4", "--out", str(tmp_path / "x")], "unknown backend 'gpt4'"),
        (["eval", "--sample", "--frames", "0", "--out", str(tmp_path / "x")], "--frames must be in 1-512"),
        (["score", str(tmp_path / "none.jsonl"), "--questions", q], "predictions file not found"),
        (["table", str(tmp_path / "nothing")], "run folder not found"),
    ]
    for args, message in cases:
        res = run(*args)
        assert isinstance(res.exception, StorylabError) and message in str(res.exception), (args, res.output)
    assert not (tmp_path / "x" / "predictions.jsonl").exists()


def test_cli_prints_one_line_and_exits_2(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"question_id": "towerclock_00", "response": "A"}\n{"question_id": "towerclock_00", "response": "B"}\n')
    out = storylab("score", str(bad), "--questions", str(sample_paths().questions))
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert out.stderr.startswith("error: predictions") and "appears more than once" in out.stderr
    res = CliRunner().invoke(app, ["videoqa", "eval", "--help"], terminal_width=200)
    assert res.exit_code == 0 and "[default: 8]" in res.output and "[default: retrieval]" in res.output


def test_a_run_folder_in_use_is_refused_and_freed_when_the_run_ends(tmp_path):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a") as holder:  # another run holds the folder
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = run("eval", "--sample", "--backend", "random", "--limit", "2", "--out", str(out), "--no-progress")
        assert res.exit_code != 0  # (exit 2 and one line through storylab.cli.main; CliRunner shows the exception)
        assert isinstance(res.exception, StorylabError) and "is in use by another videoqa run" in str(res.exception)
        assert not (out / "predictions.jsonl").exists()
        fcntl.flock(holder, fcntl.LOCK_UN)
    res = run("eval", "--sample", "--backend", "random", "--limit", "2", "--out", str(out), "--no-progress")
    assert res.exit_code == 0, res.output
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2


def test_eval_refuses_a_duplicate_record_exactly_as_score_does(tmp_path):
    out = tmp_path / "run"
    assert run("eval", "--sample", "--backend", "random", "--limit", "2", "--out", str(out), "--no-progress").exit_code == 0
    pred = out / "predictions.jsonl"
    first = pred.read_text().splitlines()[0]
    pred.write_text(pred.read_text() + first + "\n")
    qid = json.loads(first)["question_id"]
    expected = f"question_id {qid} appears more than once"
    res = run("eval", "--sample", "--backend", "random", "--limit", "2", "--out", str(out), "--no-progress")
    assert isinstance(res.exception, StorylabError) and expected in str(res.exception)
    scored = run("score", str(pred), "--questions", str(sample_paths().questions))
    assert scored.exit_code != 0 and expected in str(scored.exception or scored.output)
