"""Bench: score FunnyNet-W checkpoints on every clip of labelled folders, and on clips ending after plain lines.

Each checkpoint's F1, accuracy and correct clips on all clips of each ``--data`` folder (episodes no
model trained on), then pooled: the held-out split of one training run is small (60 clips, one clip =
0.017 F1), so comparing models needs more unseen episodes. The inputs are cut once for all checkpoints.

Probe (folders with the synthetic ground truth): the labelled negatives end at random moments, most of
them mid-sentence, while every positive ends 0.15-0.4 s after a punchline (the laughter onset). A model
can therefore separate them by "speech just ended" alone, a cue real sitcoms do not give (most line ends
draw no laugh). The probe cuts, from ``truth/*.json``, one 8 s clip ending 0.25 s after each plain line
(no laughter onset within 2 s) and reports the share of them each checkpoint calls funny, beside its
false and true positive rates on the labelled clips.

    .venv/bin/python bench/humor_score.py --data DIR [--data DIR2 ...] CKPT [CKPT ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from storylab.humor.data import clip_inputs, read_laughter_json
from storylab.humor.config import FunnyNetConfig
from storylab.humor.train import classification_scores, load_funnynet, load_split, predict


def line_end_clips(data: Path, window: float = 8.0, after: float = 0.25, margin: float = 2.0):
    """(files, starts, ends, texts) of the clips ending ``after`` s past each plain line's end."""
    files, starts, ends, texts = [], [], [], []
    for truth in sorted((data / "truth").glob("*.json")):
        t = json.loads(truth.read_text())
        onsets = np.array([x["start"] for x in t["laughter"]])
        media = data / f"{t['episode']}.mp4"
        for ln in t["lines"]:
            e = ln["end"] + after
            if ln["punchline"] or e < window or (len(onsets) and np.abs(onsets - e).min() <= margin):
                continue
            if any(x["start"] < e < x["end"] for x in t["laughter"]):
                continue
            said = [x["text"] for x in t["lines"] if x["end"] > e - window and x["start"] < e]
            files.append(str(media)), starts.append(e - window), ends.append(e), texts.append(" ".join(said))
    return files, starts, ends, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True, help="labelled folder (repeatable)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    full = FunnyNetConfig(modalities="avt")
    sets = {str(d): load_split(d / "clips.csv", None, full) for d in args.data}
    probe = None
    if all((d / "truth").is_dir() for d in args.data):
        cut = [line_end_clips(d) for d in args.data]
        laughter = {k: v for d in args.data for k, v in read_laughter_json(d / "laughter.json").items()}
        files, starts, ends, texts = ([x for c in cut for x in c[i]] for i in range(4))
        probe = clip_inputs(files, starts, ends, [0] * len(files), texts, full, laughter)
        print(f"probe: {len(files)} clips ending 0.25 s after a plain line (no laughter onset within 2 s)")
    labels = {k: v.label.numpy() for k, v in sets.items()}
    print("sets: " + ", ".join(f"{k} ({len(y)} clips, {int(y.sum())} funny)" for k, y in labels.items()))
    for ck in args.checkpoints:
        model = load_funnynet(ck)
        probs = {k: predict(model, v) for k, v in sets.items()}
        parts = []
        for k, p in probs.items():
            s = classification_scores(labels[k], p)
            parts.append(f"{Path(k).name} F1 {s['f1']:.3f} ({int(round(s['acc'] * s['clips']))}/{s['clips']})")
        y, p = np.concatenate(list(labels.values())), np.concatenate(list(probs.values()))
        s = classification_scores(y, p)
        line = f"{str(ck):<44} " + "  ".join(parts) + f"  pooled F1 {s['f1']:.3f} acc {s['acc']:.3f}"
        line += f"  FPR {np.mean(p[y == 0] >= 0.5):.3f} TPR {np.mean(p[y == 1] >= 0.5):.3f}"
        if probe is not None:
            line += f"  line-end probe called funny {np.mean(predict(model, probe) >= 0.5):.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
