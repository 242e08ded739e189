"""C-P / C-R / C-F1 (Courant et al., ECCV 2024, Sec. 5.1): re-tag generated trajectories and compare per frame.

Generated features are decoded back to metric poses first (undoing the standardisation - the public
evaluation code tags the still-scaled data, a quirk we do not reproduce), tagged with E.T.'s rule
(N-1 tags for N poses) and compared with the N-1 reference tags (the authors' metric drops the last
frame of the padded reference the same way) over the 27 classes, weighted by class support.
"""

from __future__ import annotations

import numpy as np
import torch

from storylab.camera.features import decode_camera
from storylab.camera.tagging import tag_camera


def retag(features: list[np.ndarray]) -> list[np.ndarray]:
    """Per-frame camera tag ids of generated (n_i, 9) feature arrays."""
    return [tag_camera(decode_camera(f)).frames for f in features]


def reference_tags(cam_segments: torch.Tensor, indices: list[int], lengths: list[int]) -> list[np.ndarray]:
    """The n_i - 1 reference tags of samples ``indices`` of n_i poses from a (B, T) padded tag tensor."""
    return [cam_segments[i, :n - 1].numpy() for i, n in zip(indices, lengths)]


def classification_scores(reference: list[np.ndarray], predicted: list[np.ndarray]) -> dict[str, float]:
    """Weighted precision / recall / F1 over frames and the 27 classes, in percent of 1 (0..1)."""
    from sklearn.metrics import precision_recall_fscore_support

    ref, pred = np.concatenate(reference), np.concatenate(predicted)
    p, r, f, _ = precision_recall_fscore_support(ref, pred, labels=list(range(27)), average="weighted",
                                                 zero_division=0)
    return {"C-P": float(p), "C-R": float(r), "C-F1": float(f)}


def split_valid(features: torch.Tensor, mask: torch.Tensor) -> list[np.ndarray]:
    """(B, T, 9) padded features and (B, T) mask -> list of (n_i, 9) float64 arrays."""
    return [features[i, :int(mask[i].sum())].double().numpy() for i in range(len(features))]
