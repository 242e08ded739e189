"""What the image metrics need of a data set, kept without its images: the "reference" file.

For one data set and one feature network it holds the feature statistics of the whole test split
(mean, covariance, count: all FID needs, as in the original FID code's ``.npz`` statistics), the
features of a fixed class-balanced test subset (the real side of precision / recall / density /
coverage, which need points, not statistics), and a fixed class-balanced pool of train-split
features from which the real-vs-real floor draws its subsets. Shipped next to the Fashion-MNIST
checkpoints (``fashion_mnist_reference.safetensors``), it lets sampling, the study and the demo
score samples on a fresh install without the data package; for any other data set or feature
network it is computed from the data (and can be written with ``storylab evaluate reference``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from storylab.errors import StorylabError
from storylab.io import atomic_path
from storylab.metrics import extract_features
from storylab.metrics.frechet import feature_stats

KIND = "image-metric-reference"


@dataclass
class Reference:
    """Test statistics, a balanced test subset and a balanced train pool (features of one feature net)."""

    test_mean: np.ndarray
    test_cov: np.ndarray
    test_count: int
    test_feats: np.ndarray
    test_labels: np.ndarray
    pool_feats: np.ndarray
    pool_labels: np.ndarray
    data: str
    feature_net: str

    @property
    def stats(self) -> tuple[np.ndarray, np.ndarray, int]:
        return self.test_mean, self.test_cov, self.test_count

    @property
    def dim(self) -> int:
        return int(self.test_mean.shape[0])


def _balanced(labels: torch.Tensor, per_class: int | None, seed: int) -> torch.Tensor:
    from storylab.images.data.datasets import balanced_indices

    if per_class is None:
        return torch.arange(labels.shape[0])
    return balanced_indices(labels, per_class, seed)


def build_reference(data: str, feature_net: Any, feature_net_name: str, test_per_class: int | None = 100,
                    pool_per_class: int | None = 250, seed: int = 0) -> Reference:
    """Compute the reference of ``data`` with ``feature_net`` (needs the data installed).

    ``None`` for a per-class size takes the whole split (the digits, whose splits are small).
    """
    from storylab.images.data.datasets import load_split

    test, train = load_split(data, "test"), load_split(data, "train")
    test_all = extract_features(feature_net, test.images)
    mean, cov, count = feature_stats(test_all)
    t_idx = _balanced(test.labels, test_per_class, seed)
    p_idx = _balanced(train.labels, pool_per_class, seed + 1)
    pool = extract_features(feature_net, train.images[p_idx])
    return Reference(mean, cov, count, test_all[t_idx].double().numpy(), test.labels[t_idx].numpy(),
                     pool.double().numpy(), train.labels[p_idx].numpy(), data, feature_net_name)


def save_reference(path: str | Path, ref: Reference, extra: dict[str, Any] | None = None) -> Path:
    """Write ``ref`` as safetensors (float32 features, float64 statistics) with its provenance, atomically."""
    from safetensors.torch import save_file

    tensors = {"test_mean": torch.from_numpy(ref.test_mean), "test_cov": torch.from_numpy(ref.test_cov),
               "test_feats": torch.from_numpy(ref.test_feats).float(), "test_labels": torch.from_numpy(ref.test_labels),
               "pool_feats": torch.from_numpy(ref.pool_feats).float(), "pool_labels": torch.from_numpy(ref.pool_labels)}
    meta = {"storylab.kind": KIND, "storylab.extra": json.dumps({**(extra or {}), "data": ref.data,
                                                                 "feature_net": ref.feature_net,
                                                                 "test_count": ref.test_count}, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    return Path(path)


def read_reference(path: str | Path) -> Reference:
    """Load a reference file written by :func:`save_reference` (a foreign file is a clear error)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise StorylabError(f"reference file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("storylab.kind") != KIND:
                raise StorylabError(f"{path} is not a storylab metric reference")
            t = {k: f.get_tensor(k) for k in f.keys()}
    except StorylabError:
        raise
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise StorylabError(f"{path}: unreadable reference file ({exc})") from None
    extra = json.loads(meta.get("storylab.extra", "{}"))
    return Reference(t["test_mean"].double().numpy(), t["test_cov"].double().numpy(), int(extra["test_count"]),
                     t["test_feats"].double().numpy(), t["test_labels"].numpy(), t["pool_feats"].double().numpy(),
                     t["pool_labels"].numpy(), str(extra.get("data", "")), str(extra.get("feature_net", "")))


def load_reference(data: str, feature_net: Any, feature_net_path: str | Path | None = None) -> Reference:
    """The shipped reference of ``data`` when the shipped feature network is used, else one computed from the data."""
    from storylab.images.assets import shipped

    shipped_file = shipped(data, "reference")
    if feature_net_path is None and shipped_file.exists():
        return read_reference(shipped_file)
    if data == "digits":
        return build_reference(data, feature_net, str(feature_net_path or "shipped"), None, None)
    return build_reference(data, feature_net, str(feature_net_path or "shipped"))
