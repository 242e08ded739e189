"""Transformer building blocks shared by DIRECTOR and its motion planner (Vaswani et al. 2017; DIRECTOR config C's
cross-attention block, Courant et al., ECCV 2024, Fig. 4).

``cfg`` is any object with DIRECTOR's width fields (``d_model``, ``n_heads``, ``mlp_ratio``, ``dropout``,
``attn_dropout``), in practice a :class:`storylab.camera.director.DirectorConfig`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

def sinusoidal(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sinusoidal embedding (Vaswani et al. 2017, Sec. 3.5) of (...,) positions -> (..., dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / half)
    angles = positions.float()[..., None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def self_attention_block(cfg) -> nn.TransformerEncoderLayer:
    """A pre-LN transformer block (self-attention + GELU MLP)."""
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.mlp_ratio * cfg.d_model, cfg.dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
    layer.self_attn.dropout = cfg.attn_dropout  # residual/MLP dropout stays cfg.dropout
    return layer


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """DiT's adaLN modulation x (1 + scale) + shift, per sample."""
    return x * (1 + scale[:, None]) + shift[:, None]


def attend(mha: nn.MultiheadAttention, query: torch.Tensor, memory: torch.Tensor,
           key_padding_mask: torch.Tensor | None) -> torch.Tensor:
    """``mha(query, memory, memory, key_padding_mask=..., need_weights=False)[0]`` (Vaswani et al. 2017, Eq. 1)
    on ``scaled_dot_product_attention`` with the module's own weights.

    The same attention, written out because the module's key-padding check calls ``torch._check_with``,
    whose first call imports sympy: about 0.5 s of ``camera generate``'s start-up (issue #20).
    ``key_padding_mask`` is (B, S) bool, True = padding; ``query`` (B, L, d), ``memory`` (B, S, d).
    """
    b, n_q, d = query.shape
    heads = mha.num_heads
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)

    def split(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, w, bias).view(b, x.shape[1], heads, d // heads).transpose(1, 2)  # (B, H, *, d/H)

    allowed = None if key_padding_mask is None else ~key_padding_mask.bool()[:, None, None, :]  # (B, 1, 1, S)
    out = nn.functional.scaled_dot_product_attention(split(query, w_q, b_q), split(memory, w_k, b_k),
                                                     split(memory, w_v, b_v), attn_mask=allowed,
                                                     dropout_p=mha.dropout if mha.training else 0.0)
    return mha.out_proj(out.transpose(1, 2).reshape(b, n_q, d))  # (B, L, d)


class CrossAttentionBlock(nn.Module):
    """DIRECTOR config C block: pre-LN cross-attention to the condition tokens, self-attention, MLP."""

    def __init__(self, cfg) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm_cross = nn.LayerNorm(d)
        self.cross = nn.MultiheadAttention(d, cfg.n_heads, dropout=cfg.attn_dropout, batch_first=True)
        self.norm_self = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, cfg.n_heads, dropout=cfg.attn_dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.mlp_ratio * d, d))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, pad: torch.Tensor | None,
                memory_pad: torch.Tensor | None) -> torch.Tensor:
        h = self.norm_cross(x)
        x = x + self.drop(attend(self.cross, h, memory, memory_pad))
        h = self.norm_self(x)
        x = x + self.drop(attend(self.attn, h, h, pad))
        return x + self.drop(self.mlp(self.norm_mlp(x)))
