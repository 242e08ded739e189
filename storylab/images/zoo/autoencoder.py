"""The deterministic autoencoder (the lecture's first model): x -> z = E(x) -> x_hat = D(z), min ||x - x_hat||^2.

Strengths the table shows: the simplest structure, fast to train, the best reconstructions of the
zoo at a given latent size. Failures the lecture lists and the grids show: nothing shapes the
latent space, so it is neither smooth nor interpolatable, and the model has no prior to draw *new*
data from. To be able to put the AE in the sample row at all we fit the most generous naive prior,
a diagonal Gaussian with the mean and standard deviation of the training codes (stored in the
checkpoint), and decode draws from it: its holes (latent regions no training digit maps to) are
exactly the lecture's point. Plain PyTorch (diffusers has no deterministic AE class).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from storylab.images.zoo.common import DEFAULT_DATA, ZooModel, batched, check_image_spec, check_positive, fit, load_data_split
from storylab.images.zoo.nets import ConvDecoder, ConvEncoder
from storylab.training import TrainConfig


@dataclass
class AEConfig:
    """Autoencoder size and data set (defaults: the CLI's for the digits; tests use ``width=8, hidden=32``)."""

    latent_dim: int = 8
    width: int = 16
    hidden: int = 128
    data: str = DEFAULT_DATA
    image_size: int = 8

    def __post_init__(self) -> None:
        for name in ("latent_dim", "width", "hidden"):
            check_positive(getattr(self, name), name.replace("_", " "))
        check_image_spec(self)


class AutoEncoder(ZooModel):
    """Conv encoder -> ``latent_dim`` code -> conv decoder with a tanh output in [-1, 1]."""

    family = "ae"
    config_cls = AEConfig

    def __init__(self, config: AEConfig | None = None) -> None:
        super().__init__(config or AEConfig())
        c = self.config
        self.encoder = ConvEncoder(1, c.width, c.latent_dim, hidden=c.hidden, image_size=c.image_size)
        self.decoder = ConvDecoder(c.latent_dim, c.width, hidden=c.hidden, image_size=c.image_size)
        # the naive prior: per-dimension mean / std of the training codes (fitted after training)
        self.register_buffer("code_mean", torch.zeros(c.latent_dim))
        self.register_buffer("code_std", torch.ones(c.latent_dim))

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(images)  # (B, latent_dim)

    def decode(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.decoder(latent))  # (B, 1, s, s)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean squared reconstruction error per pixel."""
        mse = torch.mean((self.decode(self.encode(images)) - images) ** 2)
        return mse, {"mse": float(mse.detach())}

    @torch.no_grad()
    def fit_code_prior(self, images: torch.Tensor) -> None:
        """Set the naive Gaussian prior to the per-dimension mean / std of the codes of ``images``."""
        self.eval()
        codes = batched(self.encode, images)
        self.code_mean.copy_(codes.mean(0))
        self.code_std.copy_(codes.std(0).clamp_min(1e-6))

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode z ~ N(code_mean, diag(code_std^2)); one sample per entry of ``labels`` (ignored)."""
        z = torch.randn((labels.shape[0], self.config.latent_dim), generator=generator)
        return self.decode(self.code_mean + self.code_std * z)


def train_autoencoder(out: str | Path, config: AEConfig, train_config: TrainConfig, batch_size: int = 128,
                      resume: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the AE with the shared loop, then fit its naive code prior on the train split and re-save."""
    from storylab.images.zoo.common import save_zoo_model
    from storylab.training.loop import is_main_process

    torch.manual_seed(train_config.seed)  # the initial weights are part of what the seed reproduces
    info = fit(AutoEncoder(config), out, train_config, batch_size, resume, extra)
    model: AutoEncoder = info["model"]
    model.fit_code_prior(load_data_split(config.data, "train").images)
    if is_main_process():  # under several processes, the main one writes
        save_zoo_model(out, model, {**(extra or {}), "step": train_config.steps})
    return info
