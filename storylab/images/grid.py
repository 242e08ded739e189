"""Image grids for people to look at: digits upscaled with nearest neighbours, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from storylab.io import atomic_path


def grid_array(images: torch.Tensor, nrow: int, pad: int = 2, upscale: int = 8) -> np.ndarray:
    """Tile ``(N, 1, H, W)`` images in [-1, 1] into one uint8 array with ``nrow`` images per row."""
    images = ((images.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    n, h, w = images.shape
    ncol = nrow
    rows = (n + ncol - 1) // ncol
    big = np.full((rows * (h * upscale + pad) + pad, ncol * (w * upscale + pad) + pad), 110, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        tile = np.kron(img, np.ones((upscale, upscale), dtype=np.uint8))
        y, x = pad + r * (h * upscale + pad), pad + c * (w * upscale + pad)
        big[y:y + h * upscale, x:x + w * upscale] = tile
    return big


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 10, upscale: int = 8) -> Path:
    """Save a PNG grid of ``images`` (``(N, 1, H, W)`` in [-1, 1]) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(grid_array(images, nrow, upscale=upscale)).save(tmp, format="PNG")
    return Path(path)
