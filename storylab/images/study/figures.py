"""The lectures' figures of guided diffusion, for any small grey-level image data set.

* :func:`plot_scale_sweep`: samples with the guidance scale growing across columns, one noise per row.
* :func:`plot_nearest`: each sample above its nearest training images, the feature distance under each.

Both compose the tiles into one image and write the captions with matplotlib, so a figure of a few
hundred tiles stays readable and quick to draw; files are written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from storylab.images.study.grid import grid_array

TILE_PX = 56  # target tile side in canvas pixels (8x8 digits x7, 28x28 images x2)


def _wrap(title: str, width_px: float, fontsize: float) -> str:
    """Break a title into lines that fit ``width_px`` (at 100 px per inch, a character is ~0.55 em wide)."""
    import textwrap

    return textwrap.fill(title, max(20, int(width_px / (0.55 * fontsize * 100 / 72))))


def _upscale(height: int) -> int:
    return max(1, round(TILE_PX / height))


def _to_uint8(images: torch.Tensor, upscale: int) -> np.ndarray:
    """``(N, 1, H, W)`` in [-1, 1] -> ``(N, H*up, W*up)`` uint8 tiles."""
    arr = ((images.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    return np.kron(arr, np.ones((1, upscale, upscale), dtype=np.uint8))


def plot_scale_sweep(sweep: torch.Tensor, scales: Sequence[float], row_labels: Sequence[str], path: str | Path,
                     title: str, xlabel: str = "guidance scale") -> Path:
    """Grid of ``sweep`` ``(R, C, 1, H, W)``: column j at ``scales[j]``, row r labelled ``row_labels[r]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from storylab.io import atomic_savefig

    rows, cols, _, h, _ = sweep.shape
    up, pad = _upscale(h), 2
    arr = grid_array(sweep.reshape(rows * cols, *sweep.shape[2:]), nrow=cols, pad=pad, upscale=up)
    tile = h * up + pad
    title = _wrap(title, arr.shape[1] + 130, 9)
    fig_w, fig_h = arr.shape[1] / 100 + 1.3, arr.shape[0] / 100 + 0.85 + 0.15 * title.count("\n")
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=100)
    ax = fig.add_axes((1.2 / fig_w, 0.15 / fig_h, arr.shape[1] / 100 / fig_w, arr.shape[0] / 100 / fig_h))
    ax.imshow(arr, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([pad + j * tile + (tile - pad) / 2 for j in range(cols)], [f"{s:g}" for s in scales], fontsize=8)
    ax.set_yticks([pad + r * tile + (tile - pad) / 2 for r in range(rows)], list(row_labels), fontsize=8)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.suptitle(title, fontsize=9, y=1 - 0.12 / fig_h, va="top")
    atomic_savefig(fig, path, dpi=150)
    plt.close(fig)
    return Path(path)


def plot_nearest(samples: torch.Tensor, captions: Sequence[str], neighbours: torch.Tensor, distances: torch.Tensor,
                 path: str | Path, title: str, per_row: int = 10) -> Path:
    """Each sample ``(N, 1, H, W)`` above its ``k`` nearest training images ``(N, k, 1, H, W)``.

    ``captions[i]`` goes under sample i (its class), ``distances[i, j]`` ``(N, k)`` under neighbour j;
    blocks are laid out ``per_row`` to a row.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from storylab.io import atomic_savefig

    n, k = neighbours.shape[:2]
    h = samples.shape[-2]
    up = _upscale(h)
    t = h * up                  # tile side (canvas px)
    text = 13                   # caption line under each tile
    sep = 8                     # gap between the sample and its neighbours
    gap_x, gap_y = 12, 14       # between blocks
    block_w, block_h = t, (t + text) * (1 + k) + sep
    cols = min(per_row, n)
    band_rows = (n + cols - 1) // cols
    width = cols * block_w + (cols + 1) * gap_x
    height = band_rows * block_h + (band_rows + 1) * gap_y
    canvas = np.full((height, width), 255, dtype=np.uint8)
    sample_tiles = _to_uint8(samples, up)
    neighbour_tiles = _to_uint8(neighbours.reshape(n * k, *neighbours.shape[2:]), up).reshape(n, k, t, t)
    labels: list[tuple[float, float, str, str]] = []
    for i in range(n):
        r, c = divmod(i, cols)
        x0, y0 = gap_x + c * (block_w + gap_x), gap_y + r * (block_h + gap_y)
        canvas[y0:y0 + t, x0:x0 + t] = sample_tiles[i]
        labels.append((x0 + t / 2, y0 + t + 1, captions[i], "bold"))
        y = y0 + t + text + sep
        canvas[y - sep // 2 - 1:y - sep // 2 + 1, x0:x0 + t] = 150  # rule between the sample and its neighbours
        for j in range(k):
            canvas[y:y + t, x0:x0 + t] = neighbour_tiles[i, j]
            labels.append((x0 + t / 2, y + t + 1, f"d {float(distances[i, j]):.2f}", "normal"))
            y += t + text
    title = _wrap(title, width, 8)
    head = 0.3 + 0.13 * (title.count("\n") + 1)
    fig = plt.figure(figsize=(width / 100, height / 100 + head), dpi=100)
    ax = fig.add_axes((0, 0, 1, (height / 100) / (height / 100 + head)))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    for x, y, s, weight in labels:
        ax.text(x, y, s, ha="center", va="top", fontsize=6.5, fontweight=weight)
    ax.set_axis_off()
    fig.suptitle(title, fontsize=8, y=1 - 0.05 / (height / 100 + head), va="top")
    atomic_savefig(fig, path, dpi=150)
    plt.close(fig)
    return Path(path)
