"""Funny moments as a user sees them: the matcher, the moment rules on hand-built curves, episode-level scores,
batched window scoring, and ``humor evaluate`` end to end with its bad input."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest

from storylab.errors import StorylabError
from storylab.humor.detect import MomentRule, moments_from_scores, smooth_scores
from storylab.humor.evaluation import match_moments, moment_counts, moment_scores
from storylab.humor.moments import CalibrationGrid, EpisodeCurve, calibrate, episode_truths, evaluate_rule


def plain(**kw) -> MomentRule:
    """A rule that only thresholds (no smoothing, run length or gap; moments at each run's peak), plus ``kw``."""
    return MomentRule(**{"threshold": 0.5, "smooth": 0.0, "min_run": 0.0, "min_gap": 0.0, "anchor": "peak", **kw})


# ---- the matcher --------------------------------------------------------------------------------------------

def brute_force_matching(pred, truth, tol):
    """Every partial one-to-one matching within ``tol``; the best by (most pairs, least total |error|)."""
    best = (0, 0.0)
    for k in range(min(len(pred), len(truth)) + 1):
        for ps in itertools.combinations(range(len(pred)), k):
            for ts in itertools.permutations(range(len(truth)), k):
                errs = [abs(pred[i] - truth[j]) for i, j in zip(ps, ts)]
                if all(e <= tol + 1e-9 for e in errs) and (k > best[0] or (k == best[0] and sum(errs) < best[1] - 1e-12)):
                    best = (k, sum(errs))
    return best


def test_matcher_is_one_to_one_even_with_two_moments_near_one_laugh():
    assert match_moments([10.0, 10.5], [10.2], tolerance=2.0) == [(0, 0)]  # the closer moment; the other is a false alarm
    assert match_moments([10.0], [9.5, 10.4], tolerance=2.0) == [(0, 1)]  # one moment cannot claim two laughs
    assert moment_counts([10.0, 10.5], [10.2], 2.0) == {"tp": 1, "predicted": 2, "truth": 1, "errors": [pytest.approx(-0.2)]}


def test_matcher_prefers_more_pairs_over_the_closest_pair():
    # closest-first would pair 2.0 with 1.9 and leave both others unmatched; two pairs are possible
    assert match_moments([1.0, 2.0], [1.9, 3.0], tolerance=1.0) == [(0, 0), (1, 1)]


def test_matcher_tolerance_edges():
    assert match_moments([12.0], [10.0], tolerance=2.0) == [(0, 0)]      # exactly the tolerance counts
    assert match_moments([12.1], [10.1], tolerance=2.0) == [(0, 0)]      # 2.0000000000000018 in floating point
    assert match_moments([12.0], [10.0], tolerance=1.999) == []
    assert match_moments([7.9], [10.0], tolerance=2.0) == []              # before the laugh, just out of reach
    assert match_moments([], [1.0], 2.0) == [] and match_moments([1.0], [], 2.0) == []
    with pytest.raises(ValueError):
        match_moments([1.0], [1.0], tolerance=-1)


def test_matcher_agrees_with_brute_force_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(60):
        pred = list(np.round(rng.uniform(0, 12, rng.integers(0, 5)), 1))
        truth = list(np.round(rng.uniform(0, 12, rng.integers(0, 5)), 1))
        tol = float(rng.choice([0.5, 1.0, 2.0]))
        pairs = match_moments(pred, truth, tol)
        assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)  # one-to-one
        assert all(abs(pred[i] - truth[j]) <= tol + 1e-9 for i, j in pairs)
        k, total = brute_force_matching(pred, truth, tol)
        assert len(pairs) == k
        assert sum(abs(pred[i] - truth[j]) for i, j in pairs) == pytest.approx(total)


# ---- episode-level scores -----------------------------------------------------------------------------------

def test_moment_scores_pool_episodes_and_count_false_alarms_per_minute():
    a = moment_counts([5.0, 20.0, 40.0], [5.5, 30.0], 2.0)   # 1 hit, 2 false alarms, 1 miss
    b = moment_counts([10.0], [9.0], 2.0)                     # 1 hit
    r = moment_scores([a, b], minutes=[2.0, 1.0], n_boot=200, seed=1)
    assert (r["tp"], r["predicted"], r["truth"]) == (2, 4, 3)
    assert r["precision"] == pytest.approx(2 / 4) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert r["false_alarms_per_minute"] == pytest.approx(2 / 3.0)
    assert r["timing_error_mean_abs"] == pytest.approx((0.5 + 1.0) / 2)
    assert r["timing_error_median"] == pytest.approx((-0.5 + 1.0) / 2)
    for name in ("precision", "recall", "f1"):
        lo, hi = r[f"{name}_ci"]
        assert lo <= r[name] <= hi
    # resampling identical episodes cannot move the pooled score: the interval collapses onto it
    same = moment_scores([a, a, a], minutes=[2.0, 2.0, 2.0], n_boot=100)
    assert same["precision_ci"] == [pytest.approx(1 / 3)] * 2


def test_bootstrap_draws_whole_episodes():
    perfect, empty = moment_counts([1.0], [1.0], 2.0), moment_counts([50.0], [1.0], 2.0)
    r = moment_scores([perfect, empty], minutes=[1.0, 1.0], n_boot=400, seed=0)
    # each resample is {perfect x2, mixed, empty x2}: precision 1, 0.5 or 0, nothing in between
    assert r["precision_ci"][0] == 0.0 and r["precision_ci"][1] == 1.0


# ---- the moment rules on hand-built score curves ------------------------------------------------------------

def test_smoothing_is_a_centred_moving_average_shrunk_at_the_ends():
    x = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    want = [np.mean(x[max(0, i - 1):i + 2]) for i in range(len(x))]  # width 3
    assert np.allclose(smooth_scores(x, 3), want)
    assert np.allclose(smooth_scores(x, 1), x)


def test_threshold_rule_reports_each_runs_peak_and_counts_equality():
    t = np.arange(1.0, 11.0)
    s = np.array([0.1, 0.6, 0.9, 0.7, 0.2, 0.5, 0.1, 0.3, 0.8, 0.8])
    got = moments_from_scores(t, s, plain(threshold=0.5))
    assert got == [(2, pytest.approx(0.9)), (5, pytest.approx(0.5)), (8, pytest.approx(0.8))]  # 0.5 >= 0.5 counts; first of a tie
    assert moments_from_scores(t, s, plain(threshold=0.95)) == []
    assert [k for k, _ in moments_from_scores(t, s, plain(threshold=0.0))] == [2]  # one run spanning everything


def test_min_run_drops_one_window_spikes():
    t = np.arange(1.0, 9.0)
    s = np.array([0.0, 0.9, 0.0, 0.0, 0.7, 0.8, 0.6, 0.0])
    assert [k for k, _ in moments_from_scores(t, s, plain(threshold=0.5))] == [1, 5]
    assert [k for k, _ in moments_from_scores(t, s, plain(threshold=0.5, min_run=2.0))] == [5]
    # run length is windows x stride: at a 0.5 s stride the same three windows last only 1.5 s
    assert moments_from_scores(t / 2, s, plain(threshold=0.5, min_run=2.0), stride=0.5) == []


def test_nms_keeps_the_higher_of_two_close_moments():
    t = np.arange(1.0, 13.0)
    s = np.array([0.0, 0.8, 0.0, 0.95, 0.0, 0.0, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0])
    assert [k for k, _ in moments_from_scores(t, s, plain(threshold=0.5))] == [1, 3, 9]
    assert [k for k, _ in moments_from_scores(t, s, plain(threshold=0.5, min_gap=3.0))] == [3, 9]  # 2 s apart: 0.8 goes
    assert [k for k, _ in moments_from_scores(t, s, plain(threshold=0.5, min_gap=2.0))] == [1, 3, 9]  # exactly the gap stays
    assert [k for k, _ in moments_from_scores(t, s, plain(threshold=0.5, min_gap=7.0))] == [3]


def test_smoothing_merges_a_dip_and_suppresses_a_lone_spike():
    t = np.arange(1.0, 12.0)
    s = np.array([0.0, 0.0, 0.9, 0.3, 0.9, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    assert len(moments_from_scores(t, s, plain(threshold=0.5))) == 3
    sm = smooth_scores(s, 3)  # the rule thresholds this curve
    got = moments_from_scores(t, s, plain(threshold=0.5, smooth=3.0))
    assert got == [(3, pytest.approx(sm[3]))] and sm[3] == pytest.approx(0.7) and sm[8] < 0.5


def test_end_anchor_puts_the_moment_at_the_runs_last_window_scored_by_its_peak():
    t = np.arange(1.0, 13.0)
    s = np.array([0.0, 0.9, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.6, 0.7, 0.0, 0.0])
    assert moments_from_scores(t, s, plain(anchor="end")) == [(3, pytest.approx(1.0)), (9, pytest.approx(0.7))]
    # NMS ranks moments by their run's peak: the first run wins though its last window (0.5) is below 0.7
    assert moments_from_scores(t, s, plain(anchor="end", min_gap=7.0)) == [(3, pytest.approx(1.0))]


def test_bad_rules_are_clear_errors():
    for rule, msg in ((plain(threshold=1.5), "--threshold must be in [0, 1], got 1.5"),
                      (plain(min_gap=-1), "--min-gap must be at least 0 s, got -1"),
                      (plain(anchor="middle"), "--anchor must be peak or end, got 'middle'")):
        with pytest.raises(StorylabError, match=re.escape(msg)):
            moments_from_scores(np.arange(3.0), np.zeros(3), rule)


def test_calibration_picks_the_highest_f1_at_the_target_precision():
    t = np.arange(1.0, 31.0)
    s = np.zeros(30)
    s[[4, 14, 24]] = [0.9, 0.8, 0.6]   # true laughs at 5, 15, 25 s
    s[9] = 0.7                         # a false alarm at 10 s
    curves = [EpisodeCurve("ep", 30.0, t, s, [5.0, 15.0, 25.0])]
    grid = CalibrationGrid(thresholds=(0.5, 0.65, 0.75), smooth=(0.0,), min_run=(0.0,), min_gap=(0.0,), anchor=("peak",))
    rule, scores, tried = calibrate(curves, tolerance=1.0, target_precision=0.9, grid=grid)
    assert tried == 3 and rule.threshold == 0.75 and (scores["precision"], scores["recall"]) == (1.0, pytest.approx(2 / 3))
    rule, scores, _ = calibrate(curves, tolerance=1.0, target_precision=0.75, grid=grid)
    assert rule.threshold == 0.5 and scores["recall"] == 1.0 and scores["precision"] == 0.75
    r = evaluate_rule(curves, plain(threshold=0.65), tolerance=1.0, n_boot=0)
    assert (r["tp"], r["predicted"]) == (2, 3)


# ---- truth of an episode folder -----------------------------------------------------------------------------

def test_episode_truths_from_truth_or_laughter_json(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "laughter.json").write_text(json.dumps({"files": [{"path": "a.wav", "laughter": [{"start": 4.0, "end": 6.0},
                                                                                                   {"start": 1.0, "end": 2.0}]}]}))
    truths, source = episode_truths(tmp_path)
    assert truths == {str(tmp_path / "a.wav"): [1.0, 4.0]} and source.startswith("laughter.json")
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "a.json").write_text(json.dumps({"laughter": [{"start": 3.5, "end": 5.0}]}))
    truths, source = episode_truths(tmp_path)  # synthetic ground truth wins over detected laughter
    assert truths == {str(tmp_path / "a.wav"): [3.5]} and source.startswith("truth/")


def test_evaluate_bad_input_is_one_line(cli, tmp_path):
    (tmp_path / "ep.wav").write_bytes(b"")
    r = cli("humor", "evaluate", str(tmp_path))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (f"error: {tmp_path} has neither truth/ (synthetic episodes) nor laughter.json "
                                                 f"(storylab humor label {tmp_path} --out {tmp_path / 'clips.csv'}): no true "
                                                 "laughs to match the moments against")
    (tmp_path / "truth").mkdir()
    r = cli("humor", "evaluate", str(tmp_path))
    assert r.stderr.strip().splitlines()[-1] == f"error: ep.wav has no ground truth ({tmp_path / 'truth' / 'ep.json'} is missing)"
    r = cli("humor", "evaluate", str(tmp_path / "nowhere"))
    assert r.stderr.strip().splitlines()[-1] == f"error: episode folder not found: {tmp_path / 'nowhere'}"
    r = cli("humor", "evaluate", str(tmp_path), "--min-run", "-2")
    assert r.stderr.strip().splitlines()[-1] == "error: --min-run must be at least 0 s, got -2"
    r = cli("humor", "evaluate", str(tmp_path), "--plot", str(tmp_path / "pr.png"))
    assert r.stderr.strip().splitlines()[-1] == "error: --plot draws the precision-recall curve: add --sweep"
    assert not (tmp_path / "pr.png").exists()


# ---- batched window scoring, and the command end to end -----------------------------------------------------

def test_batched_window_scores_equal_cutting_every_window_at_once(tiny_sitcom):
    import torch

    from storylab.humor.config import FunnyNetConfig
    from storylab.humor.data import clip_inputs
    from storylab.humor.detect import DetectConfig, window_scores
    from storylab.humor.model import FunnyNet
    from storylab.humor.train import predict

    out, episodes = tiny_sitcom
    video = str(out / "episode_001.mp4")
    torch.manual_seed(0)
    model = FunnyNet(FunnyNetConfig(modalities="avt", dim=64, tokens=16, heads=2, audio_channels=4, audio_dim=32,
                                    frames=4, frame_size=16, text_tokens=8)).eval()
    laughter = [(s, e) for s, e in episodes[0].laughter]
    from storylab.subtitles import read_subtitle_file
    subs = read_subtitle_file(out / "episode_001.srt")
    ends, starts, scores, texts = window_scores(video, model, subs, DetectConfig(stride=1.5, batch_size=5), laughter)
    inputs = clip_inputs([video] * len(ends), list(starts), list(ends), [0] * len(ends), texts, model.config,
                         {video: laughter})
    assert len(ends) > 10 and np.allclose(scores, predict(model, inputs), atol=1e-6)


def test_humor_evaluate_end_to_end(tiny_sitcom, cli, tmp_path):
    out, episodes = tiny_sitcom
    r = cli("humor", "evaluate", str(out), "--json", "--sweep", "--calibrate", "--bootstrap", "50",
            "--plot", str(tmp_path / "pr.png"))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    sc = report["scores"]
    assert sc["episodes"] == 2 and sc["truth"] == sum(len(e.laughter) for e in episodes)
    curves = report["curves"]
    assert [c["truth"] for c in curves] == [[round(s, 3) for s, _ in e.laughter] for e in episodes]
    # the reported scores follow from the printed curves through the rule and the matcher
    counts = []
    for c in curves:
        picked = moments_from_scores(np.array(c["times"]), np.array(c["scores"]), MomentRule(**report["rule"]))
        counts.append(moment_counts([c["times"][k] for k, _ in picked], c["truth"], report["tolerance"]))
    assert sum(n["tp"] for n in counts) == sc["tp"] and sum(n["predicted"] for n in counts) == sc["predicted"]
    assert [row["threshold"] for row in report["pr_curve"]] == sorted(row["threshold"] for row in report["pr_curve"])
    assert report["calibrated"]["rules_tried"] > 100 and (tmp_path / "pr.png").stat().st_size > 10_000
    assert "moment-level scores" in r.stderr  # --json keeps stdout for the JSON
