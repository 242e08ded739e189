"""The variational autoencoder (Kingma & Welling 2014) with a beta-weighted ELBO (Higgins et al. 2017).

Encoder q_phi(z | x) = N(mu(x), diag sigma^2(x)), prior p(z) = N(0, I), decoder p_theta(x | z) a
Bernoulli per pixel on the grey level in [0, 1] (the paper's MNIST likelihood, Appendix C.1). The
loss is the lecture's negative ELBO with a weight on the KL term::

    L_VAE = -E_{z ~ q_phi(z|x)} log p_theta(x | z) + beta * KL(q_phi(z | x) || p(z))

with z = mu + sigma * eps, eps ~ N(0, I) (the reparameterisation trick, eq. 10) and the closed-form
Gaussian KL 0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2) (Appendix B). Both terms are summed over
pixels / latent dimensions and averaged over the batch, so ``beta = 1`` is the true ELBO.

What the table and grids show: samples are new and the latent space interpolates smoothly, but
they are blurry (the decoder returns the mean of p(x|z), averaging digits that share a code), and
with a large beta the KL term wins and latent dimensions collapse to the prior
(:func:`active_units`, Burda et al. 2016, counts the survivors). The conditional VAE of
:mod:`storylab.images.zoo.cvae` is this class with ``num_classes > 0``.

Why not diffusers' ``AutoencoderKL``: it is a 2-D latent-grid VAE with GroupNorm ResNet blocks
built for 256-pixel images and a learned perceptual/GAN loss outside the class; at 8x8 it would
hide the lecture's objective behind configuration, and it has no class conditioning (the CVAE).
The same small encoder/decoder as the AE keeps the comparison about the objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from storylab.errors import StorylabError
from storylab.images.data.digits import to_unit
from storylab.images.zoo.common import ZooModel, check_positive, fit
from storylab.images.zoo.nets import ConvDecoder, ConvEncoder, label_maps, one_hot
from storylab.training import TrainConfig


def check_beta(beta: float) -> None:
    """The KL weight must be a finite number >= 0 (0 turns the VAE into a noisy autoencoder)."""
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
        raise StorylabError(f"beta must be a finite number >= 0, got {beta}")


@dataclass
class VAEConfig:
    """VAE size and KL weight; ``num_classes > 0`` makes it the conditional VAE."""

    latent_dim: int = 8
    width: int = 16
    hidden: int = 128
    beta: float = 1.0
    num_classes: int = 0

    def __post_init__(self) -> None:
        for name in ("latent_dim", "width", "hidden"):
            check_positive(getattr(self, name), name.replace("_", " "))
        check_beta(self.beta)
        if self.num_classes < 0:
            raise StorylabError(f"num_classes must be >= 0, got {self.num_classes}")


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample ``(B,)`` (Kingma & Welling 2014, Appendix B)."""
    return 0.5 * torch.sum(mu ** 2 + logvar.exp() - 1.0 - logvar, dim=1)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): a sample of q(z|x) differentiable in mu and sigma (eq. 10)."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + (0.5 * logvar).exp() * eps


def bernoulli_nll(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) per sample ``(B,)``: Bernoulli cross-entropy of grey levels in [0, 1], summed over pixels."""
    target = to_unit(images)
    nll = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return nll.flatten(1).sum(1)


class VAE(ZooModel):
    """Gaussian encoder q(z | x[, c]) and Bernoulli decoder p(x | z[, c]) around the shared conv nets."""

    family = "vae"
    config_cls = VAEConfig

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__(config or self.config_cls())
        c = self.config
        self.encoder = ConvEncoder(1 + c.num_classes, c.width, 2 * c.latent_dim, hidden=c.hidden)  # -> (mu, logvar)
        self.decoder = ConvDecoder(c.latent_dim + c.num_classes, c.width, hidden=c.hidden)

    # conditioning: the CVAE feeds c to both networks (label maps into q, one-hot beside z into p)
    def _encoder_input(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return images
        return torch.cat([images, label_maps(labels, self.num_classes, images.shape[-1])], dim=1)  # (B, 1+C, 8, 8)

    def _decoder_input(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return z
        return torch.cat([z, one_hot(labels, self.num_classes)], dim=1)  # (B, latent + C)

    def posterior(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """mu, logvar ``(B, latent_dim)`` of q(z | x[, c]); logvar is clamped to [-10, 10] for stability."""
        mu, logvar = self.encoder(self._encoder_input(images, labels)).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 10.0)

    def decoder_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Bernoulli logits ``(B, 1, 8, 8)`` of p(x | z[, c])."""
        return self.decoder(self._decoder_input(z, labels))

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The posterior mean (used for reconstructions, interpolation and latent diffusion)."""
        return self.posterior(images, labels)[0]

    def decode(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's mean image E[x | z] mapped to [-1, 1] (2 sigmoid - 1 = tanh(logits / 2))."""
        return torch.tanh(self.decoder_logits(latent, labels) / 2)

    def elbo_terms(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample reconstruction NLL and KL ``(B,)``, with one reparameterised z per image."""
        mu, logvar = self.posterior(images, labels)
        z = reparameterize(mu, logvar, generator)
        return bernoulli_nll(self.decoder_logits(z, labels), images), gaussian_kl(mu, logvar)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """L_VAE (L_CVAE when conditional) = E[-log p(x|z)] + beta KL, averaged over the batch."""
        rec, kl = self.elbo_terms(images, labels)
        loss = (rec + self.config.beta * kl).mean()
        return loss, {"rec": float(rec.mean().detach()), "kl": float(kl.mean().detach())}

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode z ~ p(z) = N(0, I), one per entry of ``labels`` (used as c when conditional)."""
        z = torch.randn((labels.shape[0], self.config.latent_dim), generator=generator)
        return self.decode(z, labels)


@torch.no_grad()
def active_units(model: VAE, images: torch.Tensor, labels: torch.Tensor | None = None, threshold: float = 0.01) -> int:
    """Latent dimensions u with Cov_x(E_q[z_u | x]) > threshold (Burda et al. 2016); collapsed ones are not."""
    mu = model.eval().posterior(images, labels)[0]
    return int((mu.var(0) > threshold).sum())


def train_vae(out: str | Path, config: VAEConfig, train_config: TrainConfig, batch_size: int = 128,
              resume: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the (conditional) VAE with the shared loop; reports active units of the saved model."""
    from storylab.images.data.digits import load_digits_split
    from storylab.images.zoo.registry import family_class

    torch.manual_seed(train_config.seed)  # the initial weights are part of what the seed reproduces
    model = family_class("cvae")(config) if config.num_classes else VAE(config)  # cvae.py builds on this file
    info = fit(model, out, train_config, batch_size, resume, extra)
    data = load_digits_split("train")
    info["active_units"] = active_units(info["model"], data.images, data.labels if config.num_classes else None)
    return info
