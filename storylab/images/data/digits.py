"""scikit-learn's bundled 8x8 handwritten digits (1,797 real images, 10 classes), split once.

Images are returned as float tensors ``(N, 1, 8, 8)`` scaled from the original 0..16 grey levels to
[-1, 1], the range the diffusion models work in. The train/test split is fixed (stratified, 20 %
test, seed 0) so that every model, metric and shipped checkpoint in storylab sees the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

NUM_CLASSES = 10
IMAGE_SIZE = 8
MAX_GREY = 16.0
SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class DigitsSplit:
    """Images ``(N, 1, 8, 8)`` in [-1, 1] and integer labels ``(N,)``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Map model-range images in [-1, 1] to [0, 1] (for display and feature networks)."""
    return ((images.clamp(-1, 1) + 1) / 2)


def from_grey(grey: np.ndarray) -> torch.Tensor:
    """Map scikit-learn grey levels 0..16 to [-1, 1]."""
    return torch.as_tensor(grey, dtype=torch.float32) / MAX_GREY * 2 - 1


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.images, data.target, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=data.target)
    return x_train, x_test, y_train, y_test


def load_digits_split(split: str = "train") -> DigitsSplit:
    """The fixed ``train`` (1,437 images) or ``test`` (360 images) split, or ``all`` (1,797)."""
    x_train, x_test, y_train, y_test = _load()
    if split == "train":
        x, y = x_train, y_train
    elif split == "test":
        x, y = x_test, y_test
    elif split == "all":
        x, y = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    else:
        raise ValueError(f"unknown split '{split}' (train, test or all)")
    return DigitsSplit(images=from_grey(x).unsqueeze(1), labels=torch.as_tensor(y, dtype=torch.long))
