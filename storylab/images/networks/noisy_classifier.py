"""A noise-aware digit classifier p_phi(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021, sec. 4).

It is trained on q_sample'd digits x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps with the timestep as
input, so that its gradient grad_x log p(y | x_t, t) is meaningful at every noise level the sampler
visits. Architecture: the digit UNet's timestep embedding and one residual block per level, the
levels joined by stride-2 convolutions, then global average pooling and a linear head (guided
diffusion's classifier is the UNet's encoder half with a pooled head; ours at a smaller size).
``channel_mult`` gives each level's width: the digits' ``(1, 2, 2)`` goes 8 -> 4 -> 2, and the
28x28 sets' ``(1, 2, 2, 2)`` goes 28 -> 14 -> 7 -> 4 (:func:`classifier_config_for` sizes it by the
data set). Modules are named ``block1, down1, block2, ...`` so checkpoints of every size share one
layout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from storylab.diffusion import alphas_cumprod, beta_schedule, q_sample
from storylab.errors import StorylabError
from storylab.images.assets import ASSETS
from storylab.images.networks.unet import ResBlock, timestep_embedding
from storylab.training import TrainConfig, load_checkpoint, save_checkpoint, state_path_for, train

KIND = "digits-noisy-classifier"


@dataclass
class ClassifierConfig:
    """Size and noise schedule of the noise-aware classifier (must match the denoiser's schedule)."""

    channels: int = 32
    emb_dim: int = 64
    num_classes: int = 10
    groups: int = 8
    beta_schedule: str = "cosine"
    num_timesteps: int = 1000
    data: str = "digits"
    channel_mult: tuple[int, ...] = (1, 2, 2)
    image_size: int = 8

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise StorylabError(f"channel_mult must be positive integers, got {self.channel_mult}")


# Sizes by image side: the digits keep the shipped 8x8 classifier's, the 28x28 sets add a level (28 -> 14 -> 7 -> 4)
# at half the width, so that training fits in minutes on one CPU thread (--channels 32 is one flag away).
SIZES = {8: {"channels": 32, "channel_mult": (1, 2, 2)}, 28: {"channels": 16, "channel_mult": (1, 2, 2, 2)}}


def classifier_config_for(data: str, num_classes: int, image_size: int, **overrides) -> ClassifierConfig:
    """The classifier configuration of a data set: :data:`SIZES` by image side (the 28x28 one for other sides)."""
    size = {**SIZES.get(image_size, SIZES[28]), **{k: v for k, v in overrides.items() if v is not None}}
    return ClassifierConfig(num_classes=num_classes, data=data, image_size=image_size, **size)


class NoisyDigitClassifier(nn.Module):
    """``forward(x_t, t) -> logits (B, num_classes)``."""

    def __init__(self, cfg: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ClassifierConfig()
        c, e = cfg.channels, cfg.emb_dim
        widths = [c * m for m in cfg.channel_mult]
        self.time_mlp = nn.Sequential(nn.Linear(c, e), nn.SiLU(), nn.Linear(e, e))
        self.conv_in = nn.Conv2d(1, widths[0], 3, padding=1)
        self.levels = len(widths)
        for i, w in enumerate(widths):  # block1, down1, block2, ... (the 8x8 layout's names)
            if i:
                self.add_module(f"down{i}", nn.Conv2d(widths[i - 1], w, 3, stride=2, padding=1))
            self.add_module(f"block{i + 1}", ResBlock(w, w, e, cfg.groups))
        self.norm = nn.GroupNorm(cfg.groups, widths[-1])
        self.head = nn.Linear(widths[-1], cfg.num_classes)
        self.register_buffer("alpha_bar", alphas_cumprod(beta_schedule(cfg.beta_schedule, cfg.num_timesteps)).float(),
                             persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.cfg.channels))
        h = self.block1(self.conv_in(x), emb)  # (B, C, S, S), S = 8 (digits) or 28
        for i in range(1, self.levels):
            h = getattr(self, f"block{i + 1}")(getattr(self, f"down{i}")(h), emb)  # (B, C * mult_i, S / 2^i, S / 2^i)
        return self.head(F.silu(self.norm(h)).mean(dim=(2, 3)))  # pooled (B, C * mult_last) -> (B, num_classes)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy on q_sample'd inputs at uniformly drawn timesteps."""
        t = torch.randint(0, self.alpha_bar.shape[0], (images.shape[0],), device=images.device)
        logits = self(q_sample(images, t, self.alpha_bar), t)
        acc = (logits.argmax(-1) == labels).float().mean()
        return F.cross_entropy(logits, labels), {"acc": float(acc)}


def save_classifier(path: str | Path, model: NoisyDigitClassifier, extra: dict | None = None) -> Path:
    return save_checkpoint(path, model.state_dict(), KIND, asdict(model.cfg), extra)


def load_classifier(path: str | Path, num_classes: int | None = None, data: str | None = None,
                    image_size: int | None = None) -> NoisyDigitClassifier:
    """Load a ``digits-noisy-classifier`` checkpoint, checking it fits the denoiser (class count, data set, size).

    A checkpoint written before the 28x28 sizes records neither ``channel_mult`` nor ``image_size``:
    the 8x8 defaults are its true values.
    """
    path = Path(path)
    if not path.exists() and path.parent == ASSETS:
        named = data or "DATA"
        raise StorylabError(f"no noise-aware classifier is shipped for this data set ({path.name}); train one with "
                            f"`storylab train classifier --data {named}` and pass --classifier "
                            f"runs/{named.replace('-', '_').lower()}_classifier.safetensors")
    ckpt = load_checkpoint(path, KIND)
    cfg = ClassifierConfig(**{k: v for k, v in ckpt.config.items() if k in ClassifierConfig.__dataclass_fields__})
    if data is not None and cfg.data != data:
        raise StorylabError(f"{path} is a classifier of '{cfg.data}' images, but the denoiser draws '{data}'")
    if image_size is not None and cfg.image_size != image_size:
        raise StorylabError(f"{path} classifies {cfg.image_size}x{cfg.image_size} images, but the denoiser draws "
                            f"{image_size}x{image_size}")
    if num_classes is not None and cfg.num_classes != num_classes:
        raise StorylabError(f"{path} classifies {cfg.num_classes} classes, but the denoiser has {num_classes}")
    model = NoisyDigitClassifier(cfg)
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        raise StorylabError(f"{path}: weights do not match the recorded configuration") from exc
    return model.eval()


@torch.no_grad()
def noisy_accuracy(model: NoisyDigitClassifier, t_values: tuple[int, ...] = (0, 250, 500, 750), seed: int = 0,
                   limit: int = 2000) -> dict[int, float]:
    """Test-split accuracy of the classifier at fixed noise levels t (on the first ``limit`` test images)."""
    from storylab.images.data.datasets import load_split

    full = load_split(model.cfg.data, "test")
    data = type(full)(images=full.images[:limit], labels=full.labels[:limit])
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for t in t_values:
        tt = torch.full((len(data),), t, dtype=torch.long)
        noise = torch.randn(data.images.shape, generator=gen)
        logits = model(q_sample(data.images, tt, model.alpha_bar, noise), tt)
        out[t] = float((logits.argmax(-1) == data.labels).float().mean())
    return out


def train_classifier(out: str | Path, cfg: ClassifierConfig, train_config: TrainConfig, batch_size: int = 128,
                     resume: bool = True, extra: dict | None = None) -> tuple[NoisyDigitClassifier, dict]:
    """Train the noise-aware classifier with the shared loop; returns the model and its noisy accuracies."""
    from storylab.images.networks.denoiser import digits_loader

    out = Path(out)
    state_path = state_path_for(out)
    if not resume and state_path.exists():
        state_path.unlink()
    torch.manual_seed(train_config.seed)  # --seed fixes the initial weights too, not only the batches
    model = NoisyDigitClassifier(cfg)

    def save(raw: nn.Module, ema: nn.Module | None, step: int) -> None:
        save_classifier(out, ema if ema is not None else raw, {**(extra or {}), "step": step})

    result = train(model, lambda m, b: m.loss(b[0], b[1]), digits_loader(batch_size, train_config.seed, data=cfg.data),
                   train_config,
                   save_fn=save, state_path=state_path, description="train classifier")
    final = load_classifier(out)
    return final, {"seconds": result.losses.get("seconds", 0.0), "accuracy": noisy_accuracy(final)}
