"""Funny-moment detection in a whole video with a trained FunnyNet-W, and its timeline plot.

FunnyNet-W (Liu et al., IJCV 2024) scores an N-second clip by whether laughter follows it. Sliding the
window over a video gives a funniness score for every instant (the window's end, where the laugh would
start); runs above the threshold are reported as funny moments at their best-scoring instant. The
windows ending in the first N seconds are scored too, clamped at 0 as the training clips are. Laughter
already in the video is silenced first, as in training, so the model judges the setup, not the laugh.
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


@dataclass
class DetectConfig:
    """Sliding-window settings."""

    stride: float = 1.0
    threshold: float = 0.5
    remove_laughter: bool = True


@dataclass
class FunnyMoment:
    """A funny moment: the predicted laughter onset, its score and the window that led to it."""

    time: float
    score: float
    start: float
    end: float
    text: str


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


def funny_moments(video: str | os.PathLike, model, subtitles: Sequence[Subtitle], config: DetectConfig = DetectConfig(),
                  laughter: Sequence[tuple[float, float]] = (), progress: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, list[FunnyMoment]]:
    """Score every window end of ``video``; return (times, scores, funny moments)."""
    from storylab.humor.data import clip_inputs
    from storylab.humor.train import predict

    window = model.config.window
    duration = check_detect_input(video, model.config.modalities, config.stride)
    # windows end every stride from the first one; those ending before ``window`` s start at 0 and their
    # audio is padded on the left, as the training clips clamped at the start of an episode are
    ends = np.arange(config.stride, duration + 1e-9, config.stride)
    starts = np.maximum(0.0, ends - window)
    texts = [text_in_window(subtitles, s, e) for s, e in zip(starts, ends)]
    inputs = clip_inputs([str(video)] * len(ends), list(starts), list(ends), [0] * len(ends), texts, model.config,
                         {str(video): list(laughter)} if config.remove_laughter else {}, progress=progress)
    scores = predict(model, inputs)
    moments = []
    above = scores >= config.threshold
    i = 0
    while i < len(scores):
        if above[i]:
            j = i
            while j + 1 < len(scores) and above[j + 1]:
                j += 1
            k = i + int(np.argmax(scores[i:j + 1]))
            moments.append(FunnyMoment(float(ends[k]), float(scores[k]), float(starts[k]), float(ends[k]), texts[k]))
            i = j + 1
        else:
            i += 1
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
