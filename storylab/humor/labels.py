"""Self-supervised clip labels from detected laughter (FunnyNet-W, Liu et al., IJCV 2024, Sec. 3.1).

A positive clip is the ``window`` seconds before a laughter onset (clamped at 0); a negative clip is a
window of the same length whose end is not followed (nor preceded) by a laughter onset within
``margin`` seconds and does not end inside laughter; negatives are sampled to ``negative_ratio``
times the positives. The laughter itself is silenced later, when the clip's audio is cut
(:func:`storylab.humor.data.silence_laughter`), so the model never hears the answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from storylab.errors import StorylabError
from storylab.humor.laughter import LaughterResult
from storylab.humor.subtitles import text_in_window
from storylab.io import atomic_path, safe_join
from storylab.subtitles import Subtitle

CLIP_COLUMNS = ("file", "start", "end", "label", "text", "split")


def safe_clip_file(name: str, folder: str | os.PathLike, what: str = "clip file") -> Path:
    """``folder / name`` for a file name read from a clips table or laughter file, refusing any name that
    could leave ``folder`` (absolute, a path separator, ``..``: :func:`storylab.io.safe_join`)."""
    return safe_join(folder, str(name), what=what)


@dataclass
class LabelConfig:
    """Clip labelling settings."""

    window: float = 8.0          # s of context before the laughter onset (the paper's N)
    negative_ratio: float = 1.0  # negatives per positive
    margin: float = 2.0          # s around a laughter onset where no negative window may end
    stride: float = 0.5          # s between candidate negative window ends
    holdout: float = 0.25        # share of files (the last ones) marked split=test
    seed: int = 0


def positive_windows(laughter: Sequence[tuple[float, float]], window: float) -> list[tuple[float, float]]:
    """The ``window`` seconds before each laughter onset, clamped at 0 (FunnyNet-W positives)."""
    return [(max(0.0, s - window), s) for s, _ in laughter if s > 0.5]


def negative_windows(laughter: Sequence[tuple[float, float]], duration: float, count: int,
                     config: LabelConfig, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Up to ``count`` windows not followed by laughter within ``margin`` s, sampled without replacement."""
    ends = np.arange(config.window, duration + 1e-9, config.stride)
    onsets = np.array([s for s, _ in laughter])
    ok = np.ones(len(ends), dtype=bool)
    if len(onsets):
        ok &= np.abs(ends[:, None] - onsets[None, :]).min(axis=1) > config.margin
    for s, e in laughter:
        ok &= ~((ends > s) & (ends < e))
    candidates = ends[ok]
    if len(candidates) == 0 or count <= 0:
        return []
    chosen = np.sort(rng.choice(candidates, size=min(count, len(candidates)), replace=False))
    return [(float(e - config.window), float(e)) for e in chosen]


def check_window(results: Sequence[LaughterResult], window: float) -> None:
    """Raise unless the clip window is positive and fits in every file."""
    if window <= 0:
        raise StorylabError(f"clip window must be positive, got {window}")
    for result in results:
        if window > result.duration:
            raise StorylabError(f"clip window of {window:g} s is longer than {Path(result.path).name} ({result.duration:.1f} s)")


def clip_table(results: Sequence[LaughterResult], subtitles: Sequence[Sequence[Subtitle]],
               config: LabelConfig = LabelConfig()):
    """Build the clips table (file, start, end, label, text, split) from laughter detections and subtitles.

    ``file`` is the media file's name: the table lives in the episodes' folder and is read relative to it.
    """
    import pandas as pd

    check_window(results, config.window)
    rng = np.random.default_rng(config.seed)
    n_test = int(round(config.holdout * len(results))) if len(results) > 1 else 0
    rows = []
    for i, (result, subs) in enumerate(zip(results, subtitles)):
        name = Path(result.path).name
        split = "test" if i >= len(results) - n_test else "train"
        pos = positive_windows(result.laughter, config.window)
        neg = negative_windows(result.laughter, result.duration, int(round(len(pos) * config.negative_ratio)), config, rng)
        for label, windows in ((1, pos), (0, neg)):
            for s, e in windows:
                rows.append({"file": name, "start": round(s, 3), "end": round(e, 3), "label": label,
                             "text": text_in_window(subs, s, e), "split": split})
    df = pd.DataFrame(rows, columns=list(CLIP_COLUMNS))
    return df.sort_values(["file", "start"]).reset_index(drop=True)


def write_clip_table(df, path: str | os.PathLike) -> Path:
    """Write the clips table as CSV or Parquet (by extension), atomically."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise StorylabError(f"clips table must be .csv or .parquet, got '{p.name}'")
    with atomic_path(p) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    return p


def read_clip_table(path: str | os.PathLike):
    """Read a clips table written by :func:`write_clip_table`, checking its columns."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise StorylabError(f"clips table not found: {p} (make it with: storylab humor label DIR --out {p})")
    try:
        df = pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p, keep_default_na=False)
    except Exception as exc:
        raise StorylabError(f"unreadable clips table {p.name} ({type(exc).__name__})") from exc
    missing = set(CLIP_COLUMNS) - set(df.columns)
    if missing:
        raise StorylabError(f"{p.name} lacks column(s) {', '.join(sorted(missing))}; expected {', '.join(CLIP_COLUMNS)}")
    df["text"] = df["text"].fillna("").astype(str)
    df["file"] = [str(safe_clip_file(f, p.parent, f"clip file in {p.name}")) for f in df["file"]]
    return df
