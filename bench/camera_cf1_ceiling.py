"""Bench: the C-F1 a perfect DIRECTOR would score on an E.T.-format test split (no model involved).

A caption names the camera motions in order but not when each starts, so even a model that samples
exactly from the data's distribution cannot match the reference frame by frame. This estimates that
ceiling: for each test sample, another *training* trajectory with the same sequence of camera tags is
drawn at random, its per-frame tags are stretched to the test sample's length, and C-P / C-R / C-F1 are
computed against the reference tags exactly as `storylab evaluate director` does.

    .venv/bin/python bench/camera_cf1_ceiling.py --data DIR [--limit 200] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np


def tag_sequence(frames: np.ndarray) -> tuple[int, ...]:
    """Per-frame tag ids -> the sequence of distinct consecutive tags."""
    keep = np.r_[True, frames[1:] != frames[:-1]]
    return tuple(int(v) for v in frames[keep])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="E.T.-format folder with train/test splits")
    parser.add_argument("--limit", type=int, default=None, help="first N test samples (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draw (default 0)")
    args = parser.parse_args()
    from storylab.camera.data import load_samples
    from storylab.camera.tag_metrics import classification_scores

    train = load_samples(args.data, part="train", progress=False)
    test = load_samples(args.data, part="test", limit=args.limit, progress=False)
    valid = lambda segs: segs[segs >= 0].numpy()  # noqa: E731
    bank: dict[tuple[int, ...], list[np.ndarray]] = defaultdict(list)
    for segs in train.cam_segments:
        bank[tag_sequence(valid(segs))].append(valid(segs))
    rng = np.random.default_rng(args.seed)
    refs, preds, unmatched = [], [], 0
    for segs in test.cam_segments:
        ref = valid(segs)
        pool = bank.get(tag_sequence(ref))
        if not pool:  # no training sample with this sequence: any training sample
            unmatched += 1
            pool = [p for group in bank.values() for p in group]
        other = pool[int(rng.integers(len(pool)))]
        refs.append(ref)
        preds.append(other[np.minimum(np.arange(len(ref)) * len(other) // len(ref), len(other) - 1)])
    scores = classification_scores(refs, preds)
    print(f"{len(refs)} test samples ({unmatched} without a training sample of the same tag sequence)")
    print("same tag sequence, time-stretched: " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
