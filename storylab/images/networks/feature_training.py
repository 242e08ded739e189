"""Train the digit feature network (``storylab train features``) and load the shipped copy.

The network (:class:`storylab.metrics.SmallImageClassifier`) is trained with cross-entropy on the
fixed digits train split, with light augmentation (random shifts of up to ``max_shift`` pixels,
background-filled) so that its features describe digit shape rather than memorised pixels. The
shared Accelerate loop provides EMA, checkpoints and resume; the EMA weights are what is saved.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from storylab.errors import StorylabError
from storylab.metrics.feature_net import (FeatureNetConfig, SmallImageClassifier, adherence, load_feature_net,
                                          save_feature_net)

DIGIT_FEATURES_FILE = "digit_features.safetensors"


def shipped_feature_net_path(data: str = "digits") -> Path:
    """Path of the shipped feature network of ``data`` (``digits`` or ``fashion-mnist``) inside the package."""
    import storylab

    name = DIGIT_FEATURES_FILE if data == "digits" else f"{data.replace('-', '_')}_features.safetensors"
    return Path(storylab.__file__).parent / "assets" / "images" / name


@dataclass
class FeatureTrainingConfig:
    """Settings of ``storylab train features`` (defaults produce the shipped network)."""

    out: str = "runs/digit_features.safetensors"
    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_shift: int = 1
    ema_decay: float = 0.995
    seed: int = 0
    resume: bool = True
    progress: bool = True
    data: str = "digits"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise StorylabError(f"steps must be at least 1, got {self.steps}")
        if self.batch_size < 1:
            raise StorylabError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_shift < 0:
            raise StorylabError(f"max shift must be 0 or more pixels, got {self.max_shift}")
        if not self.lr > 0:
            raise StorylabError(f"learning rate must be positive, got {self.lr}")


def random_shift(images: torch.Tensor, max_shift: int, background: float = -1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image ``(N, C, H, W)`` by its own random integer offset in ``[-max_shift, max_shift]``^2.

    Pixels shifted in from outside take the ``background`` value (-1 = blank paper in model range).
    """
    if max_shift == 0:
        return images
    n, _, h, w = images.shape
    padded = nn.functional.pad(images, (max_shift,) * 4, value=background)  # (N, C, H+2s, W+2s)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, :]  # (N, 1, W)
    crops = padded.permute(0, 2, 3, 1)[torch.arange(n)[:, None, None], rows, cols]  # (N, H, W, C)
    return crops.permute(0, 3, 1, 2).contiguous()


def train_feature_net(config: FeatureTrainingConfig,
                      command: str | None = None) -> tuple[SmallImageClassifier, dict[str, float]]:
    """Train the digit feature network on the train split; save EMA weights to ``config.out``.

    Returns the trained (EMA) network in eval mode and ``{"train_accuracy", "test_accuracy"}``; both
    accuracies are also written into the checkpoint's metadata with the command and seed.
    """
    from torch.utils.data import DataLoader, TensorDataset

    from storylab.images.data.datasets import load_split, resolve
    from storylab.training import TrainConfig, state_path_for, train
    from storylab.training.loop import is_main_process

    ds = resolve(config.data)
    train_split, test_split = load_split(ds, "train"), load_split(ds, "test")
    torch.manual_seed(config.seed)
    net = SmallImageClassifier(FeatureNetConfig(image_size=ds.image_size, channels=1, num_classes=ds.num_classes))
    loader = DataLoader(TensorDataset(train_split.images, train_split.labels), batch_size=config.batch_size,
                        shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(config.seed))
    loss = nn.CrossEntropyLoss()

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        images, labels = batch
        logits = model(random_shift(images, config.max_shift))
        return loss(logits, labels), {"acc": float((logits.argmax(1) == labels).float().mean())}

    extra = {"command": command or "", "seed": config.seed, "training": asdict(config)}

    def save_fn(model: nn.Module, ema_model: nn.Module | None, step: int) -> None:
        save_feature_net(config.out, ema_model or model, extra={**extra, "step": step})

    train_config = TrainConfig(steps=config.steps, lr=config.lr, weight_decay=config.weight_decay,
                               warmup_steps=min(100, config.steps // 10), ema_decay=config.ema_decay,
                               checkpoint_every=500, log_every=50, seed=config.seed, progress=config.progress)
    state = train(net, loss_fn, loader, train_config, save_fn=save_fn,
                  state_path=state_path_for(config.out) if config.resume else None, description="feature net")
    final = (state.ema_model or state.model).eval()
    scores = {"train_accuracy": adherence(final, train_split.images, train_split.labels),
              "test_accuracy": adherence(final, test_split.images, test_split.labels)}
    if is_main_process():  # under several processes, the main one writes
        save_feature_net(config.out, final, extra={**extra, "step": state.step, **scores})
    return final, scores


def load_digit_feature_net(path: str | Path | None = None, data: str = "digits") -> SmallImageClassifier:
    """Load the shipped feature network of ``data`` (or the one at ``path``) in eval mode."""
    p = Path(path) if path is not None else shipped_feature_net_path(data)
    if path is None and not p.exists():
        raise StorylabError(f"no shipped feature network for data set '{data}' ({p}); train one with "
                            f"`storylab train features --data {data} --out {p}`")
    return load_feature_net(p)


def current_command() -> str:
    """The command line of this process, for the record kept inside a checkpoint."""
    return " ".join(shlex.quote(a) for a in ["storylab", *sys.argv[1:]])
