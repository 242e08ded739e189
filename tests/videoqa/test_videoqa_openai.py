"""The OpenAI-compatible backend against a loopback chat server: V/L/VL requests, errors, retries, resume, cache."""

from __future__ import annotations

import json
import socket

import pytest

from storylab.errors import StorylabError
from storylab.videoqa.prompts import PromptConfig
from storylab.videoqa.runner import EvalConfig, run_eval
from storylab.videoqa.testing import ChatServer, request_text


def config(tiny_set, server_spec, **kw) -> EvalConfig:
    base = dict(questions=tiny_set["questions"], subtitles=tiny_set["subtitles"], videos=tiny_set["videos"],
                out=tiny_set["root"] / "run", backend=server_spec, mode="VL", concurrency=2, progress=False,
                retries=2, backoff=0.01, timeout=5.0, prompt=PromptConfig(num_frames=3))
    base.update(kw)
    return EvalConfig(**base)


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_vl_mcqa_end_to_end(tiny_set):
    with ChatServer(lambda body: "Answer: C.") as server:
        summary = run_eval(config(tiny_set, server.spec("vlm")))
    assert server.log.images == [3, 3, 3, 3]  # frames travel as image_url parts
    assert all(b["model"] == "vlm" and b["temperature"] == 0 for b in server.log.bodies)
    assert all("00:00:01 - 00:00:03 The clocks all stopped at noon." in request_text(b) for b in server.log.bodies)
    records = lines(tiny_set["root"] / "run" / "predictions.jsonl")
    assert sorted(r["question_id"] for r in records) == [f"film_{i:02d}" for i in range(4)]
    assert all(r["parsed"] == "C" and len(r["prompt_hash"]) == 64 and r["response"] == "Answer: C." for r in records)
    assert {r["question_id"]: r["correct"] for r in records} == {"film_00": False, "film_01": False, "film_02": True,
                                                               "film_03": False}
    assert summary["accuracy"] == 0.25 and summary["n"] == 4 and summary["unparsed"] == 0


def test_l_mode_sends_text_only_and_v_mode_no_subtitles(tiny_set):
    with ChatServer(lambda body: "B") as server:
        run_eval(config(tiny_set, server.spec(), mode="L", out=tiny_set["root"] / "l"))
        run_eval(config(tiny_set, server.spec(), mode="V", out=tiny_set["root"] / "v"))
    assert server.log.images == [0] * 4 + [3] * 4
    assert isinstance(server.log.bodies[0]["messages"][1]["content"], str)
    assert all("clocks all stopped" not in request_text(b) for b in server.log.bodies[4:])


def test_transient_errors_are_retried(tiny_set):
    with ChatServer(lambda body: "C", failures=[500, 503, "garbage"]) as server:
        summary = run_eval(config(tiny_set, server.spec(), concurrency=1, retries=3, limit=1))
    assert summary["n"] == 1 and len(server.log.bodies) == 1


@pytest.mark.parametrize("failures, kw, message", [
    ([400], {}, "refused the request: HTTP 400 \\(injected status 400\\)"),
    ([500] * 3, {}, "failed after 3 tries: HTTP 500"),
    (["garbage"] * 3, {}, "malformed reply"),
    (["empty"] * 3, {}, "malformed reply"),
    ([("sleep", 1.5)], {"timeout": 0.3, "retries": 0}, "no reply within 0.3 s"),
])
def test_failures_are_one_clear_error(tiny_set, failures, kw, message):
    with ChatServer(lambda body: "C", failures=failures) as server:
        with pytest.raises(StorylabError, match=message) as err:
            run_eval(config(tiny_set, server.spec(), concurrency=1, **kw))
    out = tiny_set["root"] / "run"
    assert "\n" not in str(err.value) and str(err.value).endswith(f"(no answer was saved; nothing is left in {out})")
    assert not out.exists()  # a run that saved nothing leaves no folder, lock or run.json behind


def test_server_down(tiny_set):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StorylabError, match=f"server is down \\(connection refused at http://127.0.0.1:{port}\\)"):
        run_eval(config(tiny_set, f"openai://127.0.0.1:{port}/m", retries=1))
    assert not (tiny_set["root"] / "run" / "summary.json").exists()


def test_interrupted_run_keeps_answers_and_resumes(tiny_set):
    out = tiny_set["root"] / "run"
    with ChatServer(lambda body: "C", failures=[None, None, 500]) as server:
        with pytest.raises(StorylabError, match="2 of 4 answers are saved"):
            run_eval(config(tiny_set, server.spec(), concurrency=1, retries=0))
        assert len(lines(out / "predictions.jsonl")) == 2
        with open(out / "predictions.jsonl", "a") as f:  # a writer killed mid-line
            f.write('{"question_id": "film_0')
        summary = run_eval(config(tiny_set, server.spec(), concurrency=1, retries=0))
    assert len(server.log.bodies) == 4  # two answered before, two after: nothing asked twice
    assert sorted(r["question_id"] for r in lines(out / "predictions.jsonl")) == [f"film_{i:02d}" for i in range(4)]
    assert summary["n"] == 4 and summary["answered_now"] == 2


def test_cache_means_never_paying_twice(tiny_set):
    cache = tiny_set["root"] / "cache"
    with ChatServer(lambda body: "D") as server:
        run_eval(config(tiny_set, server.spec(), out=tiny_set["root"] / "a", cache_dir=cache))
        summary = run_eval(config(tiny_set, server.spec(), out=tiny_set["root"] / "b", cache_dir=cache))
    assert len(server.log.bodies) == 4 and summary["cached_replies"] == 4


def test_resume_refuses_other_settings(tiny_set):
    with ChatServer(lambda body: "C") as server:
        run_eval(config(tiny_set, server.spec(), limit=1))
        with pytest.raises(StorylabError, match="holds a run with other settings \\(mode\\)"):
            run_eval(config(tiny_set, server.spec(), mode="L", limit=1))


def test_oeqa_with_llm_judge(tiny_set):
    def reply(body):
        text = request_text(body)
        if "Correct Answer:" in text:
            return "{'pred': 'yes', 'score': 4}" if "clocks" in text.split("Predicted Answer:")[1] else \
                '{"pred": "no", "score": 1}'
        return "The clocks stopped." if "film_00" in text or "film_01" in text else "No idea."

    with ChatServer(reply) as server:
        summary = run_eval(config(tiny_set, server.spec(), task="oeqa", judge=server.spec("judge")))
    assert summary["yes_rate"] == 0.5 and summary["mean_score"] == 2.5 and summary["judge"].endswith("/judge")
    judged = lines(tiny_set["root"] / "run" / "judgements.jsonl")
    assert len(judged) == 4 and {j["yes"] for j in judged} == {True, False}


def test_judge_failure_keeps_verdicts_and_resumes(tiny_set):
    def reply(body):
        return "{'pred': 'yes', 'score': 5}" if "Correct Answer:" in request_text(body) else "Something."

    out = tiny_set["root"] / "run"
    with ChatServer(reply, failures=[None] * 6 + [500]) as server:
        cfg = config(tiny_set, server.spec(), task="oeqa", judge=server.spec("judge"), concurrency=1, retries=0)
        with pytest.raises(StorylabError, match="all 4 answers are saved .* and finished verdicts"):
            run_eval(cfg)
        assert len(lines(out / "judgements.jsonl")) == 2
        summary = run_eval(cfg)
    assert summary["yes_rate"] == 1.0 and len(server.log.bodies) == 4 + 4  # nothing answered or judged twice


def test_bad_judge_fails_before_any_question(tiny_set):
    with ChatServer(lambda body: "x") as server:
        with pytest.raises(StorylabError, match="unknown judge"):
            run_eval(config(tiny_set, server.spec(), task="oeqa", judge="gpt"))
    assert server.log.bodies == [] and not (tiny_set["root"] / "run" / "predictions.jsonl").exists()
