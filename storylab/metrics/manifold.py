"""k-NN manifold metrics: precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

Each sample set is approximated by the union of balls around its points, the radius of a ball being
the distance to the point's k-th nearest neighbour within the same set. Argument order matters and
is the same everywhere: ``(real, fake)``. The REAL balls decide precision, density and coverage
("is this generated sample plausible?"); the FAKE balls decide recall ("is this real sample
reproduced?"). Swapping the arguments swaps precision with recall and breaks density/coverage.

Neighbour search uses scikit-learn (``NearestNeighbors`` and ``pairwise_distances_chunked``); the
few lines that count ball memberships are written here because no maintained package computes all
four on arbitrary feature arrays (torch-fidelity's precision/recall works on its own feature
extractors and has no density/coverage; the reference ``prdc`` package has had no release since 2020).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import pairwise_distances_chunked
from sklearn.neighbors import NearestNeighbors

from storylab.errors import StorylabError
from storylab.metrics._arrays import as_features, same_width


def knn_radii(feats: np.ndarray, k: int, name: str = "features") -> np.ndarray:
    """Distance from each row of ``feats`` to its k-th nearest other row (the k-NN ball radius)."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise StorylabError(f"k must be a positive integer, got {k!r}")
    if k >= feats.shape[0]:
        raise StorylabError(f"k={k} needs more than k samples in the {name} set, got {feats.shape[0]}")
    # The query point itself is returned as its own 0-th neighbour, hence k + 1 neighbours.
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(feats).kneighbors(feats)
    return dist[:, k]


def _ball_counts(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each row of ``points``, how many balls ``(centres[i], radii[i])`` contain it (closed balls)."""
    counts = np.zeros(points.shape[0], dtype=np.int64)
    start = 0
    for block in pairwise_distances_chunked(points, centres):  # block: (chunk, n_centres)
        counts[start:start + block.shape[0]] = (block <= radii[None, :]).sum(axis=1)
        start += block.shape[0]
    return counts


def _prepare(real: Any, fake: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    real_arr = as_features(real, "real", min_rows=2)
    fake_arr = as_features(fake, "fake", min_rows=1)
    same_width(real_arr, fake_arr)
    return real_arr, fake_arr


def precision_recall(real: Any, fake: Any, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of ``fake`` w.r.t. ``real`` (Kynkäänniemi et al. 2019, Sec. 2, eq. 1-2).

    precision = fraction of fake samples inside the union of REAL k-NN balls;
    recall    = fraction of real samples inside the union of FAKE k-NN balls.
    ``real`` ``(N, D)``, ``fake`` ``(M, D)``; k = 3 as in the paper; needs N > k and M > k.
    A fake set that copies real points has precision 1; one collapsed onto a single real point has
    precision 1 but recall about 1/N.
    """
    real_arr, fake_arr = _prepare(real, fake, k)
    real_radii = knn_radii(real_arr, k, "real")
    fake_radii = knn_radii(fake_arr, k, "fake")
    precision = float((_ball_counts(fake_arr, real_arr, real_radii) > 0).mean())
    recall = float((_ball_counts(real_arr, fake_arr, fake_radii) > 0).mean())
    return precision, recall


def density_coverage(real: Any, fake: Any, k: int = 5) -> tuple[float, float]:
    """Density and coverage of ``fake`` w.r.t. ``real`` (Naeem et al. 2020, Sec. 3.2, "density" and "coverage").

    density  = (1 / kM) * sum over fake j of the number of REAL k-NN balls containing fake j
               (about 1 when fake and real come from one distribution; unbounded above);
    coverage = fraction of real samples whose REAL k-NN ball contains at least one fake sample.
    Only real balls are used, so outliers in ``fake`` cannot inflate either value. k = 5 is the
    paper's recommendation; needs N > k (``real`` is ``(N, D)``, ``fake`` is ``(M, D)``).
    Coverage grows with M / N: compare values only at equal set sizes (ideally M = N).
    """
    real_arr, fake_arr = _prepare(real, fake, k)
    real_radii = knn_radii(real_arr, k, "real")
    density = float(_ball_counts(fake_arr, real_arr, real_radii).sum() / (k * fake_arr.shape[0]))
    nearest_fake, _ = NearestNeighbors(n_neighbors=1).fit(fake_arr).kneighbors(real_arr)
    coverage = float((nearest_fake[:, 0] <= real_radii).mean())
    return density, coverage
