"""Latent diffusion (Rombach et al. 2022): the foundation's DDPM trained on the VAE's latents, decoded back.

The lecture's bridge to Stable Diffusion. A trained VAE (:mod:`storylab.images.zoo.vae`) is frozen;
every training digit is encoded to its posterior mean mu(x) and scaled by one global factor so that
the latents have unit variance (Stable Diffusion's "scale factor", section 4.3.2 and appendix G).
A small class-conditional MLP denoiser eps_theta(z_t, t, c) is then trained with the foundation's
:func:`~storylab.diffusion.diffusion_loss` (DDPM's L_simple, Ho et al. 2020, eq. 14) with the label
dropped to a null class with probability ``p_uncond`` (classifier-free guidance training, Ho &
Salimans 2022). The network predicts v = a eps - s z_0 (Salimans & Ho 2022) rather than eps: the
cosine schedule ends at alpha-bar_T ~ 2e-9, where x_0 = (z_t - s eps) / a amplifies any eps error by
1 / a ~ 2e4, and unlike pixels a latent has no range to clip x_0 to (with eps the first DDIM step
threw latents to |z| ~ 1e3). Sampling runs the foundation's DDIM sampler with a :class:`~storylab.guidance.Guided`
CFG wrapper on the latent, then decodes with the VAE's decoder.

What it shows: the VAE's samples are blurry *and* off-distribution because the aggregate posterior
is not the N(0, I) prior the VAE samples from ("Gaussian prior is not realistic", in the lecture);
a diffusion model fitted to the actual latents removes the second problem (better FID and recall
than the VAE's own samples) but not the first: detail lost by the decoder stays lost, so the VAE's
reconstruction error bounds the LDM's quality. The VAE's weights are stored inside the LDM
checkpoint (prefix ``vae.``) so the checkpoint samples on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from storylab.diffusion import BETA_SCHEDULES, PREDICTIONS, alphas_cumprod, beta_schedule, ddim_sample, diffusion_loss
from storylab.errors import StorylabError
from storylab.guidance import Guided, make_rule
from storylab.images.data.digits import NUM_CLASSES
from storylab.images.networks.unet import timestep_embedding
from storylab.images.zoo.common import ZooModel, check_positive, fit, tensor_loader
from storylab.images.zoo.vae import VAE, VAEConfig
from storylab.training import TrainConfig


@dataclass
class LDMConfig:
    """Latent denoiser and diffusion settings; ``vae`` is the frozen VAE's configuration."""

    vae: dict = field(default_factory=dict)
    width: int = 128
    depth: int = 3
    emb_dim: int = 64
    num_classes: int = NUM_CLASSES
    p_uncond: float = 0.1
    beta_schedule: str = "cosine"
    num_timesteps: int = 1000
    prediction: str = "v"
    guidance_scale: float = 1.0
    sample_steps: int = 50

    def __post_init__(self) -> None:
        for name in ("width", "depth", "emb_dim", "num_timesteps", "sample_steps"):
            check_positive(getattr(self, name), name.replace("_", " "))
        if self.num_classes < 2:
            raise StorylabError(f"latent diffusion needs at least 2 classes, got {self.num_classes}")
        if not 0 <= self.p_uncond < 1:
            raise StorylabError(f"p_uncond must be in [0, 1), got {self.p_uncond}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise StorylabError(f"unknown beta schedule '{self.beta_schedule}' ({', '.join(BETA_SCHEDULES)})")
        if self.prediction not in PREDICTIONS:
            raise StorylabError(f"unknown prediction '{self.prediction}' ({', '.join(PREDICTIONS)})")

    @property
    def vae_config(self) -> VAEConfig:
        return VAEConfig(**self.vae)


class AdaLNBlock(nn.Module):
    """Residual MLP block whose LayerNorm is modulated by the (t, c) embedding; zero-initialised output (DiT's adaLN-Zero)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.modulation = nn.Linear(width, 3 * width)
        self.fc1, self.fc2 = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)
        nn.init.zeros_(self.modulation.weight)  # gate = 0: every block starts as the identity
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(nn.functional.silu(emb)).chunk(3, dim=1)  # 3 x (B, width)
        x = self.norm(h) * (1 + scale) + shift
        return h + gate * self.fc2(nn.functional.silu(self.fc1(x)))


class LatentDenoiser(nn.Module):
    """eps_theta(z_t, t, c): latent ``(B, d)`` -> width -> ``depth`` adaLN residual blocks -> ``(B, d)``; class ``C`` = null."""

    def __init__(self, latent_dim: int, width: int, depth: int, num_classes: int, emb_dim: int = 64) -> None:
        super().__init__()
        self.emb_dim = emb_dim
        self.time = nn.Sequential(nn.Linear(emb_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.label = nn.Embedding(num_classes + 1, width)
        self.inp = nn.Linear(latent_dim, width)
        self.blocks = nn.ModuleList(AdaLNBlock(width) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, latent_dim))

    def forward(self, z: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.emb_dim)) + self.label(labels)  # (B, width)
        h = self.inp(z)  # (B, width)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)  # (B, latent_dim)


class LatentDiffusion(ZooModel):
    """Frozen VAE + latent denoiser; ``sample(labels)`` = DDIM with CFG in latent space, then the VAE decoder."""

    family = "ldm"
    config_cls = LDMConfig

    def __init__(self, config: LDMConfig | None = None) -> None:
        super().__init__(config or LDMConfig())
        c = self.config
        self.vae = VAE(c.vae_config)
        self.vae.requires_grad_(False)
        d = c.vae_config.latent_dim
        self.net = LatentDenoiser(d, c.width, c.depth, c.num_classes, c.emb_dim)
        self.register_buffer("latent_scale", torch.ones(()))
        self.register_buffer("alpha_bar", alphas_cumprod(beta_schedule(c.beta_schedule, c.num_timesteps)).float(),
                             persistent=False)

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def denoiser(self, z: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """The ``denoiser(x, t, cond)`` contract of the foundation's samplers (``cond`` = labels ``(B,)``)."""
        return self.net(z, t, cond["labels"] if isinstance(cond, dict) else cond)

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled VAE posterior mean ``(B, d)``: the diffusion model's data."""
        return self.vae.encode(images) * self.latent_scale

    def decode(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.vae.decode(latent / self.latent_scale)

    def latent_loss(self, latents: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_simple on latents, with the label dropped to the null class with probability p_uncond."""
        drop = torch.rand(labels.shape[0], device=labels.device) < self.config.p_uncond
        labels = torch.where(drop, torch.full_like(labels, self.null_class), labels)
        return diffusion_loss(self.denoiser, latents, labels, self.alpha_bar, self.config.prediction)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            latents = self.encode(images)
        return self.latent_loss(latents, labels), {}

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None, scale: float | None = None,
               steps: int | None = None) -> torch.Tensor:
        """DDIM (eta = 0) with CFG at ``scale`` (1 = conditional) on the latent, decoded by the VAE."""
        scale = self.config.guidance_scale if scale is None else scale
        steps = steps or self.config.sample_steps
        z = torch.randn((labels.shape[0], self.vae.config.latent_dim), generator=generator)
        guided = Guided(self.denoiser, labels, rule=make_rule("cfg"), scale=scale,
                        uncond=torch.full_like(labels, self.null_class), prediction=self.config.prediction)
        z0 = ddim_sample(guided, z, self.alpha_bar, steps, generator=generator)
        return self.decode(z0)


@torch.no_grad()
def fit_latent_scale(model: LatentDiffusion, images: torch.Tensor) -> torch.Tensor:
    """Set ``latent_scale`` = 1 / std of the VAE latents of ``images``; return the scaled latents ``(N, d)``."""
    model.latent_scale.fill_(1.0)
    raw = model.vae.eval().encode(images)
    model.latent_scale.fill_(1.0 / float(raw.std().clamp_min(1e-6)))
    return raw * model.latent_scale


def train_latent_diffusion(out: str | Path, vae_path: str | Path, config: LDMConfig, train_config: TrainConfig,
                           batch_size: int = 128, resume: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load the VAE at ``vae_path`` (kind ``zoo-vae``), encode the train split, train the latent denoiser."""
    from storylab.images.data.digits import load_digits_split
    from storylab.images.zoo.common import load_zoo_model

    vae = load_zoo_model(vae_path, "vae")
    config.vae = dict(vars(vae.config))
    torch.manual_seed(train_config.seed)  # the initial weights are part of what the seed reproduces
    model = LatentDiffusion(config)
    model.vae.load_state_dict(vae.state_dict())
    data = load_digits_split("train")
    latents = fit_latent_scale(model, data.images)
    info = fit(model, out, train_config, batch_size, resume, {**(extra or {}), "vae": str(vae_path)},
               loss_fn=lambda m, batch: m.latent_loss(batch[0], batch[1]),
               loader=tensor_loader((latents, data.labels), batch_size, train_config.seed),
               parameters=list(model.net.parameters()), description="train ldm")
    return info
