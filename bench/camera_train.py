"""Benchmark: wall-clock time for tiny DIRECTOR to reach C-F1 >= 0.6 on the synthetic test split (budget: 20 min, 2 cores).

Trains with the CLI's defaults, samples the first --eval-samples test samples with the EMA weights every
--eval-every steps, and stops at the target or after --max-minutes. Prints the C-F1 curve and the
machine's load (other processes share the cores).
Run: .venv/bin/python bench/camera_train.py --data DIR [--config crossattn] [--max-minutes 20]
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
    parser.add_argument("--steps", type=int, default=2500, help="steps; the cosine learning rate reaches 0 at the last one (default 2500)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size (default 16)")
    parser.add_argument("--eval-every", type=int, default=200, help="steps between C-F1 checks (default 200)")
    parser.add_argument("--eval-samples", type=int, default=64, help="test samples per check (default 64)")
    parser.add_argument("--max-minutes", type=float, default=20.0, help="wall-clock budget (default 20)")
    parser.add_argument("--target", type=float, default=0.6, help="C-F1 target (default 0.6)")
    parser.add_argument("--out", default="/tmp/bench_director.safetensors", help="checkpoint path")
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

    encoder = SentenceEncoder()
    tokens = args.config == "crossattn"
    train = attach_text(load_samples(args.data, part="train", progress=False), encoder, args.data, tokens, False)
    test = attach_text(load_samples(args.data, part="test", progress=False), encoder, args.data, tokens, False)
    monitor = TagScoreMonitor(test, args.eval_every, args.eval_samples, target=args.target)
    loads = []

    def stop_rule(state) -> None:
        loads.append(os.getloadavg()[0])
        if monitor.reached is not None or time.perf_counter() - monitor.t0 > args.max_minutes * 60:
            from storylab.camera.training import save_director
            save_director(args.out, state.ema_model or state.model, {"step": state.step, "command": command,
                                                                     "seed": 0})
            raise Stop

    command = ("bench/camera_train.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()))
    monitor.t0 = time.perf_counter()
    try:
        arch = {k: v for k, v in (("d_model", args.d_model), ("n_heads", args.heads), ("patch", args.patch),
                                  ("dropout", args.dropout), ("n_layers", args.layers)) if v is not None}
        optim = {k: v for k, v in (("p_mean", args.p_mean), ("p_std", args.p_std), ("lr", args.lr)) if v is not None}
        train_director(train, DirectorConfig.build(args.config, **arch), DirectorTrainConfig(
            steps=args.steps, batch_size=args.batch_size, checkpoint_every=args.eval_every, log_every=args.log_every,
            progress=False, **optim),
            args.out, extra={"command": command, "seed": 0}, callbacks=[monitor, stop_rule], resume=False)
    except Stop:
        pass
    for row in monitor.history:
        print(f"step {row['step']:5d}  {row['seconds'] / 60:6.1f} min  C-P {row['C-P']:.3f}  C-R {row['C-R']:.3f}  "
              f"C-F1 {row['C-F1']:.3f}")
    if monitor.reached:
        print(f"reached C-F1 {monitor.reached['C-F1']:.3f} >= {args.target} at step {monitor.reached['step']} after "
              f"{monitor.reached['seconds'] / 60:.1f} min = {monitor.reached['seconds'] / 1200:.2f}x the 20 min budget")
    else:
        best = max((r["C-F1"] for r in monitor.history), default=float("nan"))
        print(f"did not reach C-F1 {args.target} within {args.max_minutes:g} min (best {best:.3f})")
    if loads:
        print(f"load average while training: mean {sum(loads) / len(loads):.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
