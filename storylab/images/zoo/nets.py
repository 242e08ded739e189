"""Convolutional encoder and decoder for 8x8 digits, shared by the AE, VAE, CVAE and VQ-VAE.

The same two networks appear in every autoencoding family, so that differences in the evaluation
table come from the objectives (the lecture's point), not from the architectures. Shapes::

    encoder: (B, 1 + c, 8, 8) -> conv -> (B, w, 8, 8) -> stride-2 conv -> (B, 2w, 4, 4) -> conv
             -> (B, 2w, 4, 4)        ("grid" output, used by the VQ-VAE)
             -> flatten -> MLP -> (B, out_dim)   ("vector" output, AE / VAE / CVAE)
    decoder: (B, in_dim) -> MLP -> (B, 2w, 4, 4)  or a (B, D, 4, 4) grid -> conv
             -> transposed conv -> (B, w, 8, 8) -> conv -> (B, 1, 8, 8)
"""

from __future__ import annotations

import torch
from torch import nn

GRID = 4  # spatial size of the encoder's feature map (8x8 input, one stride-2 stage)


class ConvEncoder(nn.Module):
    """Digits ``(B, in_channels, 8, 8)`` -> features: a vector ``(B, out_dim)`` or a grid ``(B, out_dim, 4, 4)``."""

    def __init__(self, in_channels: int, width: int, out_dim: int, grid: bool = False, hidden: int = 256) -> None:
        super().__init__()
        self.grid = grid
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.SiLU(),  # (B, w, 8, 8)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.SiLU(),  # (B, 2w, 4, 4)
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.SiLU(),  # (B, 2w, 4, 4)
        )
        if grid:
            self.head: nn.Module = nn.Conv2d(2 * width, out_dim, 1)  # (B, D, 4, 4)
        else:
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * GRID * GRID, hidden), nn.SiLU(),
                                      nn.Linear(hidden, out_dim))  # (B, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class ConvDecoder(nn.Module):
    """A vector ``(B, in_dim)`` (or a grid ``(B, in_dim, 4, 4)``) -> image logits/values ``(B, 1, 8, 8)``."""

    def __init__(self, in_dim: int, width: int, grid: bool = False, hidden: int = 256, out_channels: int = 1) -> None:
        super().__init__()
        self.grid, self.width = grid, width
        if grid:
            self.stem: nn.Module = nn.Conv2d(in_dim, 2 * width, 1)  # (B, 2w, 4, 4)
        else:
            self.stem = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(),
                                      nn.Linear(hidden, 2 * width * GRID * GRID), nn.SiLU())
        self.body = nn.Sequential(
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.SiLU(),  # (B, 2w, 4, 4)
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.SiLU(),  # (B, w, 8, 8)
            nn.Conv2d(width, out_channels, 3, padding=1),  # (B, 1, 8, 8)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.stem(z)
        if not self.grid:
            h = h.reshape(z.shape[0], 2 * self.width, GRID, GRID)
        return self.body(h)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Labels ``(B,)`` -> one-hot ``(B, C)``; float ``(B, C)`` (soft labels, e.g. interpolated) pass through."""
    if labels.is_floating_point():
        return labels
    return nn.functional.one_hot(labels.long(), num_classes).float()


def label_maps(labels: torch.Tensor, num_classes: int, size: int = 8) -> torch.Tensor:
    """One-hot labels broadcast to image-sized channels ``(B, C, size, size)`` (cGAN / CVAE input conditioning)."""
    return one_hot(labels, num_classes)[:, :, None, None].expand(-1, -1, size, size)
