"""Unsupervised laughter detection from a sitcom's laugh track, FunnyNet-W's labelling recipe.

FunnyNet-W (Liu, Courant, Kalogeiton, IJCV 2024, Sec. 3.1) labels funny moments without annotation:
1. channel trick: dialogue is mixed equally into both stereo channels, the canned laughter is not, so
   L - R cancels the speech and keeps the laugh track (5.1: channel 0, as the official code; mono: the
   full mix);
2. energy-based events: frames above an energy threshold, gaps of at most 0.1 s closed, events of
   at least 0.8 s kept, longer ones than 11 s cut into pieces of at most 11 s, each padded by 0.6 s;
3. one embedding per event (BYOL-A in the paper; log-mel statistics here by default, a BYOL-A
   checkpoint from a local path when given), KMeans with 3 clusters over every event of every
   episode, the music cluster dropped, overlapping intervals merged. The paper drops the smallest
   cluster (``music_rule="smallest"``); the default here drops the tonal one (lowest spectral
   flatness), which keeps precision on short episodes where stingers are not rare (docs/humor.md).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from storylab.errors import StorylabError
from storylab.humor.media import AudioTrack, load_audio
from storylab.humor.melspec import MelConfig, log_mel


@dataclass
class LaughterConfig:
    """Settings of the laughter detector (the paper's values by default)."""

    channel: str = "auto"           # auto | diff | mix | <channel index>
    surround_channel: int = 0       # 5.1 channel used by "auto": 0 (front left, FFmpeg order FL FR FC LFE BL BR) as the official code
    min_duration: float = 0.8       # s
    max_duration: float = 11.0      # s; longer events are cut into pieces of at most this length and kept (auditok)
    strict_min_duration: bool = False  # False: the remainder of a cut event is kept even if shorter than min_duration (auditok)
    max_silence: float = 0.1        # s of inner silence closed inside one event
    padding: float = 0.6            # s added on both sides of each event
    threshold_db: float | None = None  # fixed energy threshold in dBFS; None = adaptive (Otsu on frame energies)
    floor_db: float = -70.0         # the adaptive threshold never goes below this (digital silence is not laughter)
    hop: float = 0.01               # s per energy frame
    smooth: float = 0.05            # s moving-average window on the energy
    clusters: int = 3               # KMeans clusters; one is dropped as music (see music_rule); 0 or 1 = no clustering
    music_rule: str = "tonal"       # tonal: drop the cluster of lowest spectral flatness if below tonal_flatness; smallest: the paper's
    tonal_flatness: float = 0.08    # mean spectral flatness under which a cluster counts as music (laughter: 0.15-0.4, music: < 0.05)
    embed_source: str = "detection" # detection: laughter channel over the event; raw: channel 0 over the padded span (official code)
    encoder: str | None = None      # path to a BYOL-A checkpoint (.pth/.safetensors); None = log-mel statistics
    seed: int = 0


@dataclass
class LaughterResult:
    """Laughter intervals of one file plus what the detector did."""

    path: str
    duration: float
    laughter: list[tuple[float, float]]
    candidates: list[tuple[float, float]] = field(default_factory=list)
    threshold_db: float = float("nan")
    channel: str = ""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The ``--json`` form: path and laughter intervals in seconds."""
        return {"path": self.path, "laughter": [{"start": round(s, 3), "end": round(e, 3)} for s, e in self.laughter]}


def laughter_channel(track: AudioTrack, config: LaughterConfig = LaughterConfig()) -> tuple[np.ndarray, str, str | None]:
    """Return the signal that carries the laugh track, its description and a warning (FunnyNet-W's channel trick).

    The signal is always a new array, never a view: a 22-minute 5.1 episode at 16 kHz is about 480 MiB of
    float32, and a view of one channel would keep all six alive for the whole season's clustering.
    """
    c = track.channels
    choice = config.channel
    if choice not in ("auto", "diff", "mix") and not choice.lstrip("-").isdigit():
        raise StorylabError(f"unknown laughter channel '{choice}' (use auto, diff, mix or a channel index)")
    if choice.lstrip("-").isdigit():
        idx = int(choice)
        if not 0 <= idx < c:
            raise StorylabError(f"channel {idx} does not exist: the audio has {c} channel(s)")
        return track.samples[idx].copy(), f"channel {idx}", None
    if choice == "mix":
        return track.mono(), "full mix", None
    if c == 1:
        return track.samples[0].copy(), "full mix (mono)", (
            "mono audio: no L - R channel trick possible, detecting on the full mix where speech and music "
            "also carry energy, so laughter detection is weaker")
    if choice == "diff" or c == 2:
        return track.samples[0] - track.samples[1], "L - R", None
    if c >= 6:
        idx = min(config.surround_channel, c - 1)
        return track.samples[idx].copy(), f"channel {idx} of {track.layout}", None
    return track.samples[0] - track.samples[1], "L - R", None


def frame_energy_db(signal: np.ndarray, sample_rate: int, hop: float = 0.01, smooth: float = 0.05) -> np.ndarray:
    """Short-time energy in dBFS, one value per ``hop`` seconds, smoothed by a moving average."""
    n = max(1, int(round(hop * sample_rate)))
    usable = (len(signal) // n) * n
    if usable == 0:
        return np.zeros(0, dtype=np.float32)
    x = signal[:usable].astype(np.float32, copy=False).reshape(-1, n)
    power = np.einsum("ij,ij->i", x, x) / n
    width = max(1, int(round(smooth / hop)))
    if width > 1 and len(power) >= width:
        power = np.convolve(power, np.ones(width, dtype=np.float32) / width, mode="same")
    return (10.0 * np.log10(power + 1e-10)).astype(np.float32)


def adaptive_threshold(energy_db: np.ndarray, span_db: float = 80.0) -> float:
    """Otsu's two-class threshold on the frame energies (dB), floored ``span_db`` below the loudest frames."""
    if energy_db.size == 0:
        return 0.0
    top = float(np.percentile(energy_db, 99.9))
    values = np.clip(energy_db, top - span_db, top)
    hist, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between))])


def energy_events(energy_db: np.ndarray, threshold_db: float, config: LaughterConfig = LaughterConfig()) -> list[tuple[float, float]]:
    """Energy-based events (FunnyNet-W): runs above threshold, inner gaps <= max_silence closed, 0.8-11 s kept.

    A run longer than ``max_duration`` is cut into consecutive pieces of ``max_duration`` and each is
    kept, as auditok (the official detector) delivers a token when it reaches its maximum length and
    starts the next at once; the last piece is kept even when shorter than ``min_duration`` unless
    ``strict_min_duration`` (auditok's ``strict_min_dur``, off by default).
    """
    active = energy_db > threshold_db
    if not active.any():
        return []
    padded = np.concatenate([[False], active, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    gap = int(round(config.max_silence / config.hop))
    runs: list[list[int]] = []
    for s, e in zip(starts, ends):
        if runs and s - runs[-1][1] <= gap:
            runs[-1][1] = e
        else:
            runs.append([int(s), int(e)])
    longest = max(1, int(round(config.max_duration / config.hop)))
    shortest = int(round(config.min_duration / config.hop))
    out = []
    for s, e in runs:
        if e - s < shortest:
            continue
        cut = False
        while e - s > longest:  # auditok: a token at max_dur is delivered, the next one starts at once
            out.append((s * config.hop, (s + longest) * config.hop))
            s += longest
            cut = True
        if e - s >= shortest or (cut and not config.strict_min_duration):
            out.append((s * config.hop, e * config.hop))
    return out


def merge_intervals(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Merge overlapping or touching intervals."""
    merged: list[list[float]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(float(s), float(e)) for s, e in merged]


def spectral_flatness(spec: np.ndarray) -> np.ndarray:
    """Per-frame spectral flatness (Wiener entropy: geometric over arithmetic mean power) of a log-mel (n_mels, frames)."""
    power = np.exp(spec)
    return np.exp(spec.mean(axis=0)) / (power.mean(axis=0) + 1e-12)  # in (0, 1]: ~0 for a tone, high for noise


def event_flatness(segment: np.ndarray, mel: MelConfig = MelConfig()) -> float:
    """Mean spectral flatness of one event: low for tonal music, high for the noisy, voiced texture of laughter."""
    return float(spectral_flatness(log_mel(segment, mel).numpy()).mean())


def logmel_statistics(segment: np.ndarray, mel: MelConfig = MelConfig(), bands: int = 16) -> np.ndarray:
    """Event embedding from log-mel statistics: coarse-band mean/std, temporal change and spectral flatness (50-d).

    The 64 mel bands are pooled to ``bands`` broad bands so that a riff replayed a semitone higher stays
    close to itself; spectral flatness separates tonal music from the noisy, voiced texture of laughter.
    """
    spec = log_mel(segment, mel).numpy()  # (n_mels, frames)
    coarse = spec.reshape(bands, -1, spec.shape[1]).mean(axis=1)  # (bands, frames)
    delta = np.abs(np.diff(coarse, axis=1)).mean(axis=1) if coarse.shape[1] > 1 else np.zeros(bands)
    flatness = spectral_flatness(spec)
    return np.concatenate([coarse.mean(axis=1), coarse.std(axis=1), delta,
                           [flatness.mean(), flatness.std()]]).astype(np.float32)


def event_segments(signals: Sequence[np.ndarray], events: Sequence[Sequence[tuple[float, float]]], sample_rate: int,
                   padding: float = 0.0) -> list[np.ndarray]:
    """The samples of every event of every file, each widened by ``padding`` seconds on both sides."""
    return [sig[max(0, int((s - padding) * sample_rate)):max(0, int((e + padding) * sample_rate))]
            for sig, evs in zip(signals, events) for s, e in evs]


def event_embeddings(signals: Sequence[np.ndarray], events: Sequence[Sequence[tuple[float, float]]], sample_rate: int,
                     encoder: str | None = None, padding: float = 0.0) -> np.ndarray:
    """One embedding per event of every file: log-mel statistics, or a BYOL-A encoder loaded from ``encoder``."""
    segments = event_segments(signals, events, sample_rate, padding)
    if not segments:
        return np.zeros((0, 0), dtype=np.float32)
    if encoder is None:
        return np.stack([logmel_statistics(seg) for seg in segments])
    from storylab.humor.encoders import load_byol_a

    model = load_byol_a(encoder)
    return model.embed_segments(segments)


def music_cluster_mask(embeddings: np.ndarray, clusters: int = 3, seed: int = 0, rule: str = "smallest",
                       flatness: np.ndarray | None = None, tonal_flatness: float = 0.08) -> np.ndarray:
    """KMeans over standardised event embeddings; True for events outside the music cluster.

    ``rule="smallest"`` is the paper's: the least populated cluster is music. It holds when stingers are
    much rarer than laughs; on short episodes they are not (two stingers a minute against three or four
    laughs), and with three clusters KMeans spends one on a lone outlier laugh, which is then dropped
    while the stinger cluster is kept. ``rule="tonal"`` drops instead the cluster whose mean spectral
    ``flatness`` is lowest, and only when that mean is under ``tonal_flatness``: music is made of tones,
    laughter of noise, so a cluster is called music for what it sounds like, not for how many it holds,
    and nothing is dropped when no cluster is tonal. With no more events than clusters, the paper's rule
    keeps them all and the tonal rule drops each tonal event on its own.
    """
    from sklearn.cluster import KMeans

    if rule not in ("smallest", "tonal"):
        raise StorylabError(f"unknown music rule '{rule}' (use tonal or smallest)")
    if rule == "tonal" and (flatness is None or len(flatness) != len(embeddings)):
        raise StorylabError("the tonal music rule needs one spectral flatness per event")
    n = len(embeddings)
    if clusters <= 1:
        return np.ones(n, dtype=bool)
    if n <= clusters:  # too few to cluster: each event is its own cluster
        return np.ones(n, dtype=bool) if rule == "smallest" else np.asarray(flatness) >= tonal_flatness
    x = embeddings - embeddings.mean(axis=0)
    x = x / (x.std(axis=0) + 1e-6)
    labels = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(x)
    if rule == "smallest":
        counts = np.bincount(labels, minlength=clusters)
        return labels != int(np.argmin(counts))
    means = np.array([flatness[labels == k].mean() if (labels == k).any() else np.inf for k in range(clusters)])
    tonal = int(np.argmin(means))
    if means[tonal] >= tonal_flatness:
        return np.ones(n, dtype=bool)
    return labels != tonal


def laughter_events(paths: Sequence[str | os.PathLike], config: LaughterConfig = LaughterConfig(),
                    tracks: Sequence[AudioTrack] | None = None, progress: bool = False) -> list[LaughterResult]:
    """Detect laughter in every file with FunnyNet-W's unsupervised recipe (clustering spans all files)."""
    from storylab.training.progress import progress_bar

    if config.embed_source not in ("detection", "raw"):
        raise StorylabError(f"unknown embedding source '{config.embed_source}' (use detection or raw)")
    signals, raw_signals, results, raw_events = [], [], [], []
    sample_rate = 16_000
    with progress_bar("decoding audio", total=len(paths), enabled=progress) as bar:
        for i, path in enumerate(paths):
            track = tracks[i] if tracks is not None else load_audio(path)
            sample_rate = track.sample_rate
            signal, described, warning = laughter_channel(track, config)
            if warning:
                warnings.warn(f"{Path(path).name}: {warning}", stacklevel=2)
            energy = frame_energy_db(signal, track.sample_rate, config.hop, config.smooth)
            threshold = config.threshold_db if config.threshold_db is not None else \
                max(adaptive_threshold(energy), config.floor_db)
            events = energy_events(energy, threshold, config)
            result = LaughterResult(path=str(path), duration=track.duration, laughter=[], candidates=events,
                                    threshold_db=threshold, channel=described,
                                    notes=[warning] if warning else [])
            signals.append(signal)
            if config.embed_source == "raw":  # the official code embeds channel 0 of the raw track
                raw_signals.append(track.samples[0].copy())
            del track
            raw_events.append(events)
            results.append(result)
            bar.advance()
    if config.embed_source == "raw":
        embeddings = event_embeddings(raw_signals, raw_events, sample_rate, config.encoder, config.padding)
    else:
        embeddings = event_embeddings(signals, raw_events, sample_rate, config.encoder)
    flatness = None
    if config.music_rule == "tonal":
        flatness = np.array([event_flatness(seg) for seg in event_segments(signals, raw_events, sample_rate)])
    keep = music_cluster_mask(embeddings, config.clusters, config.seed, config.music_rule, flatness,
                              config.tonal_flatness) if len(embeddings) else np.zeros(0, bool)
    if 0 < len(embeddings) <= config.clusters and config.clusters > 1:
        for r in results:
            r.notes.append(f"only {len(embeddings)} candidate event(s): too few to cluster, "
                           + ("all kept" if config.music_rule == "smallest" else "tonal ones dropped as music"))
    k = 0
    for result, events in zip(results, raw_events):
        kept = []
        for s, e in events:
            if keep[k]:
                kept.append((max(0.0, s - config.padding), min(result.duration, e + config.padding)))
            k += 1
        result.laughter = merge_intervals(kept)
        if not result.laughter:
            result.notes.append("no laughter found")
    return results
