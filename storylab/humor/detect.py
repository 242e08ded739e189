"""Funny-moment detection in a whole video with a trained FunnyNet-W, and its timeline plot.

FunnyNet-W (Liu et al., IJCV 2024) scores an N-second clip by whether laughter follows it. Sliding the
window over a video gives a funniness score for every instant (the window's end, where the laugh would
start). The windows ending in the first N seconds are scored too, clamped at 0 as the training clips are.
Laughter already in the video is silenced first, as in training, so the model judges the setup, not the
laugh. The paper scores pre-cut clips only; turning the score curve into moments is storylab's
(:class:`MomentRule`): a moving-average smoothing, runs above a threshold of a minimum length, each run's
peak, then temporal non-maximum suppression with a minimum gap between moments.

The windows are cut and scored in batches from the once-decoded media, so memory grows with the
episode's samples and frames, not with 8 s x the number of windows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from storylab.errors import StorylabError
from storylab.humor.subtitles import text_in_window
from storylab.subtitles import Subtitle


ANCHORS = ("peak", "end")


@dataclass
class MomentRule:
    """How a score curve becomes funny moments (see :func:`moments_from_scores`).

    The defaults are the rule of highest moment F1 at precision >= 0.9 on 8 validation episodes for the
    shipped model (``storylab humor evaluate --calibrate``; ``docs/humor.md``, "Funny moments"), never tuned
    on the test episodes. ``MomentRule(0.5, 0, 0, 0, "peak")`` is the detector before moments were measured.
    """

    threshold: float = 0.5   # smoothed P(funny) a window needs
    smooth: float = 0.0      # s: width of the centred moving average (0 or one stride = none)
    min_run: float = 2.0     # s: a run above the threshold must last at least this long (stride per window)
    min_gap: float = 8.0     # s: no two moments closer than this (temporal non-maximum suppression)
    anchor: str = "end"      # where in its run a moment sits: end (last window above) or peak (first maximum)

    def check(self) -> None:
        """Raise a clear error for a rule that cannot be applied."""
        if self.anchor not in ANCHORS:
            raise StorylabError(f"--anchor must be {' or '.join(ANCHORS)}, got '{self.anchor}'")
        if not 0.0 <= self.threshold <= 1.0:
            raise StorylabError(f"--threshold must be in [0, 1], got {self.threshold:g}")
        for name, v in (("--smooth", self.smooth), ("--min-run", self.min_run), ("--min-gap", self.min_gap)):
            if v < 0:
                raise StorylabError(f"{name} must be at least 0 s, got {v:g}")


@dataclass
class DetectConfig:
    """Sliding-window settings."""

    stride: float = 1.0
    threshold: float = MomentRule.threshold
    remove_laughter: bool = True
    smooth: float = MomentRule.smooth
    min_run: float = MomentRule.min_run
    min_gap: float = MomentRule.min_gap
    anchor: str = MomentRule.anchor
    batch_size: int = 64      # windows cut and scored at once

    @property
    def rule(self) -> MomentRule:
        """The moment rule of these settings."""
        return MomentRule(self.threshold, self.smooth, self.min_run, self.min_gap, self.anchor)


@dataclass
class FunnyMoment:
    """A funny moment: the predicted laughter onset, its score and the window that led to it."""

    time: float
    score: float
    start: float
    end: float
    text: str


def smooth_scores(scores: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` windows (odd; even widths are rounded up), shrunk at the ends."""
    scores = np.asarray(scores, dtype=np.float64)
    if width <= 1 or len(scores) == 0:
        return scores.copy()
    half = width // 2
    c = np.concatenate([[0.0], np.cumsum(scores)])
    i = np.arange(len(scores))
    lo, hi = np.maximum(0, i - half), np.minimum(len(scores), i + half + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def moments_from_scores(times: np.ndarray, scores: np.ndarray, rule: MomentRule, stride: float | None = None
                        ) -> list[tuple[int, float]]:
    """Indices and scores of funny moments on a score curve sampled every ``stride`` s (:class:`MomentRule`).

    1. smooth: centred moving average of round(smooth / stride) windows;
    2. runs: maximal stretches with smoothed score >= threshold, kept if (windows x stride) >= min_run;
    3. one moment per run, at its peak (first maximum; ``anchor="end"``: at its last window), scored by the
       run's maximum;
    4. temporal NMS: moments by decreasing score, each kept unless a kept one is closer than min_gap s.
    Returned in time order as (index, score).
    """
    rule.check()
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 0:
        return []
    if stride is None:
        stride = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    s = smooth_scores(scores, int(round(rule.smooth / stride)) if rule.smooth > 0 else 1)
    above = s >= rule.threshold
    peaks: list[int] = []
    best: dict[int, float] = {}
    i = 0
    while i < len(s):
        if not above[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(s) and above[j + 1]:
            j += 1
        if (j - i + 1) * stride >= rule.min_run - 1e-9:
            k = j if rule.anchor == "end" else i + int(np.argmax(s[i:j + 1]))
            peaks.append(k)
            best[k] = float(s[i:j + 1].max())
        i = j + 1
    kept: list[int] = []
    for k in sorted(peaks, key=lambda k: (-best[k], k)):
        if all(abs(times[k] - times[m]) >= rule.min_gap - 1e-9 for m in kept):
            kept.append(k)
    return [(k, best[k]) for k in sorted(kept)]


def check_detect_input(video: str | os.PathLike, modalities: str, stride: float) -> float:
    """Refuse, before any work, a video the detector cannot score; return its duration in seconds.

    Refused: a stride that is not positive, a file shorter than one stride, and a file without a
    video stream when the model reads frames (``"v"`` in ``modalities``).
    """
    from storylab.humor.media import has_stream, media_duration

    duration = media_duration(video)
    if stride <= 0:
        raise StorylabError(f"--stride must be positive, got {stride}")
    if duration < stride:
        raise StorylabError(f"{Path(video).name} ({duration:.2f} s) is shorter than one --stride ({stride:g} s)")
    if "v" in modalities and not has_stream(video, "video"):
        raise StorylabError(f"{Path(video).name} has no video stream; this FunnyNet-W model ({modalities.upper()}) "
                            "reads frames (give a video, or a checkpoint trained without the visual branch)")
    return duration


def window_scores(video: str | os.PathLike, model, subtitles: Sequence[Subtitle], config: DetectConfig = DetectConfig(),
                  laughter: Sequence[tuple[float, float]] = (), progress: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """P(funny) of every window end of ``video``: (ends, starts, scores, texts), cut and scored in batches."""
    import dataclasses

    import torch

    from storylab.humor.data import ClipInputs, cut_clips, decode_media, text_encoder_for, text_states
    from storylab.humor.train import predict
    from storylab.training.progress import progress_bar

    window = model.config.window
    duration = check_detect_input(video, model.config.modalities, config.stride)
    if config.batch_size < 1:
        raise StorylabError(f"batch size must be at least 1, got {config.batch_size}")
    # windows end every stride from the first one; those ending before ``window`` s start at 0 and their
    # audio is padded on the left, as the training clips clamped at the start of an episode are
    ends = np.arange(config.stride, duration + 1e-9, config.stride)
    starts = np.maximum(0.0, ends - window)
    texts = [text_in_window(subtitles, s, e) for s, e in zip(starts, ends)]
    mcfg = model.config
    media = decode_media(str(video), mcfg, list(laughter) if config.remove_laughter else [])
    encoder = text_encoder_for(mcfg) if "t" in mcfg.modalities else None
    scores = np.zeros(len(ends))
    with progress_bar("scoring windows", total=len(ends), enabled=progress) as bar:
        for b in range(0, len(ends), config.batch_size):
            sl = slice(b, b + config.batch_size)
            audio, frames = cut_clips(media, starts[sl], ends[sl], mcfg)
            text = mask = None
            if encoder is not None:
                text, mask = text_states(texts[sl], mcfg, encoder)
            batch = ClipInputs(label=torch.zeros(len(ends[sl]), dtype=torch.long), audio=audio, frames=frames,
                               text=text, text_mask=mask)
            scores[sl] = predict(model, batch)  # the forward pass in predict's own batches, as before
            bar.advance(len(ends[sl]))
    return ends, starts, scores, texts


def funny_moments(video: str | os.PathLike, model, subtitles: Sequence[Subtitle], config: DetectConfig = DetectConfig(),
                  laughter: Sequence[tuple[float, float]] = (), progress: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, list[FunnyMoment]]:
    """Score every window end of ``video``; return (times, scores, funny moments by ``config.rule``)."""
    ends, starts, scores, texts = window_scores(video, model, subtitles, config, laughter, progress)
    moments = [FunnyMoment(float(ends[k]), score, float(starts[k]), float(ends[k]), texts[k])
               for k, score in moments_from_scores(ends, scores, config.rule, config.stride)]
    return ends, scores, moments


def timeline_plot(path: str | os.PathLike, times: np.ndarray, scores: np.ndarray, moments: Sequence[FunnyMoment],
                  laughter: Sequence[tuple[float, float]], threshold: float, title: str) -> Path:
    """Plot the funniness score over time, the threshold, the funny moments and the detected laughter."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from storylab.io import atomic_savefig

    fig, ax = plt.subplots(figsize=(12, 3.6))
    for k, (s, e) in enumerate(laughter):
        ax.axvspan(s, e, color="tab:orange", alpha=0.25, label="detected laughter" if k == 0 else None)
    ax.plot(times, scores, color="tab:blue", lw=1.5, label="P(funny) of the window ending here")
    ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"threshold {threshold:g}")
    for k, m in enumerate(moments):
        ax.plot([m.time], [m.score], "v", color="tab:red", ms=9, label="funny moment" if k == 0 else None)
    ax.set_xlim(0, max(float(times[-1]) if len(times) else 1.0, max((e for _, e in laughter), default=0)))
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(funny)")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=8, ncol=4, frameon=False)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return Path(path)
