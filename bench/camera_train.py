"""Benchmark: C-F1 against training minutes for tiny DIRECTOR models, side by side in one run.

Trains each of --models (``twostage``: motion planner + camera-frame motion with the no-motion gate;
``director``: the paper's one-stage model, today's config C) in turn on the same data with the same
threads and the CLI's defaults, samples the first --eval-samples test samples with the EMA weights every
--eval-every steps, and stops a model at --steps or after --max-minutes. Prints the C-F1 curves side
by side, the minutes each model needed to reach --target, and the machine's load (other processes
share the cores). The checkpoints are written to --out-dir as director_<model>.safetensors.
Run: .venv/bin/python bench/camera_train.py --data DIR [--models twostage,director] [--max-minutes 60]
"""

from __future__ import annotations

import argparse
import os
import time


class Stop(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="E.T.-format folder (storylab camera synth)")
    parser.add_argument("--config", default="crossattn", help="incontext, adaln or crossattn (default crossattn)")
    parser.add_argument("--models", default="twostage,director", help="comma-separated models, trained in turn (default twostage,director)")
    parser.add_argument("--steps", type=int, default=2500, help="steps; the cosine learning rate reaches 0 at the last one (default 2500)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--eval-every", type=int, default=200, help="steps between C-F1 checks (default 200)")
    parser.add_argument("--eval-samples", type=int, default=64, help="test samples per check (default 64)")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="wall-clock budget per model (default 60)")
    parser.add_argument("--target", type=float, default=0.6, help="C-F1 target (default 0.6)")
    parser.add_argument("--out-dir", default="/tmp/bench_director", help="checkpoint folder (default /tmp/bench_director)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--d-model", type=int, default=None, help="width override (default: the tiny preset's 64)")
    parser.add_argument("--heads", type=int, default=None, help="attention heads override (default: the tiny preset's 4)")
    parser.add_argument("--patch", type=int, default=None, help="frames per token override (default: the tiny preset's)")
    parser.add_argument("--dropout", type=float, default=None, help="residual/MLP dropout override (default: the preset's 0.1)")
    parser.add_argument("--layers", type=int, default=None, help="depth override (default: the tiny preset's 4)")
    parser.add_argument("--p-mean", type=float, default=None, help="mean of ln sigma in training (default: the trainer's)")
    parser.add_argument("--p-std", type=float, default=None, help="std of ln sigma in training (default: the trainer's)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the trainer's)")
    parser.add_argument("--log-every", type=int, default=25, help="steps between stop checks (default 25)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from storylab.camera.data import attach_text, load_samples
    from storylab.camera.director import DirectorConfig
    from storylab.camera.training import DirectorTrainConfig, TagScoreMonitor, train_director
    from storylab.text_encoder import SentenceEncoder

    from pathlib import Path

    from storylab.camera.training import save_director

    encoder = SentenceEncoder()
    tokens = args.config == "crossattn"
    train = attach_text(load_samples(args.data, part="train", progress=False), encoder, args.data, tokens, False)
    test = attach_text(load_samples(args.data, part="test", progress=False), encoder, args.data, tokens, False)
    command = ("bench/camera_train.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()))
    arch = {k: v for k, v in (("d_model", args.d_model), ("n_heads", args.heads), ("patch", args.patch),
                              ("dropout", args.dropout), ("n_layers", args.layers)) if v is not None}
    optim = {k: v for k, v in (("p_mean", args.p_mean), ("p_std", args.p_std), ("lr", args.lr)) if v is not None}
    histories, reached, loads = {}, {}, []
    for model in args.models.split(","):
        out = Path(args.out_dir) / f"director_{model}.safetensors"
        monitor = TagScoreMonitor(test, args.eval_every, args.eval_samples, target=args.target)

        def stop_rule(state, monitor=monitor, out=out, model=model) -> None:
            loads.append(os.getloadavg()[0])
            if time.perf_counter() - monitor.t0 > args.max_minutes * 60:
                save_director(out, state.ema_model or state.model, {"step": state.step, "command": command, "seed": 0,
                                                                    "model": model})
                raise Stop

        print(f"training {model} ({args.config})", flush=True)
        monitor.t0 = time.perf_counter()
        try:
            train_director(train, DirectorConfig.build(args.config, model=model, **arch), DirectorTrainConfig(
                steps=args.steps, batch_size=args.batch_size, checkpoint_every=args.eval_every, log_every=args.log_every,
                progress=False, **optim),
                out, extra={"command": command, "seed": 0, "model": model}, callbacks=[monitor, stop_rule], resume=False)
        except Stop:
            pass
        histories[model], reached[model] = monitor.history, monitor.reached
    models = list(histories)
    print("\nC-F1 on the first %d test samples (w 1.4) against training time, one row per check" % args.eval_samples)
    print("  step  " + "  ".join(f"{m:>10s} min  C-F1" for m in models))
    for i in range(max(len(h) for h in histories.values())):
        cells = []
        step = next(h[i]["step"] for h in histories.values() if i < len(h))
        for m in models:
            h = histories[m]
            cells.append(f"{h[i]['seconds'] / 60:14.1f}  {h[i]['C-F1']:.3f}" if i < len(h) else " " * 21)
        print(f"{step:6d}  " + "  ".join(cells))
    for m in models:
        best = max((r["C-F1"] for r in histories[m]), default=float("nan"))
        if reached[m]:
            print(f"{m}: C-F1 {reached[m]['C-F1']:.3f} >= {args.target} at step {reached[m]['step']} after "
                  f"{reached[m]['seconds'] / 60:.1f} min (best {best:.3f})")
        else:
            print(f"{m}: did not reach C-F1 {args.target} (best {best:.3f})")
    if len(models) == 2 and all(histories.values()):
        a, b = (histories[m][-1] for m in models)
        print(f"final C-F1 ratio {models[0]} / {models[1]}: {a['C-F1'] / max(b['C-F1'], 1e-9):.2f}; "
              f"minutes ratio {a['seconds'] / b['seconds']:.2f}")
    if loads:
        print(f"load average while training: mean {sum(loads) / len(loads):.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
