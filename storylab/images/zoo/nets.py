"""Convolutional encoder and decoder sized by the image, shared by the AE, VAE, CVAE and VQ-VAE.

The same two networks appear in every autoencoding family, so that differences in the evaluation
table come from the objectives (the lecture's point), not from the architectures. The number of
stride-2 stages follows the image size (:func:`down_stages`): one for the 8x8 digits (8 -> 4), two
for 28x28 Fashion-MNIST / MNIST (28 -> 14 -> 7). Shapes, with S stages and g = size / 2^S::

    encoder: (B, 1 + c, s, s) -> conv -> (B, w, s, s) -> stride-2 conv -> (B, 2w, s/2, s/2)
             [-> stride-2 conv (2w -> 2w), once per further stage] -> conv -> (B, 2w, g, g)
             ("grid" output, used by the VQ-VAE: a 1x1 conv to (B, D, g, g))
             -> flatten -> MLP -> (B, out_dim)   ("vector" output, AE / VAE / CVAE)
    decoder: (B, in_dim) -> MLP -> (B, 2w, g, g)  or a (B, D, g, g) grid -> conv
             [-> transposed conv (2w -> 2w), once per further stage]
             -> transposed conv -> (B, w, s, s) -> conv -> (B, 1, s, s)

With one stage the layers (and so the state-dict keys) are exactly those of the original 8x8 nets,
so the shipped digits checkpoints load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from storylab.errors import StorylabError

GRID = 4  # spatial size of the encoder's feature map for the 8x8 digits (one stride-2 stage)


def down_stages(image_size: int) -> int:
    """Stride-2 stages for a square image: halve once, then while the map is even and larger than 7 (8 -> 1, 28 -> 2)."""
    if int(image_size) != image_size or image_size < 4 or image_size % 2:
        raise StorylabError(f"image size must be an even integer >= 4, got {image_size}")
    stages, size = 1, image_size // 2
    while size > 7 and size % 2 == 0:
        size //= 2
        stages += 1
    return stages


def grid_size(image_size: int) -> int:
    """Side of the encoder's feature map: ``image_size / 2^down_stages`` (8 -> 4, 28 -> 7)."""
    return image_size // 2 ** down_stages(image_size)


class ConvEncoder(nn.Module):
    """Images ``(B, in_channels, s, s)`` -> a vector ``(B, out_dim)`` or a grid ``(B, out_dim, g, g)``."""

    def __init__(self, in_channels: int, width: int, out_dim: int, grid: bool = False, hidden: int = 256,
                 image_size: int = 8) -> None:
        super().__init__()
        self.grid = grid
        g = grid_size(image_size)
        extra: list[nn.Module] = []
        for _ in range(down_stages(image_size) - 1):
            extra += [nn.Conv2d(2 * width, 2 * width, 4, stride=2, padding=1), nn.SiLU()]  # halves the map
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.SiLU(),  # (B, w, s, s)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.SiLU(),  # (B, 2w, s/2, s/2)
            *extra,  # (B, 2w, g, g)
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.SiLU(),  # (B, 2w, g, g)
        )
        if grid:
            self.head: nn.Module = nn.Conv2d(2 * width, out_dim, 1)  # (B, D, g, g)
        else:
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * g * g, hidden), nn.SiLU(),
                                      nn.Linear(hidden, out_dim))  # (B, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ConvDecoder(nn.Module):
    """A vector ``(B, in_dim)`` (or a grid ``(B, in_dim, g, g)``) -> image logits/values ``(B, 1, s, s)``."""

    def __init__(self, in_dim: int, width: int, grid: bool = False, hidden: int = 256, out_channels: int = 1,
                 image_size: int = 8) -> None:
        super().__init__()
        self.grid, self.width = grid, width
        self.side = g = grid_size(image_size)
        if grid:
            self.stem: nn.Module = nn.Conv2d(in_dim, 2 * width, 1)  # (B, 2w, g, g)
        else:
            self.stem = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(),
                                      nn.Linear(hidden, 2 * width * g * g), nn.SiLU())
        extra: list[nn.Module] = []
        for _ in range(down_stages(image_size) - 1):
            extra += [nn.ConvTranspose2d(2 * width, 2 * width, 4, stride=2, padding=1), nn.SiLU()]  # doubles the map
        self.body = nn.Sequential(
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.SiLU(),  # (B, 2w, g, g)
            *extra,  # (B, 2w, s/2, s/2)
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.SiLU(),  # (B, w, s, s)
            nn.Conv2d(width, out_channels, 3, padding=1),  # (B, 1, s, s)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.stem(z)
        if not self.grid:
            h = h.reshape(z.shape[0], 2 * self.width, self.side, self.side)
        return self.body(h)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Labels ``(B,)`` -> one-hot ``(B, C)``; float ``(B, C)`` (soft labels, e.g. interpolated) pass through."""
    if labels.is_floating_point():
        return labels
    return nn.functional.one_hot(labels.long(), num_classes).float()


def label_maps(labels: torch.Tensor, num_classes: int, size: int = 8) -> torch.Tensor:
    """One-hot labels broadcast to image-sized channels ``(B, C, size, size)`` (cGAN / CVAE input conditioning)."""
    return one_hot(labels, num_classes)[:, :, None, None].expand(-1, -1, size, size)
