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


def default_upscale(size: int) -> int:
    """Nearest-neighbour zoom that makes a tile about 64 pixels wide (8 for 8x8 digits, 2 for 28x28)."""
    return max(1, round(64 / size))


def label_rows(grid: np.ndarray, labels: list[str], tile: int, pad: int = 2) -> np.ndarray:
    """Prefix a grid (one class per row of ``tile``-pixel tiles) with a margin naming each row."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default()
    width = max(int(font.getlength(text)) for text in labels) + 8
    canvas = Image.new("L", (grid.shape[1] + width, grid.shape[0]), 255)
    canvas.paste(Image.fromarray(grid), (width, 0))
    draw = ImageDraw.Draw(canvas)
    for r, text in enumerate(labels):
        y = pad + r * (tile + pad) + tile // 2
        draw.text((4, y), text, fill=0, font=font, anchor="lm")
    return np.asarray(canvas)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 10, upscale: int | None = None,
              row_labels: list[str] | None = None) -> Path:
    """Save a PNG grid of ``images`` (``(N, 1, H, W)`` in [-1, 1]) to ``path`` atomically.

    ``row_labels`` (one per grid row, e.g. class names) are written in a left margin.
    """
    zoom = default_upscale(int(images.shape[-1])) if upscale is None else upscale
    grid = grid_array(images, nrow, upscale=zoom)
    if row_labels:
        grid = label_rows(grid, row_labels, int(images.shape[-1]) * zoom)
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return Path(path)
