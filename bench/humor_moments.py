"""Bench: funny moments as `humor detect` reports them, scored on whole unseen episodes (issue 32).

Scores every window of the validation and test episodes once per checkpoint (laughter silenced as
`humor detect` does), then, from the score curves alone:

- the detector before moments were measured (threshold 0.5, one moment at each run's first maximum),
- the rule chosen on the validation episodes (`calibrate`: highest F1 at precision >= 0.9; never the test ones),
- the precision-recall curve over the threshold on both sets, with the chosen rule's other settings,

at tolerances of 1 s and 2 s between a moment and a true laughter onset, with 95 % bootstrap intervals over
episodes. ``--finetune DATA`` also fine-tunes the checkpoint on DATA's training clips (a clips table labelled
with more negatives, e.g. `storylab humor label DATA --out DATA/clips.csv --negative-ratio 4`) and scores it
the same way.

    .venv/bin/python bench/humor_moments.py --val DIR --test DIR [--checkpoint PATH ...] [--figure PNG]
        [--finetune DATA --epochs 10 --lr 1e-4 --out runs/funnynet/funnynet_avt_neg.safetensors]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHIPPED = ROOT / "storylab" / "assets" / "humor" / "funnynet_avt.safetensors"


def fmt(r: dict) -> str:
    ci = {k: r.get(f"{k}_ci", [float("nan")] * 2) for k in ("precision", "recall", "f1")}
    return (f"P {r['precision']:.3f} [{ci['precision'][0]:.3f}, {ci['precision'][1]:.3f}]  "
            f"R {r['recall']:.3f} [{ci['recall'][0]:.3f}, {ci['recall'][1]:.3f}]  "
            f"F1 {r['f1']:.3f} [{ci['f1'][0]:.3f}, {ci['f1'][1]:.3f}]  "
            f"false alarms/min {r['false_alarms_per_minute']:.2f}  "
            f"|timing error| {r['timing_error_mean_abs'] if r['timing_error_mean_abs'] is not None else float('nan'):.2f} s "
            f"(median {r['timing_error_median'] if r['timing_error_median'] is not None else float('nan'):+.2f} s)  "
            f"{r['tp']}/{r['predicted']} moments on {r['truth']} laughs, {r['minutes']:.1f} min")


def finetune(checkpoint: Path, data: Path, epochs: int, lr: float, out: Path, seed: int) -> Path:
    from storylab.humor.train import FunnyNetTrainConfig, load_funnynet, load_split, train_funnynet

    base = load_funnynet(checkpoint)
    inputs = load_split(data / "clips.csv", "train", base.config, progress=False)
    t0, c0 = time.perf_counter(), time.process_time()
    train_funnynet(inputs, base.config, FunnyNetTrainConfig(epochs=epochs, lr=lr, seed=seed, progress=False), out,
                   extra={"command": f"bench/humor_moments.py --finetune {data.name}", "init": str(checkpoint.name)},
                   init=base.state_dict())
    print(f"fine-tuned {checkpoint.name} on {len(inputs)} training clips ({int(inputs.label.sum())} funny), "
          f"{epochs} epochs at lr {lr:g}: {time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU -> {out}")
    return out


def main() -> None:
    from storylab.humor.detect import DetectConfig, MomentRule
    from storylab.humor.moments import calibrate, evaluate_rule, pr_curve, pr_figure, score_episodes
    from storylab.humor.train import load_funnynet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, action="append", default=None)
    parser.add_argument("--finetune", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "funnynet" / "funnynet_avt_neg.safetensors")
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--curves", type=Path, default=None, help="also save the score curves here (JSON)")
    args = parser.parse_args()
    checkpoints = list(args.checkpoint or [SHIPPED])
    if args.finetune is not None:
        checkpoints.append(finetune(checkpoints[0], args.finetune, args.epochs, args.lr, args.out, args.seed))
    before = MomentRule(0.5, 0.0, 0.0, 0.0, "peak")
    saved, figure_rows, marks = {}, {}, {}
    for ckpt in checkpoints:
        model = load_funnynet(ckpt)
        c0 = time.process_time()
        val = score_episodes([args.val], model, DetectConfig())
        test = score_episodes([args.test], model, DetectConfig())
        print(f"\n== {ckpt.name}: scored {len(val)} validation + {len(test)} test episodes in {time.process_time() - c0:.0f} s CPU")
        saved[ckpt.name] = {"val": [c.to_json() for c in val], "test": [c.to_json() for c in test]}
        for tol in (1.0, 2.0):
            rule, vs, tried = calibrate(val, tol, 0.9)
            print(f"tolerance {tol:g} s; chosen on validation ({tried} rules): threshold {rule.threshold:g}, smooth "
                  f"{rule.smooth:g} s, min run {rule.min_run:g} s, min gap {rule.min_gap:g} s, anchor {rule.anchor}")
            for name, r in (("before", before), ("default", MomentRule()), ("chosen", rule)):
                for split, curves in (("val", val), ("test", test)):
                    print(f"  {name:8s} {split:5s} {fmt(evaluate_rule(curves, r, tol))}")
            if tol == 2.0:
                for split, curves in (("validation", val), ("test", test)):
                    label = f"{ckpt.stem}, {split}"
                    figure_rows[label] = pr_curve(curves, rule, tol)
                    r = evaluate_rule(curves, rule, tol, n_boot=0)
                    marks[label] = (r["recall"], r["precision"])
                    print(f"  PR over the threshold ({split}, chosen rule's other settings): " + "; ".join(
                        f"{x['threshold']:g}: {x['precision']:.2f}/{x['recall']:.2f}" for x in figure_rows[label]))
    if args.curves is not None:
        args.curves.write_text(json.dumps(saved))
    if args.figure is not None:
        pr_figure(args.figure, figure_rows, marks, "funny moments over the threshold (tolerance 2 s; circle: chosen threshold)")
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
