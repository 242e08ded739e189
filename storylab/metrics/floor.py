"""The real-vs-real FID floor on class-balanced subsets of the model's sample size, with its spread.

A finite-sample FID is biased upwards by roughly a constant over n (Chong & Forsyth 2020), so a
model's FID at n samples is read against what *real* images reach at the same n. The model's sample
is class-balanced (the same number per class), so the real subsets are too: ``per_class`` items of
every class, drawn without replacement from a pool of real features (the train split), scored
against the reference (the test split, as features or as stored statistics). Repeating the draw
gives the floor's spread (a bootstrap over subsets); a model within that spread of the floor is as
close to the test set as real images are.

Below :data:`MIN_N_PER_DIM` samples per feature dimension the covariance estimate is too noisy for
FID to rank models (with n <= D it is singular); :func:`fid_warning` says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from storylab.errors import StorylabError
from storylab.metrics._arrays import as_features
from storylab.metrics.frechet import frechet_distance, frechet_distance_to_stats

MIN_N_PER_DIM = 5


def balanced_subset(labels: Any, per_class: int, rng: np.random.Generator, num_classes: int | None = None) -> np.ndarray:
    """Row indices of ``per_class`` rows of every class ``0..num_classes-1`` (without replacement)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    k = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    picks = []
    for c in range(k):
        where = np.flatnonzero(labels == c)
        if where.size < per_class:
            raise StorylabError(f"the real pool has {where.size} items of class {c}, fewer than the {per_class} "
                                "per class of the sample; lower --per-class")
        picks.append(rng.choice(where, size=per_class, replace=False))
    return np.concatenate(picks)


def balanced_floor(reference: Any, pool_feats: Any, pool_labels: Any, per_class: int, repeats: int = 10,
                   seed: int = 0, num_classes: int | None = None) -> dict[str, Any]:
    """FID of ``repeats`` class-balanced real subsets (``per_class`` per class) against ``reference``.

    ``reference`` is a feature array ``(N, D)`` or a ``(mean, cov, count)`` tuple. Returns
    ``{"fid": mean, "fid_std": standard deviation over subsets, "fid_values": [...], "n": subset size,
    "repeats": repeats}``.
    """
    if repeats < 2:
        raise StorylabError(f"the floor's spread needs at least 2 repeats, got {repeats}")
    pool = as_features(pool_feats, "pool", min_rows=2)
    labels = np.asarray(pool_labels).reshape(-1)
    if labels.shape[0] != pool.shape[0]:
        raise StorylabError(f"pool has {pool.shape[0]} feature rows but {labels.shape[0]} labels")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(repeats):
        sub = pool[balanced_subset(labels, per_class, rng, num_classes)]
        values.append(frechet_distance_to_stats(*reference, sub) if isinstance(reference, tuple)
                      else frechet_distance(reference, sub))
    n = per_class * (int(labels.max()) + 1 if num_classes is None else int(num_classes))
    return {"fid": float(np.mean(values)), "fid_std": float(np.std(values, ddof=1)), "fid_values": values,
            "n": n, "repeats": repeats}


def fid_warning(n: int, dim: int) -> str | None:
    """A one-line warning when ``n`` samples are too few for FID in ``dim`` feature dimensions, else None."""
    need = MIN_N_PER_DIM * dim
    if n >= need:
        return None
    return (f"warning: FID at n = {n} is not meaningful for {dim}-dimensional features (needs n >= {need}, "
            f"{MIN_N_PER_DIM} per dimension); read it only against the real-vs-real floor at the same n")
