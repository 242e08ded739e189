"""Bench: where a two-stage DIRECTOR's C-F1 comes from - the motion gate and the planner, side by side.

On the test split, with one two-stage checkpoint, the same sampler (w 1.4) and seed:

* gate ``axis`` (the default: still axes of the plan get exactly zero camera-frame translation),
  ``frame`` (only frames whose three axes are still) and ``none`` (the denoiser's output as it is);
* the planner's own accuracy: per-frame tags of the plan against the reference tags (C-F1 of the plan);
* an *oracle* row that replaces the planner's plan with the reference tags of the sample (a diagnostic
  of the second stage only; generation never does this).

Each row: C-P / C-R / C-F1 of the re-tagged trajectories, the share of frames re-tagged static on the
all-static captions, and FD_CLaTr against the real test trajectories (the shipped CLaTr, latent draws).

    .venv/bin/python bench/camera_motion_gate.py --data DIR --checkpoint TWO_STAGE.safetensors [--limit 200]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--checkpoint", required=True, help="a two-stage DIRECTOR checkpoint")
    parser.add_argument("--limit", type=int, default=200, help="first N test samples (default 200)")
    parser.add_argument("--guidance-scale", type=float, default=1.4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from storylab.camera.clatr import load_clatr
    from storylab.camera.data import attach_text, load_samples, make_condition
    from storylab.camera.evaluation import EvalProtocol, distribution_metrics
    from storylab.camera.generate import ASSETS
    from storylab.camera.motion import codes_to_labels, plan_rows
    from storylab.camera.sampling import SamplingConfig, sample_trajectories
    from storylab.camera.tag_metrics import classification_scores, reference_tags, retag, split_valid
    from storylab.camera.training import load_director
    from storylab.text_encoder import SentenceEncoder

    net, _ = load_director(args.checkpoint)
    if not net.cfg.two_stage:
        raise SystemExit("error: --checkpoint is not a two-stage model")
    test = attach_text(load_samples(args.data, part="test", limit=args.limit, progress=False), SentenceEncoder(),
                       args.data, True, False)
    clatr = load_clatr(ASSETS / "clatr_tiny.safetensors")
    cfg = SamplingConfig(guidance_scale=args.guidance_scale)
    idx = list(range(len(test)))
    real = split_valid(test.x, test.mask)
    ref = reference_tags(test.cam_segments, idx, [len(f) for f in real])
    static = [i for i, r in enumerate(ref) if (r == 0).all()]
    planner = net.planner

    def generate(oracle: bool) -> list:
        out = []
        for start in range(0, len(idx), 64):
            b = idx[start:start + 64]
            cond, mask = make_condition(test.mask[b], test.char[b], test.text[b], test.text_tokens[b], test.text_mask[b])
            if oracle:  # the reference plan: a diagnostic of the second stage, never used in generation
                rows = plan_rows(test.cam_segments[b])[:, :mask.shape[1]]
                planner.plan = lambda c, rows=rows: rows  # noqa: E731
            out += split_valid(sample_trajectories(net, cond, mask.shape[1], cfg, seed=args.seed + start), mask)
            planner.__dict__.pop("plan", None)
        return out

    plans = []
    for start in range(0, len(idx), 64):
        b = idx[start:start + 64]
        cond, mask = make_condition(test.mask[b], test.char[b], test.text[b], test.text_tokens[b], test.text_mask[b])
        p = planner.plan(cond)
        plans += [codes_to_labels(p[i, 1:int(n)].numpy()) for i, n in enumerate(mask.sum(1).tolist())]
    plan_scores = classification_scores(ref, plans)
    print(f"{len(idx)} test samples, {len(static)} with an all-static camera; w {args.guidance_scale:g}, seed {args.seed}")
    print(f"planner alone (its tags vs the reference): C-P {plan_scores['C-P']:.3f}  C-R {plan_scores['C-R']:.3f}  "
          f"C-F1 {plan_scores['C-F1']:.3f}; static frames planned on all-static captions "
          f"{np.mean(np.concatenate([plans[i] for i in static]) == 0):.1%}")
    print(f"{'variant':28s} {'C-P':>6s} {'C-R':>6s} {'C-F1':>6s} {'static %':>9s} {'FD_CLaTr':>9s}")
    gate = net.cfg.motion_gate
    rows = [(f"gate {g}", g, False) for g in ("axis", "frame", "none")] + [("oracle plan, gate axis", "axis", True)]
    for name, g, oracle in rows:
        net.cfg.motion_gate = g
        fake = generate(oracle)
        tags = retag(fake)
        s = classification_scores(ref, tags)
        st = float(np.mean(np.concatenate([tags[i] for i in static]) == 0)) if static else float("nan")
        fd = distribution_metrics(clatr, real, fake, EvalProtocol(), args.seed)["FD_CLaTr"]
        print(f"{name:28s} {s['C-P']:6.3f} {s['C-R']:6.3f} {s['C-F1']:6.3f} {st:9.1%} {fd:9.3f}")
    net.cfg.motion_gate = gate


if __name__ == "__main__":
    main()
