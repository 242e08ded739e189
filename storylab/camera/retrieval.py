"""Text <-> trajectory retrieval metrics of a joint embedding, as CLaTr reports them (Courant et al.,
ECCV 2024, Sec. 5.1; the protocol of TMR, Petrovich et al., ICCV 2023).

For n paired captions and trajectories, S[i, j] is the cosine similarity of caption i and trajectory j.
Text-to-trajectory ranks row i of S, trajectory-to-text ranks row i of S^T; the ground truth is the
diagonal. The rank of the ground truth (0-based) is the number of candidates strictly closer plus, for
candidates exactly as close, the mean of the tied positions (ties are averaged). With a caption
self-similarity ``text_selfsim`` and a ``threshold`` t, every candidate j whose caption is similar to
caption i (selfsim[i, j] > 2 t - 1, t on the [0, 1] score scale) counts as a ground truth and the closest
of them is ranked (near-duplicate captions are not wrong answers). R@k = 100 x the share of ranks < k
(k = 1, 2, 3, 5, 10), MedR = the median rank + 1; rounded to 2 decimals.
"""

from __future__ import annotations

import numpy as np

RECALL_AT = (1, 2, 3, 5, 10)


def cosine_similarity_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, d) and (m, d) embeddings -> (n, m) cosine similarities."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return a @ b.T


def ground_truth_ranks(sims: np.ndarray, text_selfsim: np.ndarray | None = None,
                       threshold: float | None = None) -> np.ndarray:
    """(n,) 0-based rank of each query's ground truth in its row of the (n, n) similarity matrix, ties averaged."""
    sims = np.asarray(sims, np.float64)
    if sims.ndim != 2 or sims.shape[0] != sims.shape[1]:
        raise ValueError(f"retrieval needs a square similarity matrix, got shape {sims.shape}")
    dists = -sims
    gt = np.diag(dists).copy()
    if text_selfsim is not None and threshold is not None:
        similar = np.asarray(text_selfsim) > 2 * threshold - 1
        gt = np.where(similar, dists, np.inf).min(axis=1)
    closer = (dists < gt[:, None]).sum(axis=1)
    tied = (dists == gt[:, None]).sum(axis=1)
    return closer + (tied - 1) / 2.0


def ranks_to_metrics(ranks: np.ndarray, rounding: int | None = 2) -> dict[str, float]:
    """R@1/2/3/5/10 (percent) and the median rank (1-based) of 0-based ranks."""
    out = {f"R@{k}": 100.0 * float(np.mean(ranks < k)) for k in RECALL_AT}
    out["MedR"] = float(np.median(ranks) + 1)
    return {k: round(v, rounding) for k, v in out.items()} if rounding is not None else out


def retrieval_metrics(text_emb: np.ndarray, traj_emb: np.ndarray, caption_features: np.ndarray | None = None,
                      threshold: float | None = 0.95, rounding: int | None = 2) -> dict[str, float]:
    """Text->trajectory and trajectory->text R@k and MedR of paired embeddings (module docstring).

    ``caption_features`` (the text encoder's sentence embeddings, as the authors pass their CLIP token)
    give the caption self-similarity for ``threshold``; without them only the diagonal is ground truth.
    """
    sims = cosine_similarity_matrix(text_emb, traj_emb)
    selfsim = cosine_similarity_matrix(caption_features, caption_features) if caption_features is not None else None
    t2m = ranks_to_metrics(ground_truth_ranks(sims, selfsim, threshold), rounding)
    m2t = ranks_to_metrics(ground_truth_ranks(sims.T, selfsim, threshold), rounding)
    return {**{f"text->traj {k}": v for k, v in t2m.items()}, **{f"traj->text {k}": v for k, v in m2t.items()}}
