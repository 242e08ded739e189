"""Bench: FunnyNet-W laughter detector quality on short, long and independently mixed episodes, and its speed.

Three sets, each detected together (KMeans spans the set), scored event-level at IoU 0.5:
- short: four 60 s synthetic episodes (``humor synth``, two stingers each: stingers are not rare);
- long: six 120 s synthetic episodes;
- mix: three 48 kHz stereo files NOT made by ``humor synth``: real recorded speech (Debian
  asterisk-core-sounds-en-wav prompts and pocketsphinx-testdata LibriVox utterances) mixed at the
  centre, this bench's own crowd laughter (noise-excited "ha" syllables, a 14 s laugh among them),
  plucked-string and organ music cues, and an independent noise floor per channel.
For each set the paper's music rule (smallest cluster) and storylab's (tonal cluster) are measured, with
each embedding source (storylab's detection channel, the official raw channel 0 over the padded span).
Budgets: event precision >= 0.9 on every set with the default settings; >= 100x real time on one core.

    .venv/bin/python bench/humor_laughter.py [--data DIR] [--hours 1] [--skip-speed]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from storylab.humor.evaluation import pooled_detector_scores  # noqa: E402
from storylab.humor.laughter import LaughterConfig, laughter_events  # noqa: E402
from storylab.humor.media import load_audio, write_video, write_wav  # noqa: E402
from storylab.humor.synth import SynthConfig, synth_sitcom  # noqa: E402

MIX_RATE = 48_000
SPEECH_DIRS = (Path("/usr/share/asterisk/sounds/en"), Path("/usr/share/pocketsphinx/test/data/librivox"))


def ha_laughter(seconds: float, rng: np.random.Generator, sr: int = MIX_RATE) -> np.ndarray:
    """A crowd laugh (2, N) built differently from ``humor synth``: noise-excited two-formant "ha" syllables."""
    from scipy.signal import butter, lfilter

    n = int(seconds * sr)
    out = np.zeros((2, n), np.float32)
    for _ in range(int(rng.integers(6, 14))):
        voice = np.zeros(n, np.float32)
        t = rng.uniform(0, 0.3)
        rate = rng.uniform(3.5, 6.0)
        f1, f2 = rng.uniform(600, 900), rng.uniform(1100, 1600)
        while t < seconds - 0.2:
            length = int(rng.uniform(0.08, 0.16) * sr)
            s = int(t * sr)
            if s + length > n:
                break
            excitation = rng.standard_normal(length)
            f0 = rng.uniform(150, 380)
            excitation += 2.0 * np.sign(np.sin(2 * np.pi * f0 * np.arange(length) / sr))  # buzzy voicing
            syl = np.zeros(length)
            for f in (f1, f2):
                b, a = butter(2, [f * 0.8 / (sr / 2), f * 1.25 / (sr / 2)], btype="band")
                syl += lfilter(b, a, excitation)
            env = np.hanning(length)
            voice[s:s + length] += (syl * env).astype(np.float32)
            t += 1.0 / rate * rng.uniform(0.8, 1.2)
        pan = rng.uniform(0.1, 0.6)
        out[0] += (0.5 + pan / 2) * voice
        out[1] += (0.5 - pan / 2) * voice
    fade = np.minimum(1.0, np.linspace(seconds, 0, n) / 0.8).astype(np.float32)
    out *= fade
    return (out / (np.abs(out).max() + 1e-9) * rng.uniform(0.25, 0.4)).astype(np.float32)


def music_cue(seconds: float, rng: np.random.Generator, sr: int = MIX_RATE) -> np.ndarray:
    """A music cue (2, N): Karplus-Strong plucked notes on one side, a sustained organ chord on the other."""
    n = int(seconds * sr)
    left = np.zeros(n, np.float32)
    root = 196.0 * 2 ** (int(rng.integers(0, 7)) / 12)
    notes = [0, 4, 7, 12, 7, 4]
    step = seconds / len(notes)
    for i, st in enumerate(notes):
        f = root * 2 ** (st / 12)
        period = int(sr / f)
        buf = rng.uniform(-1, 1, period)
        length = int(step * sr)
        pluck = np.empty(length)
        for k in range(length):
            pluck[k] = buf[k % period]
            buf[k % period] = 0.996 * 0.5 * (buf[k % period] + buf[(k + 1) % period])
        s = int(i * step * sr)
        left[s:s + length] += pluck[:n - s].astype(np.float32)
    t = np.arange(n) / sr
    organ = sum(np.sin(2 * np.pi * root / 2 * r * h * t) / h for r in (1.0, 1.5, 2.0) for h in (1, 2, 3))
    env = np.minimum(1.0, t / 0.05) * np.minimum(1.0, (seconds - t) / 0.1)
    right = (organ * env).astype(np.float32)
    out = np.stack([left + 0.3 * right, right + 0.2 * left])
    return (out / (np.abs(out).max() + 1e-9) * 0.35).astype(np.float32)


def speech_pool() -> list[np.ndarray]:
    """Real recorded speech, mono at 48 kHz: the asterisk prompts and pocketsphinx's LibriVox utterances."""
    files = []
    for d in SPEECH_DIRS:
        if not d.is_dir():
            raise SystemExit(f"error: {d} is missing: apt-get install asterisk-core-sounds-en-wav pocketsphinx-testdata")
        files += sorted(d.glob("*.wav"))
    return [load_audio(f, MIX_RATE).mono() for f in files]


def independent_mix(out: Path, files: int = 3, seconds: float = 90.0, seed: int = 5) -> None:
    """Write ``files`` stereo 48 kHz WAVs and truth/<stem>.json: speech centred, laughs after some lines, music cues."""
    rng = np.random.default_rng(seed)
    pool = speech_pool()
    (out / "truth").mkdir(parents=True, exist_ok=True)
    long_done = False
    for i in range(files):
        n = int(seconds * MIX_RATE)
        mix = (rng.standard_normal((2, n)) * 1e-3).astype(np.float32)  # -60 dBFS room noise, independent per channel
        laughs, music = [], []
        t = float(rng.uniform(1.0, 2.0))
        lines = 0
        while t < seconds - 18:
            if lines % 5 == 2:
                d = float(rng.uniform(1.8, 3.2))
                cue = music_cue(d, rng)
                s = int(t * MIX_RATE)
                mix[:, s:s + cue.shape[1]] += cue
                music.append((t, t + d))
                t += d + rng.uniform(0.4, 0.8)
            speech = pool[int(rng.integers(len(pool)))]
            speech = speech / (np.abs(speech).max() + 1e-9) * 0.4
            s = int(t * MIX_RATE)
            m = min(len(speech), n - s)
            mix[:, s:s + m] += speech[:m]
            t += m / MIX_RATE + rng.uniform(0.3, 0.6)
            lines += 1
            if rng.random() < 0.6:
                d = 14.0 if not long_done and i == files - 1 else float(rng.uniform(1.8, 5.0))
                long_done = long_done or d == 14.0
                laugh = ha_laughter(d, rng)
                s = int(t * MIX_RATE)
                mix[:, s:s + laugh.shape[1]] += laugh[:, :n - s]
                laughs.append((t, t + d))
                t += d + rng.uniform(0.3, 0.8)
        name = f"mix_{i + 1:02d}"
        write_wav(out / f"{name}.wav", np.clip(mix, -1, 1), MIX_RATE)
        (out / "truth" / f"{name}.json").write_text(json.dumps({
            "duration": seconds, "laughter": [{"start": s, "end": e} for s, e in laughs],
            "music": [{"start": s, "end": e} for s, e in music]}))


def scores(files: list[Path], truth_dir: Path, config: LaughterConfig) -> dict:
    """Detect over all ``files`` together and score against truth_dir/<stem>.json."""
    results = laughter_events(files, config)
    pairs = []
    for r in results:
        truth = json.loads((truth_dir / f"{Path(r.path).stem}.json").read_text())
        pairs.append((r.laughter, [(x["start"], x["end"]) for x in truth["laughter"]], truth["duration"]))
    return pooled_detector_scores(pairs, iou=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "storylab_humor_bench_laughter")
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)

    sets = {"short (4 x 60 s)": (args.data / "short", SynthConfig(episodes=4, duration=60.0, scenes=2, seed=0)),
            "long (6 x 120 s)": (args.data / "long", SynthConfig(episodes=6, duration=120.0, seed=11))}
    found: dict[str, list[Path]] = {}
    for name, (folder, cfg) in sets.items():
        files = sorted(folder.glob("episode_*.mp4"))
        if len(files) < cfg.episodes:
            t0 = time.perf_counter()
            synth_sitcom(folder, cfg, progress=False)
            print(f"synthesised {name} in {time.perf_counter() - t0:.1f} s wall")
            files = sorted(folder.glob("episode_*.mp4"))
        found[name] = files[:cfg.episodes]
    mix_dir = args.data / "mix"
    if len(list(mix_dir.glob("mix_*.wav"))) < 3:
        independent_mix(mix_dir)
    found["mix (3 x 90 s, real speech, 48 kHz)"] = sorted(mix_dir.glob("mix_*.wav"))

    variants = [("tonal", "detection"), ("smallest", "detection"), ("tonal", "raw"), ("smallest", "raw")]
    print(f"{'set':38s} {'music rule':10s} {'embedding':10s} {'P':>6s} {'R':>6s} {'F1':>6s} {'pred':>5s} {'truth':>5s}")
    met = True
    for name, files in found.items():
        truth_dir = files[0].parent / "truth"
        for rule, source in variants:
            q = scores(files, truth_dir, LaughterConfig(music_rule=rule, embed_source=source))
            default = rule == "tonal" and source == "detection"
            met &= (q["event_precision"] >= 0.9) or not default
            print(f"{name:38s} {rule:10s} {source:10s} {q['event_precision']:6.3f} {q['event_recall']:6.3f} "
                  f"{q['event_f1']:6.3f} {q['events_predicted']:5d} {q['events_truth']:5d}{'  (default)' if default else ''}")
    print(f"budget: event precision >= 0.9 on every set with the defaults -> {'met' if met else 'NOT met'}")
    if args.skip_speed:
        return

    # speed: an hour of the show's stereo audio as AAC in an .m4a, decoded and detected on one core
    files = found["long (6 x 120 s)"]
    long_path = args.data / f"long_{args.hours:g}h.m4a"
    if not long_path.exists():
        parts = [load_audio(f).samples for f in files]
        need = int(args.hours * 3600 * 16_000)
        cat = np.concatenate(parts * (need // sum(p.shape[1] for p in parts) + 1), axis=1)[:, :need]
        write_video(long_path, [], 1, cat)
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    res = laughter_events([long_path], LaughterConfig())[0]
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    print(f"{res.duration / 3600:.2f} h stereo AAC: {len(res.laughter)} laughs, {wall:.1f} s wall "
          f"({res.duration / wall:.0f}x real time), {cpu:.1f} s CPU on one thread ({res.duration / cpu:.0f}x real time per core)")
    print(f"budget: >= 100x real time -> {'met' if res.duration / cpu >= 100 else 'NOT met'} (CPU time)")


if __name__ == "__main__":
    main()
