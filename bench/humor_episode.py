"""Bench: `humor detect` at episode length, every window cut first vs windows cut and scored in batches.

Before, `humor detect` cut every 8 s window of the episode (a 1 s stride stores each second 8 times) and then
scored them; now :func:`storylab.humor.detect.window_scores` decodes the media once and cuts and scores 64
windows at a time. Each variant runs in a fresh process per episode length, so its peak RSS
(``ru_maxrss``) and CPU time are its own; the laughter intervals are detected once beforehand and passed to
both (the same silencing), so only window cutting and scoring differ. The scores must agree.

    .venv/bin/python bench/humor_episode.py [--data DIR] [--minutes 2.75 5.5 11 22] [--checkpoint PATH]

Synthetic episodes of the asked lengths are made in DIR first if missing (espeak-ng needed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
from storylab.humor.train import load_funnynet, predict
from storylab.humor.detect import DetectConfig, window_scores
from storylab.humor.subtitles import read_subtitles, text_in_window
from storylab.humor.media import media_duration
args = json.loads(sys.argv[1])
model = load_funnynet(args["checkpoint"])
from storylab.humor.data import text_encoder_for
text_encoder_for(model.config)  # load the text encoder before the baseline, as both variants need it
subs = read_subtitles(args["srt"], video_id="x")
laughter = [tuple(x) for x in args["laughter"]]
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.process_time()
if args["variant"] == "all windows":  # the detector before: every window's inputs cut, then scored
    from storylab.humor.data import clip_inputs
    ends = np.arange(1.0, media_duration(args["video"]) + 1e-9, 1.0)
    starts = np.maximum(0.0, ends - model.config.window)
    texts = [text_in_window(subs, s, e) for s, e in zip(starts, ends)]
    inputs = clip_inputs([args["video"]] * len(ends), list(starts), list(ends), [0] * len(ends), texts, model.config,
                         {args["video"]: laughter})
    scores = predict(model, inputs)
else:
    ends, _, scores, _ = window_scores(args["video"], model, subs, DetectConfig(stride=1.0), laughter)
cpu = time.process_time() - t0
print("RESULT " + json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                              "base_rss_mb": base_rss / 1024, "cpu_s": cpu, "windows": len(ends),
                              "scores": [float(x) for x in scores]}))
"""


def episode(data: Path, minutes: float) -> tuple[Path, Path]:
    """A synthetic episode of about ``minutes`` of dialogue in DATA/m<minutes>/ (made if missing)."""
    from storylab.humor.synth import SynthConfig, synth_sitcom

    folder = data / f"m{minutes:g}"
    video = folder / "episode_001.mp4"
    if not video.exists():
        synth_sitcom(folder, SynthConfig(episodes=1, duration=60.0 * minutes, scenes=max(2, int(minutes // 2)), seed=5),
                     progress=False)
    return video, video.with_suffix(".srt")


def run(variant: str, video: Path, srt: Path, laughter, checkpoint: str) -> dict:
    arg = json.dumps({"variant": variant, "video": str(video), "srt": str(srt), "laughter": laughter, "checkpoint": checkpoint})
    done = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                               "PATH": "/usr/bin:/bin"})
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{variant} on {video} failed:\n{done.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    from storylab.humor.laughter import laughter_events

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/humor_episode_bench"))
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.75, 5.5, 11.0, 22.0])
    parser.add_argument("--checkpoint", default=str(ROOT / "storylab" / "assets" / "humor" / "funnynet_avt.safetensors"))
    args = parser.parse_args()
    rows = []
    for minutes in args.minutes:
        video, srt = episode(args.data, minutes)
        laughter = [list(x) for x in laughter_events([video])[0].laughter]
        before = run("all windows", video, srt, laughter, args.checkpoint)
        after = run("batched", video, srt, laughter, args.checkpoint)
        diff = float(np.abs(np.array(before["scores"]) - np.array(after["scores"])).max())
        rows.append((minutes, before, after, diff))
        print(f"{minutes:g} min: {before['windows']} windows; all windows {before['peak_rss_mb']:.0f} MB peak, "
              f"{before['cpu_s']:.1f} s CPU; batched {after['peak_rss_mb']:.0f} MB, {after['cpu_s']:.1f} s CPU; "
              f"max |score difference| {diff:.1e}", flush=True)
    print()
    print("| episode | windows | peak RSS, all windows | peak RSS, batched | ratio | growth above load, all / batched "
          "| CPU s, all windows | CPU s, batched | CPU ratio | max score diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for minutes, b, a, diff in rows:
        print(f"| {minutes:g} min | {b['windows']} | {b['peak_rss_mb']:.0f} MB | {a['peak_rss_mb']:.0f} MB | "
              f"{b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x | {b['peak_rss_mb'] - b['base_rss_mb']:.0f} / "
              f"{a['peak_rss_mb'] - a['base_rss_mb']:.0f} MB | {b['cpu_s']:.1f} | {a['cpu_s']:.1f} | "
              f"{b['cpu_s'] / a['cpu_s']:.2f}x | {diff:.1e} |")
    if len(rows) >= 2:
        x = np.log([r[0] for r in rows])
        for name, k in (("all windows", 1), ("batched", 2)):
            growth = np.array([r[k]["peak_rss_mb"] - r[k]["base_rss_mb"] for r in rows])
            cpu = np.array([r[k]["cpu_s"] for r in rows])
            g_mem = np.polyfit(x, np.log(np.maximum(growth, 1.0)), 1)[0]
            g_cpu = np.polyfit(x, np.log(cpu), 1)[0]
            print(f"{name}: memory above the loaded model grows as length^{g_mem:.2f}, CPU as length^{g_cpu:.2f}")


if __name__ == "__main__":
    main()
