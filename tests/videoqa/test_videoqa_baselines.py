"""Offline baseline (MiniLM subtitle retrieval), the random chance row, and the OEQA judges."""

from __future__ import annotations

import pytest

from storylab.errors import StorylabError
from storylab.subtitles import Subtitle
from storylab.videoqa.backends.random_choice import RandomBackend
from storylab.videoqa.backends.retrieval import subtitle_windows
from storylab.videoqa.judge import EmbeddingJudge, make_judge, parse_judgement
from storylab.videoqa.runner import EvalConfig, run_eval
from storylab.videoqa.sample import sample_paths


def sample_config(tmp_path, **kw) -> EvalConfig:
    p = sample_paths()
    kw.setdefault("out", tmp_path / "run")
    return EvalConfig(questions=p.questions, subtitles=p.subtitles, videos=p.videos, progress=False, **kw)


def test_retrieval_beats_random_on_the_sample(tmp_path):
    retrieval = run_eval(sample_config(tmp_path, backend="retrieval"))
    chance = run_eval(sample_config(tmp_path, backend="random", out=tmp_path / "random"))
    assert retrieval["n"] == 12 and retrieval["unparsed"] == 0
    assert retrieval["accuracy"] >= 0.5 > chance["accuracy"]


def test_retrieval_oeqa_answers_with_subtitles_and_refuses_v(tmp_path):
    summary = run_eval(sample_config(tmp_path, backend="retrieval", task="oeqa", limit=3))
    assert summary["n"] == 3 and summary["judge"] == "embedding@0.5"
    with pytest.raises(StorylabError, match="no V mode for OEQA"):
        run_eval(sample_config(tmp_path, backend="retrieval", task="oeqa", mode="V", out=tmp_path / "v", limit=1))


def test_subtitle_windows_cover_every_line():
    lines = [Subtitle(i, i + 1, f"l{i}") for i in range(7)]
    windows = subtitle_windows(lines, window=3, stride=2)
    assert windows == ["l0 l1 l2", "l2 l3 l4", "l4 l5 l6"]
    assert subtitle_windows(lines[:2], 3, 2) == ["l0 l1"] and subtitle_windows([], 3, 2) == []


def test_random_backend_is_seeded_per_question():
    a, b = RandomBackend(0), RandomBackend(1)
    draws = [a.choice(f"q{i}") for i in range(500)]
    assert draws == [a.choice(f"q{i}") for i in range(500)] and draws != [b.choice(f"q{i}") for i in range(500)]
    assert all(60 < draws.count(k) < 140 for k in range(5))  # roughly uniform


@pytest.mark.parametrize("reply, yes, score", [
    # read as the authors read it: ast.literal_eval of the whole reply, pred exactly 'yes'
    ("{'pred': 'yes', 'score': 4}", True, 4.0), ('{"pred": "no", "score": 0}', False, 0.0),
    (" {'pred': 'YES', 'score': 5.0}\n", False, 5.0),  # 'YES' is not 'yes' in SFD's count
    ("Sure! {'pred': 'yes', 'score': 5}", None, None), ("pred: no", None, None), ("nonsense", None, None),
    ("{'pred': 'yes', 'score': 9}", None, None), ("{'score': 3}", None, 3.0), ("{'pred': 'yes', 'score': '4'}", None, None),
    ("{'pred': 'yes', 'sco", None, None),  # cut off by the 16-token limit
])
def test_parse_judgement(reply, yes, score):
    j = parse_judgement(reply)
    assert (j.yes, j.score) == (yes, score)


def test_embedding_judge():
    judge = EmbeddingJudge(0.5)
    same = judge.judge("q", "He swapped his kite for the tin.", "He traded his kite to get the tin.")
    other = judge.judge("q", "He swapped his kite for the tin.", "The weather was cold in Paris.")
    assert same.yes and not other.yes and same.score > other.score
    assert judge.judge("q", "x", "").yes is False
    with pytest.raises(StorylabError, match="unknown judge"):
        make_judge("gpt-judge")
    with pytest.raises(StorylabError, match="must be a number"):
        make_judge("embedding@high")
