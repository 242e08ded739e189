"""Funny moments as a user sees them: ``humor detect`` run over whole episodes and scored against true laughs.

FunnyNet-W (Liu, Courant, Kalogeiton, IJCV 2024) is evaluated in the paper on pre-cut 8 s clips. A user runs
the detector over a whole episode instead: a sliding window, a rule that turns the score curve into moments
(:class:`storylab.humor.detect.MomentRule`), and a list of moments. Here each moment (a predicted laughter
onset) is matched one-to-one to a true laughter onset within a tolerance
(:func:`storylab.humor.evaluation.match_moments`). The true onsets come from a synthetic episode's
``truth/<episode>.json`` or, for a labelled folder of real episodes, from the ``laughter.json`` that
``storylab humor label`` wrote (the laughter the labels were derived from).

Scoring the windows is the slow part; everything after it (rules, thresholds, calibration) reuses the curves.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from storylab.errors import StorylabError
from storylab.humor.detect import DetectConfig, MomentRule, moments_from_scores
from storylab.humor.evaluation import moment_counts, moment_scores


@dataclass
class EpisodeCurve:
    """One episode's score curve and its true laughter onsets."""

    name: str
    duration: float
    times: np.ndarray     # window ends (s)
    scores: np.ndarray    # P(funny) of the window ending there
    truth: list[float]    # true laughter onsets (s)

    def to_json(self) -> dict:
        """Plain JSON form; scores unrounded, since P(funny) saturates near 1 and rounding would create ties
        that move a run's first maximum."""
        return {"name": self.name, "duration": round(self.duration, 3), "truth": [round(t, 3) for t in self.truth],
                "times": [round(float(t), 3) for t in self.times], "scores": [float(s) for s in self.scores]}


def episode_truths(folder: str | Path) -> tuple[dict[str, list[float]], str]:
    """{media file: true laughter onsets} of an episode folder and where they came from.

    ``truth/<stem>.json`` (synthetic episodes) is preferred; else the folder's ``laughter.json`` (written by
    ``storylab humor label``). A folder with neither, or a media file without its truth, is an error.
    """
    from storylab.humor.data import read_laughter_json
    from storylab.humor.media import MEDIA_SUFFIXES

    d = Path(folder)
    if not d.is_dir():
        raise StorylabError(f"episode folder not found: {d}")
    media = sorted(f for f in d.iterdir() if f.suffix.lower() in MEDIA_SUFFIXES and not f.name.startswith("."))
    if not media:
        raise StorylabError(f"no media files ({', '.join(MEDIA_SUFFIXES)}) in folder {d}")
    truth_dir, laughter_path = d / "truth", d / "laughter.json"
    out: dict[str, list[float]] = {}
    if truth_dir.is_dir():
        for f in media:
            t = truth_dir / f"{f.stem}.json"
            if not t.exists():
                raise StorylabError(f"{f.name} has no ground truth ({t} is missing)")
            try:
                out[str(f)] = sorted(float(x["start"]) for x in json.loads(t.read_text())["laughter"])
            except (ValueError, KeyError, TypeError) as exc:
                raise StorylabError(f"{t.name} is not a ground-truth file (expected {{\"laughter\": [{{\"start\", \"end\"}}]}})") from exc
        return out, "truth/ (synthetic ground truth)"
    if laughter_path.exists():
        detected = read_laughter_json(laughter_path)
        for f in media:
            if str(f) not in detected:
                raise StorylabError(f"{f.name} is not in {laughter_path.name}; label the folder again (storylab humor label)")
            out[str(f)] = sorted(s for s, _ in detected[str(f)])
        return out, "laughter.json (the detected laughter the labels come from)"
    raise StorylabError(f"{d} has neither truth/ (synthetic episodes) nor laughter.json (storylab humor label "
                        f"{d} --out {d / 'clips.csv'}): no true laughs to match the moments against")


def score_episodes(folders: Sequence[str | Path], model, config: DetectConfig = DetectConfig(), asr: str = "none",
                   progress: bool = False) -> list[EpisodeCurve]:
    """Score every window of every episode in ``folders`` as ``humor detect`` does (laughter silenced first)."""
    import warnings

    from storylab.humor.asr import transcribe_file, transcriber
    from storylab.humor.detect import window_scores
    from storylab.humor.laughter import laughter_events
    from storylab.humor.media import media_duration
    from storylab.humor.subtitles import check_against_duration, find_subtitles, read_subtitles
    from storylab.training.progress import progress_bar

    truths = [episode_truths(f)[0] for f in folders]  # every folder checked before the slow part
    recognise, _ = transcriber(asr)
    jobs = [(f, t) for truth in truths for f, t in truth.items()]
    curves = []
    with progress_bar("scoring episodes", total=len(jobs), enabled=progress) as bar:
        for f, onsets in jobs:
            video = Path(f)
            duration = media_duration(video)
            sub_path = find_subtitles(video)
            subs = read_subtitles(sub_path, video_id=video.stem) if sub_path else []
            if sub_path:
                check_against_duration(subs, duration, sub_path.name)
            elif "t" in model.config.modalities and recognise is not None:
                subs = transcribe_file(video, recognise)
            laughter = []
            if config.remove_laughter:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    laughter = laughter_events([video])[0].laughter
            times, _, scores, _ = window_scores(video, model, subs, config, laughter)
            curves.append(EpisodeCurve(f"{video.parent.name}/{video.name}", duration, times, scores, onsets))
            bar.advance()
    return curves


def episode_counts(curves: Sequence[EpisodeCurve], rule: MomentRule, tolerance: float) -> list[dict[str, object]]:
    """Each episode's moments under ``rule`` matched to its laughs (:func:`storylab.humor.evaluation.moment_counts`)."""
    counts = []
    for c in curves:
        picked = moments_from_scores(c.times, c.scores, rule)
        counts.append(moment_counts([float(c.times[k]) for k, _ in picked], c.truth, tolerance))
    return counts


def evaluate_rule(curves: Sequence[EpisodeCurve], rule: MomentRule, tolerance: float, n_boot: int = 1000,
                  seed: int = 0) -> dict[str, object]:
    """Moment-level scores of ``rule`` on scored episodes (:func:`storylab.humor.evaluation.moment_scores`)."""
    return moment_scores(episode_counts(curves, rule, tolerance), [c.duration / 60 for c in curves], n_boot=n_boot,
                         seed=seed)


THRESHOLDS = tuple(round(float(t), 3) for t in np.concatenate([np.arange(0.05, 0.9, 0.05), np.arange(0.9, 1.0, 0.01)]))


def pr_curve(curves: Sequence[EpisodeCurve], rule: MomentRule, tolerance: float,
             thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, float]]:
    """Moment precision and recall of ``rule`` at each threshold (no bootstrap)."""
    rows = []
    for t in thresholds:
        r = evaluate_rule(curves, replace(rule, threshold=float(t)), tolerance, n_boot=0)
        rows.append({"threshold": float(t), "precision": r["precision"], "recall": r["recall"], "f1": r["f1"],
                     "false_alarms_per_minute": r["false_alarms_per_minute"]})
    return rows


@dataclass
class CalibrationGrid:
    """The rules tried by :func:`calibrate`: every combination of these values."""

    thresholds: tuple[float, ...] = THRESHOLDS
    smooth: tuple[float, ...] = (0.0, 2.0, 3.0)
    min_run: tuple[float, ...] = (0.0, 2.0)
    min_gap: tuple[float, ...] = (0.0, 3.0, 5.0, 8.0)
    anchor: tuple[str, ...] = ("peak", "end")


def calibrate(curves: Sequence[EpisodeCurve], tolerance: float, target_precision: float = 0.9,
              grid: CalibrationGrid = CalibrationGrid()) -> tuple[MomentRule, dict[str, object], int]:
    """The rule of ``grid`` with the highest moment F1 among those reaching ``target_precision`` on ``curves``.

    Meant for validation episodes. Ties go to the higher precision, then the simpler rule (the peak anchor,
    less smoothing, shorter runs, smaller gap, higher threshold). With no rule reaching the target, the rule
    of highest F1. Returns (rule, its scores without bootstrap, number of rules tried).
    """
    best, best_key, tried = None, None, 0
    for anchor, sm, run, gap, t in itertools.product(grid.anchor, grid.smooth, grid.min_run, grid.min_gap, grid.thresholds):
        rule = MomentRule(float(t), float(sm), float(run), float(gap), anchor)
        r = evaluate_rule(curves, rule, tolerance, n_boot=0)
        tried += 1
        reaches = r["precision"] >= target_precision
        key = (reaches, r["f1"], r["precision"], anchor == "peak", -sm, -run, -gap, t)
        if best_key is None or key > best_key:
            best, best_key = (rule, r), key
    return best[0], best[1], tried


def pr_figure(path: str | Path, curves_by_label: dict[str, list[dict[str, float]]], marks: dict[str, tuple[float, float]],
              title: str) -> Path:
    """Moment precision against recall over the threshold, one line per label, chosen points marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from storylab.io import atomic_savefig

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for label, rows in curves_by_label.items():
        line, = ax.plot([r["recall"] for r in rows], [r["precision"] for r in rows], marker=".", lw=1.2, label=label)
        if label in marks:
            ax.plot([marks[label][0]], [marks[label][1]], "o", ms=10, mfc="none", color=line.get_color())
    ax.axhline(0.9, color="grey", ls=":", lw=1)
    ax.axvline(0.8, color="grey", ls=":", lw=1)
    lo = min([r[k] for rows in curves_by_label.values() for r in rows for k in ("precision", "recall")] + [0.8])
    lo = max(0.0, np.floor(10 * lo - 0.5) / 10)  # zoom on the data, the goal lines in view
    ax.set_xlim(lo, 1.01)
    ax.set_ylim(lo, 1.01)
    ax.set_xlabel("moment recall (true laughs found)")
    ax.set_ylabel("moment precision (moments on a true laugh)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return Path(path)
