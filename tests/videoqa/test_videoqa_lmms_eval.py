"""storylab's SFD task folder loads in lmms-eval, builds storylab's prompts and scores the sample.

lmms-eval lives in its own virtual environment (it would break the main one): `.ci/run` makes it with
``python bench/videoqa_lmms_eval.py --make-venv-only``; ``STORYLAB_LMMS_PYTHON`` may point elsewhere.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
from pathlib import Path

import pytest

from storylab.videoqa.data import load_questions, load_subtitles
from storylab.videoqa.prompts import build_prompt
from storylab.videoqa.sample import sample_paths
from storylab.videoqa.testing import ChatServer, request_text

ROOT = Path(__file__).resolve().parents[2]
PYTHON = Path(os.environ.get("STORYLAB_LMMS_PYTHON", ROOT / ".venv-lmms" / "bin" / "python"))
pytestmark = pytest.mark.skipif(not PYTHON.exists(), reason=f"no lmms-eval virtual environment at {PYTHON} "
                                "(.ci/run makes it: python bench/videoqa_lmms_eval.py --make-venv-only)")


def _bench():
    spec = importlib.util.spec_from_file_location("videoqa_lmms_eval", ROOT / "bench" / "videoqa_lmms_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lmms_eval_task_prompts_and_scores_the_sample():
    paths = sample_paths()
    with open(paths.questions, newline="") as f:
        rows = list(csv.DictReader(f))
    tobias = sum("Tobias" in r["question"] for r in rows)
    jonah = sum("Jonah" in r["question"] and "Tobias" not in r["question"] for r in rows)

    def judge(body):
        question = request_text(body).split("Question: ")[1].split("\n")[0]
        if "Tobias" in question:
            return "{'pred': 'yes', 'score': 4}"
        return "{'pred': 'no', 'score': 1}" if "Jonah" in question else "I think yes"

    with ChatServer(judge) as server:
        result = _bench().run_tasks(PYTHON, "B", ["sfd_mcqa_l", "sfd_mcqa_v", "sfd_oeqa_l"],
                                    {"STORYLAB_SFD_JUDGE": server.spec("judge")})
    metrics, seen = result["metrics"], result["seen"]
    n_b = sum(int(r["correct_answer"]) == 1 for r in rows)  # always "B": right where option_1 is correct
    assert metrics["sfd_mcqa_l"]["accuracy,none"] == pytest.approx(n_b / len(rows))
    assert metrics["sfd_mcqa_v"]["accuracy,none"] == pytest.approx(n_b / len(rows))
    assert metrics["sfd_oeqa_l"]["yes_rate,none"] == pytest.approx(tobias / (tobias + jonah))
    assert metrics["sfd_oeqa_l"]["llm_qa_eval,none"] == pytest.approx((4 * tobias + jonah) / len(rows))
    # lmms-eval asked storylab's own question, and handed V tasks the film
    q = load_questions(paths.questions, "mcqa")[0]
    prompt = build_prompt(q, "mcqa", "L", load_subtitles(paths.subtitles)[q.video_id])
    contexts = [s["context"] for s in seen if s["task"] == "sfd_mcqa_l"]
    assert len(contexts) == len(rows) and f"{prompt.system}\n\n{prompt.text}" in contexts
    assert {tuple(s["visuals"]) for s in seen if s["task"] == "sfd_mcqa_v"} == {(str(paths.videos / "towerclock.mp4"),)}
    assert all(s["visuals"] == [] for s in seen if s["task"] != "sfd_mcqa_v")
    assert sys.executable != str(PYTHON)  # the main environment never imports lmms-eval
    assert importlib.util.find_spec("lmms_eval") is None
