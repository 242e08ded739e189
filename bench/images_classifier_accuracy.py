"""Test accuracy of the shipped noise-aware classifiers by noise level t, on the whole test split.

The figures README.md and docs/images.md quote (Fashion-MNIST: 0.862 clean, 0.807 at t = 500),
recomputed with the library's own ``noisy_accuracy`` (q_sample'd test images, fixed noise seed 0).
Run: ``.venv/bin/python bench/images_classifier_accuracy.py [--data fashion-mnist]``.
"""

from __future__ import annotations

import argparse

import torch

from storylab.images.assets import shipped
from storylab.images.data.datasets import load_split
from storylab.images.networks.noisy_classifier import load_classifier, noisy_accuracy

T_VALUES = (0, 100, 250, 500, 750, 900, 999)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist", help="digits or fashion-mnist (default fashion-mnist)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_classifier(shipped(args.data, "classifier"), data=args.data).eval()
    n = len(load_split(args.data, "test"))
    with torch.no_grad():
        acc = noisy_accuracy(model, T_VALUES, seed=0, limit=n)
    print(f"shipped {args.data} classifier, all {n} test images, noise seed 0")
    print("| t | " + " | ".join(str(t) for t in T_VALUES) + " |")
    print("|---" * (len(T_VALUES) + 1) + "|")
    print("| accuracy | " + " | ".join(f"{acc[t]:.3f}" for t in T_VALUES) + " |")


if __name__ == "__main__":
    main()
