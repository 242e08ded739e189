"""The VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning") with an autoregressive prior.

The encoder maps a digit to a 4x4 grid of D-dimensional vectors z_e(x); each is replaced by its
nearest codebook entry e_k (eq. 1-2), and the decoder reconstructs from the quantised grid z_q(x).
The loss is eq. 3 of the paper::

    L = ||x - D(z_q(x))||^2 + ||sg[z_e(x)] - e||^2 + beta_c * ||z_e(x) - sg[e]||^2

(reconstruction, codebook, commitment; beta_c = 0.25 as in the paper). The nearest-neighbour
lookup has no gradient, so the decoder's gradient is copied to the encoder with the
straight-through estimator z_q = z_e + sg[z_q - z_e] (section 3.2).

Codebook health is measured, not assumed: :func:`codebook_usage` gives the fraction of codes used
on a data set and the perplexity exp(H(p(k))) of their frequencies. Codes that no encoder output
selected for ``restart_after`` training steps are *dead*; they are restarted on a random encoder
output of the current batch (the restart heuristic of Dhariwal et al. 2020, Jukebox, section 2.5),
which keeps usage high without changing the objective.

Sampling: a VQ-VAE has no usable prior of its own (the paper fixes a uniform prior during
training). Like the paper (which uses a PixelCNN), we fit an *autoregressive* prior over the 16
codes of a digit in raster order after the VQ-VAE is trained: a small causal Transformer
(:class:`CodePrior`, 2 layers, width 64), and decode the codes it draws. It is stored in the same
checkpoint.

Why not diffusers' ``VQModel``: its quantiser implements the same eq. 3 but without dead-code
restarts or usage statistics, and its encoder/decoder are built for large images; the explicit
quantiser below is the lecture's algorithm in 40 lines and shares the AE's conv networks.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from storylab.errors import StorylabError
from storylab.images.zoo.common import ZooModel, check_positive, fit, tensor_loader
from storylab.images.zoo.nets import GRID, ConvDecoder, ConvEncoder
from storylab.training import TrainConfig


@dataclass
class VQVAEConfig:
    """VQ-VAE and prior sizes (defaults: the CLI's)."""

    codebook_size: int = 64
    code_dim: int = 8
    width: int = 16
    commitment: float = 0.25
    restart_after: int = 100
    prior_width: int = 64
    prior_layers: int = 2
    prior_heads: int = 4

    def __post_init__(self) -> None:
        if not (int(self.codebook_size) == self.codebook_size and self.codebook_size >= 2):
            raise StorylabError(f"codebook size must be an integer >= 2, got {self.codebook_size}")
        for name in ("code_dim", "width", "prior_width", "prior_layers", "prior_heads"):
            check_positive(getattr(self, name), name.replace("_", " "))
        if not (math.isfinite(self.commitment) and self.commitment >= 0):
            raise StorylabError(f"commitment weight must be a finite number >= 0, got {self.commitment}")
        if self.restart_after < 0:
            raise StorylabError(f"restart_after must be >= 0 (0 = no dead-code restarts), got {self.restart_after}")
        if self.prior_width % self.prior_heads:
            raise StorylabError(f"prior width {self.prior_width} must be divisible by its {self.prior_heads} heads")


def codebook_usage(codes: torch.Tensor, codebook_size: int) -> tuple[float, float]:
    """(fraction of the ``codebook_size`` codes that occur in ``codes``, perplexity exp(-sum p log p))."""
    counts = torch.bincount(codes.reshape(-1).long(), minlength=codebook_size).double()
    p = counts / counts.sum().clamp_min(1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return float((counts > 0).double().mean()), float(entropy.exp())


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook lookup with the straight-through estimator and dead-code restarts."""

    def __init__(self, codebook_size: int, code_dim: int, commitment: float = 0.25, restart_after: int = 100) -> None:
        super().__init__()
        self.codebook = nn.Embedding(codebook_size, code_dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        self.commitment, self.restart_after = commitment, restart_after
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))

    @property
    def codebook_size(self) -> int:
        return self.codebook.weight.shape[0]

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code ``(N,)`` for vectors ``(N, D)`` (squared Euclidean distance, eq. 1)."""
        e = self.codebook.weight
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None, :]  # (N, K)
        return dist.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, H, W)`` -> quantised grid ``(B, D, H, W)``."""
        return self.codebook(codes).permute(0, 3, 1, 2)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """z_e ``(B, D, H, W)`` -> (z_q with straight-through gradient, codes ``(B, H, W)``, codebook loss, commitment loss)."""
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B*H*W, D)
        codes = self.nearest(flat.detach())
        z_q = self.lookup(codes.reshape(b, h, w))  # (B, D, H, W)
        codebook_loss = torch.mean((z_q - z_e.detach()) ** 2)  # ||sg[z_e] - e||^2 moves the codes
        commitment_loss = torch.mean((z_e - z_q.detach()) ** 2)  # ||z_e - sg[e]||^2 holds the encoder
        if self.training and self.restart_after:
            self._restart_dead_codes(codes, flat.detach())
        z_st = z_e + (z_q - z_e).detach()  # straight-through: forward = z_q, gradient d/dz_q copied to z_e
        return z_st, codes.reshape(b, h, w), codebook_loss, commitment_loss

    @torch.no_grad()
    def _restart_dead_codes(self, codes: torch.Tensor, flat: torch.Tensor) -> None:
        """Count steps since each code was chosen; move codes dead for ``restart_after`` steps onto batch vectors."""
        used = torch.bincount(codes, minlength=self.codebook_size) > 0
        self.unused_steps += 1
        self.unused_steps[used] = 0
        dead = (self.unused_steps >= self.restart_after).nonzero().flatten()
        if dead.numel():
            pick = torch.randint(0, flat.shape[0], (dead.numel(),), device=flat.device)
            self.codebook.weight.data[dead] = flat[pick]
            self.unused_steps[dead] = 0
            self.restarts += dead.numel()


class CodePrior(nn.Module):
    """Autoregressive prior p(k_1..k_L) = prod_i p(k_i | k_<i) over a digit's codes: a causal Transformer."""

    def __init__(self, codebook_size: int, length: int, width: int = 64, layers: int = 2, heads: int = 4,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.codebook_size, self.length = codebook_size, length
        self.token = nn.Embedding(codebook_size + 1, width)  # index K = start token
        self.position = nn.Parameter(torch.randn(length, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=dropout, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, codebook_size)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(length), persistent=False)

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, L)`` -> logits ``(B, L, K)`` of p(k_i | k_<i) (inputs shifted right behind the start token)."""
        b, n = codes.shape
        start = torch.full((b, 1), self.codebook_size, dtype=torch.long, device=codes.device)
        tokens = torch.cat([start, codes[:, :-1]], dim=1)  # (B, L)
        h = self.token(tokens) + self.position[:n]
        h = self.blocks(h, mask=self.mask[:n, :n], is_causal=True)
        return self.head(self.norm(h))

    def nll(self, codes: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per code (nats)."""
        logits = self.logits(codes)
        return nn.functional.cross_entropy(logits.reshape(-1, self.codebook_size), codes.reshape(-1))

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """Draw ``n`` code sequences ``(n, L)`` one code at a time (ancestral sampling)."""
        codes = torch.zeros((n, 0), dtype=torch.long)
        for i in range(self.length):
            padded = torch.cat([codes, torch.zeros((n, 1), dtype=torch.long)], dim=1)
            logits = self.logits(padded)[:, i] / temperature  # (n, K)
            nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            codes = torch.cat([codes, nxt], dim=1)
        return codes


class VQVAE(ZooModel):
    """Conv encoder -> 4x4 grid of ``code_dim`` vectors -> codebook -> conv decoder (tanh output)."""

    family = "vqvae"
    config_cls = VQVAEConfig

    def __init__(self, config: VQVAEConfig | None = None) -> None:
        super().__init__(config or VQVAEConfig())
        c = self.config
        self.encoder = ConvEncoder(1, c.width, c.code_dim, grid=True)
        self.quantizer = VectorQuantizer(c.codebook_size, c.code_dim, c.commitment, c.restart_after)
        self.decoder = ConvDecoder(c.code_dim, c.width, grid=True)
        self.prior = CodePrior(c.codebook_size, GRID * GRID, c.prior_width, c.prior_layers, c.prior_heads)

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """Everything but the prior (trained in stage 1)."""
        return [p for name, p in self.named_parameters() if not name.startswith("prior.")]

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The continuous encoder output z_e ``(B, D, 4, 4)`` (interpolation happens *before* quantisation)."""
        return self.encoder(images)

    def codes(self, images: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, 4, 4)`` of ``images``."""
        return self.quantizer(self.encoder(images))[1]

    def decode(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Quantise z_e and decode it to [-1, 1]."""
        return torch.tanh(self.decoder(self.quantizer(latent)[0]))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, 4, 4)`` -> images ``(B, 1, 8, 8)``."""
        return torch.tanh(self.decoder(self.quantizer.lookup(codes)))

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 3: reconstruction MSE + codebook loss + commitment * commitment loss."""
        z_q, codes, codebook_loss, commitment_loss = self.quantizer(self.encoder(images))
        rec = torch.mean((torch.tanh(self.decoder(z_q)) - images) ** 2)
        usage, perplexity = codebook_usage(codes, self.quantizer.codebook_size)
        loss = rec + codebook_loss + self.config.commitment * commitment_loss
        return loss, {"rec": float(rec.detach()), "commit": float(commitment_loss.detach()), "ppl": perplexity,
                      "usage": usage}

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes drawn from the autoregressive prior, decoded; one sample per entry of ``labels`` (ignored)."""
        codes = self.prior.generate(labels.shape[0], generator).reshape(-1, GRID, GRID)
        return self.decode_codes(codes)


@torch.no_grad()
def dataset_codes(model: VQVAE, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Code indices ``(N, 4, 4)`` of ``images`` in eval mode (no restarts)."""
    model.eval()
    return torch.cat([model.codes(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)])


def train_vqvae(out: str | Path, config: VQVAEConfig, train_config: TrainConfig, batch_size: int = 128,
                resume: bool = True, extra: dict[str, Any] | None = None,
                prior_config: TrainConfig | None = None, prior_batch_size: int | None = None) -> dict[str, Any]:
    """Stage 1: the VQ-VAE (eq. 3) with the shared loop; stage 2: the code prior on the train codes.

    Each stage has its own resume state (``<out>.state.safetensors``, ``<out>.prior.state.safetensors``); the
    checkpoint after stage 2 holds both. Returns timing, losses and the final codebook usage.
    """
    from storylab.images.data.digits import load_digits_split

    out = Path(out)
    torch.manual_seed(train_config.seed)  # the initial weights are part of what the seed reproduces
    model = VQVAE(config)
    info = fit(model, out, train_config, batch_size, resume, extra, parameters=model.autoencoder_parameters())
    trained: VQVAE = info["model"]
    images = load_digits_split("train").images
    codes = dataset_codes(trained, images).reshape(images.shape[0], -1)  # (N, 16)
    info["usage"], info["perplexity"] = codebook_usage(codes, config.codebook_size)
    prior_tc = prior_config or train_config
    prior_state = out.with_name(out.stem + ".prior.state.safetensors")

    def with_prior(prior: nn.Module) -> VQVAE:
        trained.prior.load_state_dict(prior.state_dict())
        return trained

    # a copy trains, so that saving (which loads the EMA weights into ``trained``) never touches it
    prior_batch = prior_batch_size or batch_size
    stage2 = fit(copy.deepcopy(trained.prior), out, prior_tc, prior_batch, resume, {**(extra or {}), "usage": info["usage"],
                                                                      "perplexity": info["perplexity"]},
                 loss_fn=lambda prior, batch: prior.nll(batch[0]), loader=tensor_loader((codes,), prior_batch, prior_tc.seed),
                 state_path=prior_state, description="train vqvae prior", save_model=with_prior)
    info["prior_seconds"], info["prior_nll"] = stage2["seconds"], stage2["loss"]
    info["seconds"] += stage2["seconds"]
    info["model"] = stage2["model"]
    return info
