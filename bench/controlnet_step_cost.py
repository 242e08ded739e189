"""Budget: a controlled sampling step costs <= 1.6x an uncontrolled one (issue 3).

Times whole DDIM sampling runs (same noise, same steps) of the shipped digit denoiser with and
without the shipped edges ControlNet, for CFG with the unconditional branch controlled (the
references' default: the copy runs on both halves of the batch), for CFG with it left uncontrolled
(``--no-control-uncond``: the copy runs on half the batch) and for guidance "none" (one branch). The hint
features are computed once per sampling run, as in :meth:`ControlledDenoiser.conditions`. Runs are
interleaved and repeated; the ratio of medians is reported. Single thread, as on a shared 2-core box.

    .venv/bin/python bench/controlnet_step_cost.py [--repeats 5] [--batch 100] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--base", default=None, help="Base denoiser (default: the shipped one).")
    parser.add_argument("--controlnet", default=None, help="ControlNet (default: the shipped edges net).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from storylab.images.assets import DENOISER
    from storylab.images.commands.control_cli import shipped_controlnet
    from storylab.images.control.control_training import eval_conditions
    from storylab.images.control.controlnet import Control, ControlledDenoiser, load_controlnet
    from storylab.images.networks.denoiser import load_digit_model, sample_digits

    base = load_digit_model(args.base or DENOISER)
    net = load_controlnet(args.controlnet or shipped_controlnet("canny"), base)
    _, labels, conds = eval_conditions("canny", args.batch, seed=0)
    results = {}
    for name, rule, scale, uncond in (("cfg", "cfg", 3.0, True), ("cfg-cond-only", "cfg", 3.0, False),
                                      ("none", "none", 1.0, True)):
        plain_t, ctrl_t = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            sample_digits(base, labels, rule, scale, "constant", "ddim", args.steps, 0)
            plain_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            dn = ControlledDenoiser(base, [Control(net, conds, 1.0)])
            sample_digits(base, labels, rule, scale, "constant", "ddim", args.steps, 0, denoiser=dn,
                          conditions=dn.conditions(labels, base.null_class, uncond), on_step=dn.observe)
            ctrl_t.append(time.perf_counter() - t0)
        plain, ctrl = statistics.median(plain_t), statistics.median(ctrl_t)
        results[name] = (plain / args.steps, ctrl / args.steps, ctrl / plain)
    load = os.getloadavg()
    print(f"batch {args.batch}, {args.steps} DDIM steps, {args.repeats} interleaved repeats, {args.threads} thread(s), "
          f"load average {load[0]:.1f} / {load[1]:.1f}")
    print(f"{'guidance':>14} {'plain s/step':>13} {'controlled s/step':>18} {'ratio':>7}  budget <= 1.6")
    for name, (p, c, r) in results.items():
        print(f"{name:>14} {p:13.4f} {c:18.4f} {r:7.2f}  {'ok' if r <= 1.6 else 'OVER'}")


if __name__ == "__main__":
    main()
