"""A noise-aware digit classifier p_phi(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021, sec. 4).

It is trained on q_sample'd digits x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps with the timestep as
input, so that its gradient grad_x log p(y | x_t, t) is meaningful at every noise level the sampler
visits. Architecture: the digit UNet's timestep embedding and residual blocks, down-sampled
8 -> 4 -> 2, global average pooling and a linear head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from storylab.diffusion import alphas_cumprod, beta_schedule, q_sample
from storylab.errors import StorylabError
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


class NoisyDigitClassifier(nn.Module):
    """``forward(x_t, t) -> logits (B, num_classes)``."""

    def __init__(self, cfg: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ClassifierConfig()
        c, e = cfg.channels, cfg.emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(c, e), nn.SiLU(), nn.Linear(e, e))
        self.conv_in = nn.Conv2d(1, c, 3, padding=1)
        self.block1 = ResBlock(c, c, e, cfg.groups)
        self.down1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.block2 = ResBlock(2 * c, 2 * c, e, cfg.groups)
        self.down2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
        self.block3 = ResBlock(2 * c, 2 * c, e, cfg.groups)
        self.norm = nn.GroupNorm(cfg.groups, 2 * c)
        self.head = nn.Linear(2 * c, cfg.num_classes)
        self.register_buffer("alpha_bar", alphas_cumprod(beta_schedule(cfg.beta_schedule, cfg.num_timesteps)).float(),
                             persistent=False)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.cfg.channels))
        h = self.block1(self.conv_in(x), emb)  # (B, C, S, S), S = 8 (digits) or 28
        h = self.block2(self.down1(h), emb)  # (B, 2C, S/2, S/2)
        h = self.block3(self.down2(h), emb)  # (B, 2C, S/4, S/4)
        return self.head(F.silu(self.norm(h)).mean(dim=(2, 3)))

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy on q_sample'd inputs at uniformly drawn timesteps."""
        t = torch.randint(0, self.alpha_bar.shape[0], (images.shape[0],), device=images.device)
        logits = self(q_sample(images, t, self.alpha_bar), t)
        acc = (logits.argmax(-1) == labels).float().mean()
        return F.cross_entropy(logits, labels), {"acc": float(acc)}


def save_classifier(path: str | Path, model: NoisyDigitClassifier, extra: dict | None = None) -> Path:
    return save_checkpoint(path, model.state_dict(), KIND, asdict(model.cfg), extra)


def load_classifier(path: str | Path, num_classes: int | None = None) -> NoisyDigitClassifier:
    """Load a ``digits-noisy-classifier`` checkpoint, checking the class count."""
    ckpt = load_checkpoint(path, KIND)
    cfg = ClassifierConfig(**{k: v for k, v in ckpt.config.items() if k in ClassifierConfig.__dataclass_fields__})
    if num_classes is not None and cfg.num_classes != num_classes:
        raise StorylabError(f"{path} classifies {cfg.num_classes} classes, but the denoiser has {num_classes}")
    model = NoisyDigitClassifier(cfg)
    model.load_state_dict(ckpt.state_dict)
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
