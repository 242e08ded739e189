"""Input checks shared by the distribution metrics: every metric sees a finite ``(N, D)`` float64 array."""

from __future__ import annotations

from typing import Any

import numpy as np

from storylab.errors import StorylabError


def as_features(x: Any, name: str, min_rows: int = 1) -> np.ndarray:
    """Return ``x`` (tensor, array or nested list) as a C-contiguous float64 ``(N, D)`` array.

    Raises :class:`StorylabError` naming ``name`` when ``x`` is not 2-D, has fewer than ``min_rows``
    rows, has no feature columns or holds NaN/inf values.
    """
    if hasattr(x, "detach"):  # torch tensor: leave autograd and the device behind
        x = x.detach().to("cpu").double().numpy()
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    if arr.ndim != 2:
        raise StorylabError(f"{name} features must be a 2-D (N, D) array, got shape {tuple(arr.shape)}")
    if arr.shape[1] == 0:
        raise StorylabError(f"{name} features have no columns (shape {tuple(arr.shape)})")
    if arr.shape[0] < min_rows:
        raise StorylabError(f"{name} features need at least {min_rows} rows, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise StorylabError(f"{name} features contain NaN or infinite values")
    return arr


def same_width(a: np.ndarray, b: np.ndarray, name_a: str = "real", name_b: str = "fake") -> None:
    """Raise :class:`StorylabError` unless ``a`` and ``b`` have the same feature dimension."""
    if a.shape[1] != b.shape[1]:
        raise StorylabError(f"{name_a} and {name_b} features differ in dimension: {a.shape[1]} vs {b.shape[1]}")
