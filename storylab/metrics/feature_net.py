"""A small CNN classifier for small grey-level images: its penultimate layer gives the features for
FID / precision-recall, its argmax gives *adherence* (are samples of class y recognised as y?).

This is the digits' stand-in for Inception-v3 in FID (Heusel et al. 2017): Inception features are
meaningless on 8x8 images, so storylab trains this network on the digits train split (see
``storylab train features``) and ships it. The metrics package only defines the network; the
training script and the shipped file belong to the images wing.

Inputs are model-range images ``(N, C, H, W)`` in [-1, 1]; values outside are clamped to that
range first, as every sampler's output is clamped before display.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from storylab.errors import StorylabError

FEATURE_NET_KIND = "digit-features"


@dataclass
class FeatureNetConfig:
    """Shape of the classifier: input ``(channels, image_size, image_size)``, ``num_classes`` outputs."""

    image_size: int = 8
    channels: int = 1
    num_classes: int = 10
    width: int = 32
    feature_dim: int = 64
    dropout: float = 0.2

    def __post_init__(self) -> None:
        for name in ("image_size", "channels", "num_classes", "width", "feature_dim"):
            if int(getattr(self, name)) < 1:
                raise StorylabError(f"feature net {name} must be positive, got {getattr(self, name)}")
        if self.image_size < 4:
            raise StorylabError(f"feature net image_size must be at least 4, got {self.image_size}")
        if self.num_classes < 2:
            raise StorylabError(f"feature net needs at least 2 classes, got {self.num_classes}")


class SmallImageClassifier(nn.Module):
    """Two conv stages (3x3 convs, ReLU, 2x2 max-pool) -> 2x2 adaptive average pool -> MLP -> logits.

    ``features(x)`` returns the ``feature_dim``-dimensional penultimate activations (after ReLU,
    like Inception's pool3 features); ``forward(x)`` returns class logits.
    """

    def __init__(self, config: FeatureNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or FeatureNetConfig()
        c, w = self.config.channels, self.config.width
        self.body = nn.Sequential(
            nn.Conv2d(c, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (B, w, H/2, W/2)
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),  # (B, 2w, 2, 2)
            nn.Flatten(),  # (B, 8w)
            nn.Dropout(self.config.dropout),
            nn.Linear(8 * w, self.config.feature_dim), nn.ReLU(),  # (B, feature_dim)
        )
        self.head = nn.Linear(self.config.feature_dim, self.config.num_classes)

    def check_input(self, images: torch.Tensor) -> None:
        """Raise :class:`StorylabError` unless ``images`` is ``(N, channels, image_size, image_size)``."""
        cfg = self.config
        want = (cfg.channels, cfg.image_size, cfg.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != want:
            raise StorylabError(f"feature net expects images of shape (N, {', '.join(map(str, want))}), "
                                f"got {tuple(images.shape)}")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, feature_dim)`` of model-range images ``(N, C, H, W)``."""
        self.check_input(images)
        return self.body(images.clamp(-1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.head(self.features(images))


def _batches(net: SmallImageClassifier, images: torch.Tensor, batch_size: int, fn: str) -> torch.Tensor:
    if batch_size < 1:
        raise StorylabError(f"batch_size must be positive, got {batch_size}")
    images = torch.as_tensor(images, dtype=torch.float32)
    net.check_input(images)
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    try:
        with torch.no_grad():
            parts = [getattr(net, fn)(images[i:i + batch_size].to(device)).cpu()
                     for i in range(0, images.shape[0], batch_size)]
    finally:
        net.train(was_training)
    return torch.cat(parts) if parts else torch.zeros(0)


def extract_features(net: SmallImageClassifier, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Penultimate-layer features ``(N, feature_dim)`` of ``images`` ``(N, C, H, W)`` in [-1, 1], eval mode."""
    return _batches(net, images, batch_size, "features")


def predict_classes(net: SmallImageClassifier, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Most probable class ``(N,)`` (argmax of the softmax) of each image."""
    return _batches(net, images, batch_size, "forward").argmax(dim=1)


def adherence(classifier: SmallImageClassifier, images: torch.Tensor, labels: torch.Tensor | Any,
              batch_size: int = 512) -> float:
    """Fraction of ``images`` that ``classifier`` assigns to the class they were requested as (``labels``).

    Also the classifier's plain accuracy when ``images`` are real and ``labels`` their true classes.
    """
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if labels.shape[0] != images.shape[0]:
        raise StorylabError(f"adherence needs one label per image: {images.shape[0]} images, {labels.shape[0]} labels")
    if labels.shape[0] == 0:
        raise StorylabError("adherence of an empty sample is undefined")
    n_classes = classifier.config.num_classes
    if int(labels.min()) < 0 or int(labels.max()) >= n_classes:
        raise StorylabError(f"labels must lie in 0..{n_classes - 1}, got {int(labels.min())}..{int(labels.max())}")
    return float((predict_classes(classifier, images, batch_size) == labels).double().mean())


def save_feature_net(path: str | os.PathLike, net: SmallImageClassifier, extra: dict[str, Any] | None = None) -> None:
    """Save ``net`` as a storylab checkpoint of kind ``digit-features`` (atomic safetensors)."""
    from storylab.training import save_checkpoint

    save_checkpoint(path, net.state_dict(), kind=FEATURE_NET_KIND, config=asdict(net.config), extra=extra)


def load_feature_net(path: str | os.PathLike) -> SmallImageClassifier:
    """Load a ``digit-features`` checkpoint into an eval-mode :class:`SmallImageClassifier`."""
    from storylab.training import load_checkpoint

    ckpt = load_checkpoint(path, kind=FEATURE_NET_KIND)
    try:
        net = SmallImageClassifier(FeatureNetConfig(**ckpt.config))
        net.load_state_dict(ckpt.state_dict)
    except (TypeError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0]
        raise StorylabError(f"feature net checkpoint {path} does not match the network: {reason}") from exc
    net.extra = ckpt.extra  # type: ignore[attr-defined]  # training facts (command, seed, accuracy)
    return net.eval()
