"""Nearest training images of generated samples in a feature network's space: the memorisation check.

A model that memorises reproduces training images, so its samples sit much closer to their
nearest training image than held-out real images do (the lectures' figure shows each sample with
its top-3 nearest training images). Distances are Euclidean in the penultimate features of the
data set's feature network, the space FID is computed in. Data-set agnostic: it takes features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from storylab.errors import StorylabError


@dataclass
class Neighbours:
    """The ``k`` nearest reference rows of each query: ``distances`` and ``indices``, both ``(N, k)``, nearest first."""

    distances: torch.Tensor
    indices: torch.Tensor


def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, k: int) -> Neighbours:
    """Exact k-nearest neighbours under the Euclidean distance: queries ``(N, D)`` against reference ``(M, D)``.

    Distances are computed directly (no ``|a|^2 - 2ab + |b|^2`` shortcut, whose cancellation can
    misorder near ties).
    """
    if queries.ndim != 2 or reference.ndim != 2 or queries.shape[1] != reference.shape[1]:
        raise StorylabError(f"nearest neighbours need (N, D) and (M, D) features, got {tuple(queries.shape)} and "
                            f"{tuple(reference.shape)}")
    if not 1 <= k <= reference.shape[0]:
        raise StorylabError(f"--nearest must be between 1 and the {reference.shape[0]} training images, got {k}")
    dist = torch.cdist(queries.double(), reference.double(), compute_mode="donot_use_mm_for_euclid_dist")  # (N, M)
    values, indices = torch.topk(dist, k, dim=1, largest=False, sorted=True)
    return Neighbours(values.float(), indices)


@dataclass
class MemorisationCheck:
    """Nearest training images of each sample and the same distance for held-out real images (the baseline).

    ``neighbours`` index the training set; ``held_out_nearest`` ``(M,)`` is each held-out image's
    distance to its nearest training image (None without held-out images).
    """

    neighbours: Neighbours
    held_out_nearest: torch.Tensor | None


def memorisation_check(samples: torch.Tensor, train_images: torch.Tensor, feature_net: torch.nn.Module, k: int,
                       held_out: torch.Tensor | None = None) -> MemorisationCheck:
    """Top-``k`` nearest ``train_images`` of each sample in ``feature_net``'s penultimate features.

    Images are model-range ``(N, C, H, W)`` in [-1, 1]. ``held_out`` real images (the test split)
    give the reference: a sample much nearer its nearest training image than real unseen images are
    is a copy.
    """
    from storylab.metrics import extract_features

    train_feats = extract_features(feature_net, train_images)
    found = nearest_neighbours(extract_features(feature_net, samples), train_feats, k)
    baseline = None
    if held_out is not None:
        baseline = nearest_neighbours(extract_features(feature_net, held_out), train_feats, 1).distances[:, 0]
    return MemorisationCheck(found, baseline)
