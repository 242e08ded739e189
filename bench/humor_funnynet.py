"""Bench: FunnyNet-W on held-out synthetic sitcom episodes, the modality ablation, and the wall times.

Budgets (issue 6): AVT F1 >= 0.85 on held-out episodes; the AVT model at least as good as the best single
modality; `storylab humor synth --episodes 4` and a default training run each under 10 minutes on 2 CPU
cores. Everything printed is measured in this run (wall time, and CPU time since the machine may be shared).

    .venv/bin/python bench/humor_funnynet.py [--data DIR] [--episodes 8] [--holdout 0.25] [--epochs 100]
        [--unseen DIR] [--modality-dropout P] [--aux-weight W] [--seed S] [--skip-label] [--subsets a,avt]

``--unseen DIR`` also scores every clip of DIR/clips.csv (episodes no model saw, labelled by `storylab
humor label`), a second test set beside the held-out split.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from storylab.humor.data import write_laughter_json
from storylab.humor.labels import LabelConfig, clip_table, write_clip_table
from storylab.humor.laughter import LaughterConfig, laughter_events
from storylab.humor.config import ABLATION_SUBSETS, FunnyNetConfig
from storylab.subtitles import read_srt
from storylab.humor.synth import SynthConfig, synth_sitcom
from storylab.humor.train import FunnyNetTrainConfig, classification_scores, load_split, predict, train_funnynet


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "storylab_humor_bench_funnynet")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--holdout", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--aux-weight", type=float, default=None, help="unimodal auxiliary loss weight (default: the model's)")
    parser.add_argument("--modality-dropout", type=float, default=None, help="modality dropout probability (default: the model's)")
    parser.add_argument("--unseen", type=Path, default=None, help="also score all clips of this labelled folder")
    parser.add_argument("--skip-label", action="store_true", help="reuse DATA/clips.csv and laughter.json")
    parser.add_argument("--subsets", default=",".join(ABLATION_SUBSETS))
    parser.add_argument("--save-avt", type=Path, default=None, help="Also copy the AVT checkpoint here.")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread: the bench machine may be shared; CPU time is reported too

    if args.skip_label:
        print("reusing " + str(args.data / "clips.csv"))
    else:
        if len(list(args.data.glob("episode_*.mp4"))) < args.episodes:
            _, w4, c4 = timed(lambda: synth_sitcom(args.data, SynthConfig(episodes=args.episodes, seed=args.seed), progress=False))
            print(f"synth of {args.episodes} episodes: {w4:.1f} s wall, {c4:.1f} s CPU (4 episodes ~ {w4 * 4 / args.episodes:.1f} s wall)")
        files = sorted(args.data.glob("episode_*.mp4"))[:args.episodes]
        results = laughter_events(files, LaughterConfig())
        df = clip_table(results, [read_srt(f.with_suffix(".srt")) for f in files], LabelConfig(holdout=args.holdout, seed=args.seed))
        write_clip_table(df, args.data / "clips.csv")
        write_laughter_json(args.data / "laughter.json", results, names=True)
        print(f"clips: train {int((df.split == 'train').sum())}, test {int((df.split == 'test').sum())} "
              f"(positives {int(df.label.sum())} of {len(df)})")

    full = FunnyNetConfig(modalities="avt")
    (train_in, wl, _) = timed(lambda: load_split(args.data / "clips.csv", "train", full))
    test_in = load_split(args.data / "clips.csv", "test", full)
    unseen_in = load_split(args.unseen / "clips.csv", None, full) if args.unseen is not None else None
    print(f"cutting the training clips: {wl:.1f} s wall")
    rows = []
    for subset in args.subsets.split(","):
        over = {k: v for k, v in (("aux_weight", args.aux_weight), ("modality_dropout", args.modality_dropout)) if v is not None}
        cfg = FunnyNetConfig(modalities=subset, **over)
        out = args.data / f"funnynet_{subset}.safetensors"
        (model, _), w, c = timed(lambda: train_funnynet(train_in, cfg, FunnyNetTrainConfig(epochs=args.epochs, lr=args.lr, seed=args.seed, progress=False), out,
                                                       extra={"command": f"bench/humor_funnynet.py --episodes {args.episodes} --seed {args.seed}", "seed": args.seed, **over}))
        s = classification_scores(test_in.label.numpy(), predict(model, test_in))
        rows.append((subset.upper(), s["f1"], s["acc"], w, c))
        line = f"{subset.upper():>4}: test F1 {s['f1']:.3f}  acc {s['acc']:.3f}"
        if unseen_in is not None:
            u = classification_scores(unseen_in.label.numpy(), predict(model, unseen_in))
            line += f"  | unseen ({u['clips']} clips) F1 {u['f1']:.3f}  acc {u['acc']:.3f}"
        print(f"{line}  (train {w:.0f} s wall, {c:.0f} s CPU)", flush=True)
        if subset == "avt" and args.save_avt is not None:
            from storylab.training import load_checkpoint, save_checkpoint
            ck = load_checkpoint(out)
            save_checkpoint(args.save_avt, {k: (v.half() if v.is_floating_point() else v) for k, v in ck.state_dict.items()},
                            ck.kind, ck.config, ck.extra)
    print("\nmodality ablation on held-out episodes (paper, Friends: A 73.7 V 73.2 T 77.8 AV 84.3 AT 84.5 VT 74.9 AVT 88.2 F1)")
    print(" ".join(f"{r[0]} {100 * r[1]:.1f}" for r in rows) + "  (F1)")
    print(" ".join(f"{r[0]} {100 * r[2]:.1f}" for r in rows) + "  (acc)")
    scores = {r[0]: r[1] for r in rows}
    if "AVT" in scores:
        line = f"budget: AVT F1 >= 0.85 -> {'met' if scores['AVT'] >= 0.85 else 'NOT met'}"
        singles = [scores[m] for m in ("A", "V", "T") if m in scores]
        if singles:  # compare only with single modalities trained in this run
            line += f"; AVT >= best single modality ({max(singles):.3f}) -> {'met' if scores['AVT'] >= max(singles) else 'NOT met'}"
        print(line)


if __name__ == "__main__":
    main()
