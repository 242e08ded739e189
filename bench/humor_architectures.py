"""Bench: FunnyNet-W with storylab's fusion and recipe vs the paper's (``--architecture paper``), same held-out split.

Labels a folder of synthetic episodes once (clips.csv + laughter.json, the default detector), trains
the AVT model with each architecture and its own recipe (storylab: AdamW 3e-4 cosine, modality dropout
0.5; paper: Adam 1e-4 halved at epochs 20/40/80/100, no modality dropout) on the train split with the
same seed, and prints each one's held-out F1 with a 95% bootstrap interval and the exact McNemar
p-value of their paired predictions (storylab.metrics.significance).

    .venv/bin/python bench/humor_architectures.py [--data DIR] [--episodes 8] [--epochs 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from storylab.humor.config import FunnyNetConfig  # noqa: E402
from storylab.humor.data import write_laughter_json  # noqa: E402
from storylab.humor.labels import LabelConfig, clip_table, write_clip_table  # noqa: E402
from storylab.humor.laughter import LaughterConfig, laughter_events  # noqa: E402
from storylab.humor.synth import SynthConfig, synth_sitcom  # noqa: E402
from storylab.humor.train import FunnyNetTrainConfig, classification_scores, load_split, predict, train_funnynet  # noqa: E402
from storylab.metrics.significance import f1_bootstrap_interval, mcnemar_exact  # noqa: E402
from storylab.subtitles import read_srt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "storylab_humor_bench_funnynet")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    files = sorted(args.data.glob("episode_*.mp4"))
    if len(files) < args.episodes:
        synth_sitcom(args.data, SynthConfig(episodes=args.episodes, seed=args.seed), progress=False)
        files = sorted(args.data.glob("episode_*.mp4"))
    files = files[:args.episodes]
    clips = args.data / "clips_architectures.csv"
    results = laughter_events(files, LaughterConfig())
    df = clip_table(results, [read_srt(f.with_suffix(".srt")) for f in files], LabelConfig(seed=args.seed))
    write_clip_table(df, clips)
    write_laughter_json(clips.with_name("laughter.json"), results, names=True)
    full = FunnyNetConfig(modalities="avt")
    train_in, test_in = load_split(clips, "train", full), load_split(clips, "test", full)
    print(f"{args.data}: {len(files)} episodes, train {len(train_in)} clips, test {len(test_in)} clips")
    rows, correct = [], {}
    labels = test_in.label.numpy()
    for arch, lr, drop in (("storylab", 3e-4, FunnyNetConfig.modality_dropout), ("paper", 1e-4, 0.0)):
        cfg = FunnyNetConfig(modalities="avt", architecture=arch, modality_dropout=drop)
        t0 = time.process_time()
        model, _ = train_funnynet(train_in, cfg, FunnyNetTrainConfig(epochs=args.epochs, lr=lr, seed=args.seed, recipe=arch,
                                                                     progress=False),
                                  args.data / f"funnynet_avt_{arch}.safetensors")
        cpu = time.process_time() - t0
        probs = predict(model, test_in)
        s = classification_scores(labels, probs)
        low, high = f1_bootstrap_interval(labels, probs >= 0.5)
        correct[arch] = (probs >= 0.5) == labels.astype(bool)
        params = sum(p.numel() for p in model.parameters())
        rows.append((arch, s["f1"], low, high, s["acc"], params, cpu))
        print(f"{arch:8s}: held-out F1 {s['f1']:.3f} [{low:.3f}, {high:.3f}]  acc {s['acc']:.3f}  "
              f"params {params / 1e6:.2f} M  train {cpu:.0f} s CPU", flush=True)
    p = mcnemar_exact(correct["storylab"], correct["paper"])
    print(f"McNemar exact p (storylab vs paper, {len(labels)} paired clips): {p:.3f}; "
          f"disagreements {int((correct['storylab'] != correct['paper']).sum())}")


if __name__ == "__main__":
    main()
