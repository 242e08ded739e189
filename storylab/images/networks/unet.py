"""A small class-conditional UNet for 8x8 digits, built so that ControlNet can attach to it.

Written by hand rather than taken from diffusers' ``UNet2DModel`` for two reasons: (1) ControlNet
needs the encoder's skip features and a way to add residuals to the decoder's skips and to the
middle block, which ``UNet2DModel.forward`` does not expose (only ``UNet2DConditionModel`` does,
and its cross-attention text path is dead weight for class labels); (2) at 8x8 resolution a
three-level UNet with 64 channels trains to the issue's quality in minutes on 2 CPU cores.

Layout (DDPM's UNet, Ho et al. 2020, at a smaller size): sinusoidal timestep embedding + class
embedding (index ``num_classes`` is the null class for classifier-free guidance), conv_in, two
down-sampling levels of residual blocks (8 -> 4 -> 2), a middle block with self-attention, and a
mirrored decoder that concatenates the encoder's skips. ``channels`` and ``blocks`` scale it up.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterator

import torch
from torch import nn
import torch.nn.functional as F

from storylab.errors import StorylabError


@dataclass
class UNetConfig:
    """Size of the digit UNet; the defaults are the shipped model's."""

    in_channels: int = 1
    channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2)
    emb_dim: int = 128
    num_classes: int = 10
    groups: int = 8
    dropout: float = 0.0
    time_dim: int = 0  # width of the sinusoidal timestep embedding; 0 = ``channels`` (the first models' choice)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "UNetConfig":
        data = dict(data)
        data["channel_mult"] = tuple(data.get("channel_mult", (1, 2, 2)))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps ``(B,)`` -> ``(B, dim)`` (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv residual block with an additive embedding projection (DDPM's block)."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return h + self.skip(x)


def gaussian_blur_queries(q: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur a query map (B, C, h, w) with a Gaussian of ``sigma`` (SEG, Hong 2024, eq. 8); inf = its spatial mean.

    Kernel size ceil(6 sigma) + 1 made odd and clipped to the largest odd size the map allows, reflect padding.
    """
    if math.isinf(sigma):
        return q.mean(dim=(-2, -1), keepdim=True).expand_as(q)
    side = min(q.shape[-2:])
    size = min(math.ceil(6 * sigma) + 1 - math.ceil(6 * sigma) % 2, side - (side % 2 - 1))
    half = (size - 1) / 2
    x = torch.linspace(-half, half, size, dtype=q.dtype, device=q.device)
    k1 = torch.exp(-0.5 * (x / sigma) ** 2)
    k1 = k1 / k1.sum()
    kernel = (k1[:, None] * k1[None, :]).expand(q.shape[1], 1, size, size)
    pad = size // 2
    return F.conv2d(F.pad(q, (pad, pad, pad, pad), mode="reflect"), kernel, groups=q.shape[1])


class SelfAttention(nn.Module):
    """Single-head self-attention over spatial positions with a residual connection.

    ``perturbation`` (set by :func:`perturbed_attention` for perturbation guidance, ``None`` otherwise):
    ``identity`` replaces the attention map by the identity, so the output is the values (PAG, Ahn et
    al. 2024, eq. 8); ``blur`` blurs the queries by a Gaussian of ``blur_sigma`` (SEG, Hong 2024);
    ``skip`` skips the layer (its residual only: skip-layer guidance).
    """

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        self.perturbation: str | None = None
        self.blur_sigma = math.inf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.perturbation == "skip":
            return x
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)  # each (B, C, HW)
        if self.perturbation == "identity":
            out = v.transpose(1, 2)  # (B, HW, C): the identity attention map picks each position's own value
        else:
            if self.perturbation == "blur":
                q = gaussian_blur_queries(q.reshape(b, c, h, w), self.blur_sigma).reshape(b, c, h * w)
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (B, HW, C)
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


@contextmanager
def perturbed_attention(module: nn.Module, perturbation: str, blur_sigma: float = math.inf) -> Iterator[None]:
    """Apply ``perturbation`` (identity, blur or skip) to every :class:`SelfAttention` of ``module`` inside the block."""
    layers = [m for m in module.modules() if isinstance(m, SelfAttention)]
    if not layers:
        raise StorylabError("this network has no self-attention layer to perturb")
    saved = [(m.perturbation, m.blur_sigma) for m in layers]
    for m in layers:
        m.perturbation, m.blur_sigma = perturbation, blur_sigma
    try:
        yield
    finally:
        for m, (kind, sigma) in zip(layers, saved):
            m.perturbation, m.blur_sigma = kind, sigma


class Encoder(nn.Module):
    """Embeddings, conv_in, down-sampling levels and the middle block: the part ControlNet copies."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        c, e = cfg.channels, cfg.emb_dim
        self.cfg = cfg
        self.time_dim = cfg.time_dim or c
        self.time_mlp = nn.Sequential(nn.Linear(self.time_dim, e), nn.SiLU(), nn.Linear(e, e))
        self.class_emb = nn.Embedding(cfg.num_classes + 1, e)
        self.conv_in = nn.Conv2d(cfg.in_channels, c, 3, padding=1)
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        self.skip_channels = [c]
        cin = c
        for level, mult in enumerate(cfg.channel_mult):
            cout = c * mult
            self.blocks.append(ResBlock(cin, cout, e, cfg.groups, cfg.dropout))
            self.skip_channels.append(cout)
            cin = cout
            if level < len(cfg.channel_mult) - 1:
                self.downs.append(nn.Conv2d(cin, cin, 3, stride=2, padding=1))
                self.skip_channels.append(cin)
        self.mid1 = ResBlock(cin, cin, e, cfg.groups, cfg.dropout)
        self.mid_attn = SelfAttention(cin, cfg.groups)
        self.mid2 = ResBlock(cin, cin, e, cfg.groups, cfg.dropout)
        self.mid_channels = cin

    def embed(self, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Timestep + class embedding ``(B, emb_dim)``; label ``num_classes`` is the null class."""
        return self.time_mlp(timestep_embedding(t, self.time_dim)) + self.class_emb(labels)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, hint: torch.Tensor | None = None
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Return the skip features (one per encoder output) and the middle block's output."""
        h = self.conv_in(x)  # (B, C, 8, 8)
        if hint is not None:
            h = h + hint
        skips = [h]
        for level, block in enumerate(self.blocks):
            h = block(h, emb)
            skips.append(h)
            if level < len(self.downs):
                h = self.downs[level](h)  # halve the resolution
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        return skips, h


class Decoder(nn.Module):
    """Mirrored up-sampling path that consumes the encoder's skips (concatenation)."""

    def __init__(self, cfg: UNetConfig, skip_channels: list[int], mid_channels: int) -> None:
        super().__init__()
        c, e = cfg.channels, cfg.emb_dim
        self.blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        cin = mid_channels
        skips = list(skip_channels)
        levels = len(cfg.channel_mult)
        self.plan: list[str] = []
        for level in reversed(range(levels)):
            cout = c * cfg.channel_mult[level]
            n_skips = 2 if level > 0 else 2  # block output + (down output | conv_in output)
            for _ in range(n_skips):
                self.blocks.append(ResBlock(cin + skips.pop(), cout, e, cfg.groups, cfg.dropout))
                self.plan.append("block")
                cin = cout
            if level > 0:
                self.ups.append(nn.Conv2d(cin, cin, 3, padding=1))
                self.plan.append("up")
        self.norm_out = nn.GroupNorm(cfg.groups, cin)
        self.conv_out = nn.Conv2d(cin, cfg.in_channels, 3, padding=1)

    def forward(self, h: torch.Tensor, skips: list[torch.Tensor], emb: torch.Tensor) -> torch.Tensor:
        skips = list(skips)
        blocks, ups = iter(self.blocks), iter(self.ups)
        for op in self.plan:
            if op == "block":
                h = next(blocks)(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = next(ups)(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class DigitUNet(nn.Module):
    """Class-conditional eps-prediction UNet: ``forward(x, t, labels, down_residuals, mid_residual)``.

    ``down_residuals`` / ``mid_residual`` are ControlNet's outputs, added to the skips and to the
    middle block's output before the decoder (Zhang et al. 2023, Fig. 3).
    """

    def __init__(self, cfg: UNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or UNetConfig()
        self.encoder = Encoder(self.cfg)
        self.decoder = Decoder(self.cfg, self.encoder.skip_channels, self.encoder.mid_channels)

    @property
    def null_class(self) -> int:
        """The label index that means "no class" (classifier-free guidance's null condition)."""
        return self.cfg.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                down_residuals: list[torch.Tensor] | None = None, mid_residual: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.encoder.embed(t, labels)
        skips, h = self.encoder(x, emb)
        if down_residuals is not None:
            skips = [s + r for s, r in zip(skips, down_residuals, strict=True)]
        if mid_residual is not None:
            h = h + mid_residual
        return self.decoder(h, skips, emb)
