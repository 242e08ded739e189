"""Bench: FunnyNet-W laughter detector speed (x real time on one core) and quality on held-out synthetic episodes.

Budgets (issue 6): >= 100x real time on one CPU core (one hour of stereo audio in under 36 s), and event
F1 >= 0.9 at IoU 0.5 against the synthetic sitcom's saved ground truth. Prints figures measured in this run.

    .venv/bin/python bench/humor_laughter.py [--data DIR] [--episodes 6] [--hours 1]
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
from storylab.humor.media import load_audio, write_video  # noqa: E402
from storylab.humor.synth import SynthConfig, synth_sitcom  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "storylab_humor_bench_laughter")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(1)

    files = sorted(args.data.glob("episode_*.mp4"))
    if len(files) < args.episodes:
        t0 = time.perf_counter()
        synth_sitcom(args.data, SynthConfig(episodes=args.episodes, seed=args.seed), progress=False)
        print(f"synthesised {args.episodes} episodes in {time.perf_counter() - t0:.1f} s wall")
        files = sorted(args.data.glob("episode_*.mp4"))
    files = files[:args.episodes]

    # quality: every episode detected together (KMeans spans all), scored against the saved truth
    results = laughter_events(files, LaughterConfig())
    pairs = []
    for r in results:
        truth = json.loads((args.data / "truth" / f"{Path(r.path).stem}.json").read_text())
        pairs.append((r.laughter, [(x["start"], x["end"]) for x in truth["laughter"]], truth["duration"]))
    q = pooled_detector_scores(pairs, iou=0.5)
    print(f"event-level @IoU0.5 over {len(files)} episodes: P {q['event_precision']:.3f}  R {q['event_recall']:.3f}  "
          f"F1 {q['event_f1']:.3f}  (predicted {q['events_predicted']}, truth {q['events_truth']})")
    print(f"time-level accuracy: {q['time_accuracy']:.3f}")

    # speed: an hour of the show's stereo audio as AAC in an .m4a, decoded and detected on one core
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
    print(f"budget: >= 100x real time -> {'met' if res.duration / cpu >= 100 else 'NOT met'} (CPU time); "
          f"event F1 >= 0.9 -> {'met' if q['event_f1'] >= 0.9 else 'NOT met'}")


if __name__ == "__main__":
    main()
