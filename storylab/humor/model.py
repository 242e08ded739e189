"""FunnyNet-W: modality encoders, 512-d gated projections, Cross-Attention Fusion, classifier and loss.

Liu, Courant, Kalogeiton, "FunnyNet-W: Multimodal Learning of Funny Moments in Videos in the Wild",
IJCV 2024, Sec. 3.2-3.3. Each modality feature is projected to 512-d (gated GELU unit + LayerNorm) and
reshaped to 16 tokens x 32; the concatenation of all modalities' tokens queries each modality with
cross-attention, the results are summed, passed through self-attention with a residual, split back per
modality, flattened and summed, and a linear layer classifies funny / not funny. The loss is
cross-entropy plus lambda times the NT-Xent (SimCLR) loss of every pair of projected modalities.

``architecture="paper"`` follows the official code's layout instead (Holmes-Alan/FunnyNet-W,
``network.py``): each projection is two stacked gated GELU units (GELU(W1 x) * W2 x) and a LayerNorm;
the CAF queries are the L2-normalised concatenated features (16M x 32), each cross- and the
self-attention is single-head without the 1/sqrt(d) scaling and without a norm; the classifier is a
gated unit to 2 logits; the text branch runs an LSTM(256) over all 64 token states and flattens
every output (Dropout 0.5 before its projection). The default (``storylab``) uses one gated unit per
projection, 4-head scaled attention with a pre-norm, a linear classifier and the LSTM's last state.

One deviation by default: during training each clip loses each modality's projected feature with
probability ``modality_dropout`` = 0.5 before the fusion (ModDrop, Neverova et al., TPAMI 2016), which
made AVT at least as good as audio alone on the held-out split and on the pooled unseen episodes for
every seed measured (docs/humor.md); ``modality_dropout=0`` is the paper's model.
"""

from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from storylab.humor.config import FunnyNetConfig
from storylab.humor.encoders import ByolAudioEncoder, FrameCNN, TextLSTM, TransformersVideoEncoder, load_byol_a

class GatedProjection(nn.Module):
    """FunnyNet-W's projection: a gated GELU unit to ``dim`` followed by LayerNorm."""

    def __init__(self, in_dim: int, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, 2 * dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> (B, dim)."""
        value, gate = self.linear(x).chunk(2, dim=-1)
        return self.norm(self.dropout(value * F.gelu(gate)))


class GatedLinear(nn.Module):
    """The official code's gated unit: GELU(W1 x) * (W2 x) (FunnyNet-W, network.py ``linear``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.value = nn.Linear(in_dim, out_dim)
        self.gate = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        return F.gelu(self.value(x)) * self.gate(x)


class PaperProjection(nn.Sequential):
    """The official projection: two stacked gated units (in -> mid -> dim) and a LayerNorm, optional dropout first."""

    def __init__(self, in_dim: int, mid: int, dim: int, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        super().__init__(*layers, GatedLinear(in_dim, mid), GatedLinear(mid, dim), nn.LayerNorm(dim))


class UnscaledAttention(nn.Module):
    """The official single-head attention: softmax(Q K^T) V with no 1/sqrt(d) scaling (network.py ``CA_SA``)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """(B, Nq, w) queries attend over (B, Nk, w) -> (B, Nq, w)."""
        attn = torch.softmax(self.q(queries) @ self.k(keys).transpose(1, 2), dim=-1)  # (B, Nq, Nk)
        return attn @ self.v(keys)


class PaperFusion(nn.Module):
    """The official CAF: normalised concatenated features query each modality, summed, self-attention + residual."""

    def __init__(self, modalities: int, dim: int = 512, tokens: int = 16) -> None:
        super().__init__()
        self.tokens, self.width = tokens, dim // tokens
        self.cross = nn.ModuleList(UnscaledAttention(self.width) for _ in range(modalities))
        self.self_attn = UnscaledAttention(self.width)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """M features (B, dim) -> fused (B, dim)."""
        b = features[0].shape[0]
        joint = torch.cat([F.normalize(f, dim=1) for f in features], dim=1).view(b, -1, self.width)  # (B, 16M, 32)
        fused = sum(attn(joint, f.view(b, self.tokens, self.width)) for attn, f in zip(self.cross, features))
        fused = self.self_attn(fused, fused) + fused  # (B, 16M, 32)
        return sum(p.flatten(1) for p in fused.split(self.tokens, dim=1))  # (B, dim)


class CrossAttentionFusion(nn.Module):
    """Cross-Attention Fusion (FunnyNet-W, Sec. 3.3): concat queries each modality, sum, self-attention, split, sum."""

    def __init__(self, modalities: int, dim: int = 512, tokens: int = 16, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.tokens, self.width = tokens, dim // tokens
        self.cross = nn.ModuleList(nn.MultiheadAttention(self.width, heads, dropout=dropout, batch_first=True)
                                   for _ in range(modalities))
        self.self_attn = nn.MultiheadAttention(self.width, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(self.width)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """M features (B, dim) -> fused (B, dim)."""
        toks = [f.view(f.shape[0], self.tokens, self.width) for f in features]  # M x (B, 16, 32)
        joint = torch.cat(toks, dim=1)  # (B, 16M, 32)
        fused = sum(attn(joint, t, t, need_weights=False)[0] for attn, t in zip(self.cross, toks))  # (B, 16M, 32)
        h = self.norm(fused)
        fused = fused + self.self_attn(h, h, h, need_weights=False)[0]  # residual
        parts = fused.split(self.tokens, dim=1)  # M x (B, 16, 32)
        return sum(p.flatten(1) for p in parts)  # (B, dim)


class FunnyNet(nn.Module):
    """FunnyNet-W over any subset of audio (a), visual (v) and text (t)."""

    def __init__(self, config: FunnyNetConfig) -> None:
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        paper = config.architecture == "paper"
        for m in config.modalities:
            enc = self._encoder(m)
            self.encoders[m] = enc
            if paper:  # official widths: audio 2048 -> 1024 -> 512, visual and text -> 512 -> 512
                mid = 2 * config.dim if m == "a" else config.dim
                self.projections[m] = PaperProjection(enc.dim, mid, config.dim, 0.5 if m == "t" else 0.0)
            else:
                self.projections[m] = GatedProjection(enc.dim, config.dim, config.dropout)
        if paper:
            self.fusion = PaperFusion(len(config.modalities), config.dim, config.tokens)
            self.classifier = GatedLinear(config.dim, 2)
        else:
            self.fusion = CrossAttentionFusion(len(config.modalities), config.dim, config.tokens, config.heads, config.dropout)
            self.classifier = nn.Linear(config.dim, 2)
        # one linear head per modality on its projection, trained only through the auxiliary loss
        self.aux_heads = nn.ModuleDict({m: nn.Linear(config.dim, 2) for m in config.modalities}
                                       if config.aux_weight > 0 and len(config.modalities) > 1 else {})
        # log-mel mean and std of the training clips (BYOL-A normalises by dataset statistics)
        self.register_buffer("audio_stats", torch.tensor([0.0, 1.0]))

    def _encoder(self, m: str) -> nn.Module:
        c = self.config
        if m == "a":
            if c.audio_encoder:
                return load_byol_a(c.audio_encoder)
            return ByolAudioEncoder(c.n_mels, c.audio_dim, c.audio_channels, tail=c.tail)
        if m == "v":
            return TransformersVideoEncoder(c.video_encoder) if c.video_encoder else FrameCNN(c.frame_channels, tail=c.tail)
        if c.architecture == "paper":
            return TextLSTM(c.text_dim, 256, all_states=c.text_tokens)
        return TextLSTM(c.text_dim, c.lstm_hidden)

    def project(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Encode and project every modality: {m: (B, dim)}."""
        out = {}
        for m in self.config.modalities:
            if m == "a":
                mean, std = self.audio_stats[0], self.audio_stats[1]
                mel = (batch["audio"] - mean) / std  # (B, n_mels, T)
                if self.config.audio_pool > 1 and not self.config.audio_encoder:
                    mel = F.avg_pool1d(mel, self.config.audio_pool, ceil_mode=True)  # (B, n_mels, T / pool)
                feat = self.encoders[m](mel)
            elif m == "v":
                feat = self.encoders[m](batch["frames"])
            else:
                feat = self.encoders[m](batch["text"], batch["text_mask"])
            out[m] = self.projections[m](feat)
        return out

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits (B, 2) and the projected features (before any modality dropout)."""
        z = self.project(batch)
        feats = [z[m] for m in self.config.modalities]
        if self.training:
            feats = drop_modalities(feats, self.config.modality_dropout)
        return self.classifier(self.fusion(feats)), z


def drop_modalities(features: list[torch.Tensor], p: float, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Modality dropout (ModDrop: Neverova, Wolf, Taylor, Nebout, TPAMI 2016): zero each sample's whole
    feature of a modality with probability ``p``, always keeping at least one modality per sample.

    A fused network fitted on few clips co-adapts to whichever modality fits the training set fastest;
    training it also on partial inputs makes the fused classifier use every modality on its own. No
    rescaling (the fused features are summed tokens, not averaged units); at test time nothing is dropped.
    M features (B, dim) -> M features (B, dim).
    """
    if p <= 0 or len(features) < 2:
        return features
    b, m = features[0].shape[0], len(features)
    device = features[0].device
    keep = torch.rand(b, m, generator=generator, device=device) >= p  # (B, M)
    none = ~keep.any(dim=1)
    if none.any():  # a sample that lost everything keeps one modality drawn uniformly
        pick = torch.randint(m, (int(none.sum()),), generator=generator, device=device)
        keep[none.nonzero(as_tuple=True)[0], pick] = True
    return [f * keep[:, i, None].to(f.dtype) for i, f in enumerate(features)]


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent (SimCLR, Chen et al. 2020): the same clip's two views attract, all other 2B - 2 views repel."""
    z = F.normalize(torch.cat([a, b]), dim=-1)  # (2B, D)
    sim = z @ z.t() / temperature
    n = a.shape[0]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def funnynet_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy + lambda x sum over modality pairs of NT-Xent (FunnyNet-W, Eq. 3), plus
    ``aux_weight`` x the mean cross-entropy of one linear head per modality when that is set.

    The auxiliary term is Gradient-Blending's remedy with uniform weights (Wang, Tran, Feiszli, "What
    Makes Training Multi-Modal Classification Networks Hard?", CVPR 2020): a fused network fitted by
    its joint loss alone overfits the training clips by leaning on whichever modality fits them
    fastest; a loss per modality keeps every encoder discriminative on its own. Prediction uses the
    fused classifier only.
    """
    logits, z = model(batch)
    ce = F.cross_entropy(logits, batch["label"])
    core = model.module if hasattr(model, "module") else model
    cfg = core.config
    pairs = list(combinations(cfg.modalities, 2))
    contrast = sum((nt_xent(z[p], z[q], cfg.temperature) for p, q in pairs), torch.zeros((), device=logits.device))
    loss = ce + cfg.nt_xent_weight * contrast
    if len(core.aux_heads):
        aux = sum(F.cross_entropy(head(z[m]), batch["label"]) for m, head in core.aux_heads.items())
        loss = loss + cfg.aux_weight * aux / len(core.aux_heads)
    acc = (logits.argmax(-1) == batch["label"]).float().mean()
    return loss, {"ce": float(ce.detach()), "acc": float(acc)}
