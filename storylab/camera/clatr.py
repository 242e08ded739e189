"""A CLaTr-like joint text/trajectory embedding (Courant et al., ECCV 2024, Sec. 5.1 "CLaTr").

A TEMOS-style VAE (Petrovich et al. 2022): a trajectory encoder (transformer over the 9-D DIRECTOR
features with two learned distribution tokens) and a text encoder (MLP on the frozen sentence
embedding) each give a Gaussian N(mu, sigma^2) in a shared latent space (256-D in the paper); one
decoder reconstructs the trajectory from either latent. Loss: reconstruction (from both latents) +
KL to N(0, I) + InfoNCE between the two mu's (temperature 0.1). Embeddings for the metrics are, as in
the authors' evaluation, a draw z = mu + eps * sigma from each latent (``sample=False``: the mean mu,
storylab's earlier choice, less noisy); draws come from a seeded generator so a run is repeatable.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from storylab.camera.constants import MAX_FRAMES
from storylab.camera.director import sinusoidal
from storylab.errors import StorylabError

CHECKPOINT_KIND = "clatr"


@dataclass
class ClatrConfig:
    """CLaTr size (tiny default; ``paper``: d 256, latent 256, 4 layers)."""

    d_model: int = 64
    latent: int = 32
    n_layers: int = 2
    n_heads: int = 4
    text_dim: int = 384
    max_frames: int = MAX_FRAMES
    temperature: float = 0.1
    kl_weight: float = 1e-5
    nce_weight: float = 0.1

    @classmethod
    def build(cls, size: str = "tiny", **overrides) -> "ClatrConfig":
        sizes = {"tiny": {}, "paper": dict(d_model=256, latent=256, n_layers=4, n_heads=4)}
        if size not in sizes:
            raise StorylabError(f"unknown size '{size}' (choose from {', '.join(sizes)})")
        return cls(**{**sizes[size], **overrides})


def _encoder(cfg: ClatrConfig) -> nn.TransformerEncoder:
    """Pre-LN transformer; dropout 0.1 on residuals and MLP, none on the attention probabilities (a
    Bernoulli draw per entry of each T x T map is ~40 % of a CPU step at 300 frames)."""
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, 4 * cfg.d_model, 0.1, activation="gelu",
                                       batch_first=True, norm_first=True)
    layer.self_attn.dropout = 0.0
    return nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)


class Clatr(nn.Module):
    """Trajectory and text encoders into one Gaussian latent, and a trajectory decoder."""

    def __init__(self, cfg: ClatrConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.register_buffer("positions", sinusoidal(torch.arange(cfg.max_frames), d), persistent=False)
        self.traj_in = nn.Linear(9, d)
        self.dist_tokens = nn.Parameter(torch.randn(2, d) * 0.02)
        self.traj_encoder = _encoder(cfg)
        self.traj_out = nn.Linear(d, cfg.latent)
        self.text_mlp = nn.Sequential(nn.Linear(cfg.text_dim, 2 * d), nn.GELU(), nn.Linear(2 * d, 2 * cfg.latent))
        self.latent_in = nn.Linear(cfg.latent, d)
        self.decoder = _encoder(cfg)
        self.dec_out = nn.Linear(d, 9)

    def encode_trajectory(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 9), (B, T) -> mu, logvar (B, latent)."""
        b, t, _ = x.shape
        h = torch.cat([self.dist_tokens.expand(b, -1, -1), self.traj_in(x) + self.positions[:t]], dim=1)
        pad = torch.cat([mask.new_zeros(b, 2), ~mask], dim=1)
        h = self.traj_encoder(h, src_key_padding_mask=pad)
        return self.traj_out(h[:, 0]), self.traj_out(h[:, 1])

    def encode_text(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Dt) pooled sentence embeddings -> mu, logvar (B, latent)."""
        mu, logvar = self.text_mlp(text).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, latent), (B, T) -> (B, T, 9) trajectory features."""
        t = mask.shape[1]
        h = self.latent_in(z)[:, None] + self.positions[:t]
        return self.dec_out(self.decoder(h, src_key_padding_mask=~mask))

    def loss(self, x: torch.Tensor, mask: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction (from both latents) + KL + InfoNCE (temperature ``cfg.temperature``)."""
        mu_x, lv_x = self.encode_trajectory(x, mask)
        mu_t, lv_t = self.encode_text(text)
        m = mask[..., None].float()
        rec = 0.0
        for mu, lv in ((mu_x, lv_x), (mu_t, lv_t)):
            z = mu + torch.randn_like(mu) * (0.5 * lv).exp()
            rec = rec + (F.smooth_l1_loss(self.decode(z, mask), x, reduction="none") * m).sum() / (m.sum() * 9)
        kl = sum((-0.5 * (1 + lv - mu ** 2 - lv.exp()).sum(1)).mean() for mu, lv in ((mu_x, lv_x), (mu_t, lv_t)))
        logits = F.normalize(mu_x, dim=-1) @ F.normalize(mu_t, dim=-1).T / self.cfg.temperature
        target = torch.arange(len(x))
        nce = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        total = rec + self.cfg.kl_weight * kl + self.cfg.nce_weight * nce
        return total, {"rec": float(rec.detach()), "kl": float(kl.detach()), "nce": float(nce.detach())}


def save_clatr(path: str | os.PathLike, model: Clatr, extra: dict | None = None) -> Path:
    from storylab.training import save_checkpoint
    return save_checkpoint(path, model.state_dict(), CHECKPOINT_KIND, asdict(model.cfg), extra)


def load_clatr(path: str | os.PathLike) -> Clatr:
    from storylab.training import load_checkpoint
    ckpt = load_checkpoint(path, kind=CHECKPOINT_KIND)
    model = Clatr(ClatrConfig(**ckpt.config))
    model.load_state_dict(ckpt.state_dict)
    return model.eval()


def draw_latent(mu: torch.Tensor, logvar: torch.Tensor, sample: bool, generator: torch.Generator | None) -> torch.Tensor:
    """mu + eps * exp(logvar / 2) with eps ~ N(0, I) from ``generator`` (CLaTr's embedding), or mu."""
    if not sample:
        return mu
    eps = torch.randn(mu.shape, generator=generator)
    return mu + eps * (0.5 * logvar).exp()


@torch.no_grad()
def embed_trajectories(model: Clatr, features: list, batch_size: int = 128, sample: bool = True,
                       seed: int = 0) -> torch.Tensor:
    """CLaTr embeddings of a list of (n_i, 9) feature arrays: a latent draw (default) or its mean."""
    import numpy as np

    from storylab.camera.features import pad_features

    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(features), batch_size):
        part = [pad_features(f, model.cfg.max_frames) for f in features[i:i + batch_size]]
        x = torch.from_numpy(np.stack([p[0] for p in part]))
        mask = torch.from_numpy(np.stack([p[1] for p in part]))
        t = int(mask.sum(1).max())
        out.append(draw_latent(*model.encode_trajectory(x[:, :t], mask[:, :t]), sample, gen))
    return torch.cat(out)


@torch.no_grad()
def embed_texts(model: Clatr, text: torch.Tensor, sample: bool = True, seed: int = 0) -> torch.Tensor:
    """CLaTr embeddings of pooled sentence embeddings: a latent draw (default) or its mean."""
    return draw_latent(*model.encode_text(text.float()), sample, torch.Generator().manual_seed(seed))


def train_clatr(data, cfg: ClatrConfig, steps: int, out: str | os.PathLike, batch_size: int = 64, lr: float = 1e-3,
                seed: int = 0, progress: bool = True, extra: dict | None = None, resume: bool = True) -> Clatr:
    """Train CLaTr on a :class:`~storylab.camera.data.DirectorData` split with the foundation's loop.

    A resume state beside ``out`` is checked by the loop (a foreign or planted one is refused) and
    continued; ``resume=False`` deletes it first."""
    from storylab.training import TrainConfig, state_path_for, train

    from storylab.camera.data import LengthBucketBatchSampler

    torch.manual_seed(seed)
    model = Clatr(cfg)
    # batches of similar length: cheaper, and InfoNCE cannot separate pairs by length alone
    sampler = LengthBucketBatchSampler(data.mask.sum(1), batch_size, seed=seed, drop_last=len(data) > batch_size)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.x, data.mask, data.text),
                                         batch_sampler=sampler)

    def loss_fn(m: Clatr, batch) -> tuple[torch.Tensor, dict[str, float]]:
        x, mask, text = batch
        t = int(mask.sum(1).max())
        return m.loss(x[:, :t], mask[:, :t], text.float())

    def save_fn(m: Clatr, ema, step: int) -> None:
        save_clatr(out, ema if ema is not None else m, {**(extra or {}), "step": step})

    state_path = state_path_for(out)
    if not resume and state_path.exists():
        state_path.unlink()
    train(model, loss_fn, loader, TrainConfig(steps=steps, lr=lr, warmup_steps=50, ema_decay=0.99, seed=seed,
                                              checkpoint_every=0, log_every=25, progress=progress),
          save_fn=save_fn, state_path=state_path, description="CLaTr")
    return load_clatr(out)
