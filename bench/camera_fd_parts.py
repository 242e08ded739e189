"""Bench: which part of a generated trajectory moves FD_CLaTr - its rotations or its translations?

Generates the first --limit test samples with one checkpoint (w 1.4), then embeds with the shipped CLaTr
(latent draws) and prints FD_CLaTr against the real test trajectories for: the generated features as
they are; the generated translations with each sample's *reference* rotation channels; the reference
translations with the generated rotations. Also the median angle between the first and last camera
orientation, generated and reference (rotation drift).

    .venv/bin/python bench/camera_fd_parts.py --data DIR --checkpoint PATH [--limit 64]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from storylab.camera.clatr import load_clatr
    from storylab.camera.data import attach_text, load_samples
    from storylab.camera.evaluation import EvalProtocol, distribution_metrics
    from storylab.camera.features import decode_camera
    from storylab.camera.generate import ASSETS
    from storylab.camera.sampling import SamplingConfig, generate_split
    from storylab.camera.tag_metrics import split_valid
    from storylab.camera.training import load_director
    from storylab.text_encoder import SentenceEncoder

    net, _ = load_director(args.checkpoint)
    test = attach_text(load_samples(args.data, part="test", limit=args.limit, progress=False), SentenceEncoder(),
                       args.data, net.cfg.arch == "crossattn", False)
    clatr = load_clatr(ASSETS / "clatr_tiny.safetensors")
    real = split_valid(test.x, test.mask)
    fake = generate_split(net, test, SamplingConfig(), seed=args.seed)
    swap = lambda a, b: np.concatenate([a[:, :6], b[:, 6:]], axis=1)  # noqa: E731  rotations of a, translations of b
    fd = lambda f: distribution_metrics(clatr, real, f, EvalProtocol(), args.seed)["FD_CLaTr"]  # noqa: E731

    def turn(f: np.ndarray) -> float:
        p = decode_camera(f)
        cos = (np.trace(p[0, :3, :3].T @ p[-1, :3, :3]) - 1) / 2
        return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))

    print(f"{len(real)} test samples, {args.checkpoint}")
    print(f"FD_CLaTr generated as is:                              {fd(fake):.3f}")
    print(f"FD_CLaTr generated translations, reference rotations:  {fd([swap(r, f) for r, f in zip(real, fake)]):.3f}")
    print(f"FD_CLaTr reference translations, generated rotations:  {fd([swap(f, r) for r, f in zip(real, fake)]):.3f}")
    print(f"median first-to-last rotation: generated {np.median([turn(f) for f in fake]):.1f} deg, "
          f"reference {np.median([turn(r) for r in real]):.1f} deg")


if __name__ == "__main__":
    main()
