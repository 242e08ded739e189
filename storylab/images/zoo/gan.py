"""The GAN (Goodfellow et al. 2014) with the lecture's min-max objective, DCGAN-style nets, optional classes.

    min_G max_D  V(D, G) = E_{x ~ p_r}[log D(x)] + E_{z ~ p_z}[log(1 - D(G(z)))]

D ascends V (:func:`discriminator_loss` is -V, a binary cross-entropy with real = 1, fake = 0).
For G, the paper's own remedy is used by default: early in training log(1 - D(G(z))) saturates
(its gradient vanishes when D rejects the fakes confidently), so G instead *maximises* log D(G(z))
- the non-saturating loss of section 3 (:func:`generator_loss`; ``saturating=True`` gives the
min-max form for comparison). At the optimum D = 1/2 everywhere, where -V = 2 log 2.

Networks follow DCGAN (Radford et al. 2016), with one stride-2 stage per halving of the image
(:func:`~storylab.images.zoo.nets.down_stages`: 8x8 digits 4 -> 8, 28x28 Fashion-MNIST 7 -> 14 -> 28):
G = linear -> g x g -> transposed convs with BatchNorm + ReLU and a tanh output; D = strided convs
with LeakyReLU(0.2), no BatchNorm; Adam with
lr 2e-4, beta_1 = 0.5. ``num_classes > 0`` gives the conditional GAN of Mirza & Osindero 2014: the
one-hot label is appended to z and to D's input channels. No further stabilisers (no spectral norm,
no gradient penalty) are added: the lecture's failure modes - unstable training and mode collapse -
must be allowed to appear, and the recall column of ``storylab evaluate zoo`` is where they show.
The saved generator is an EMA of G's weights (a standard evaluation practice, Karras et al. 2018).

Why a second training loop: the shared loop (:func:`storylab.training.train`) owns one optimiser
and one loss, but a GAN alternates two optimisers on two opposed losses every step. Rather than
bend the shared loop, :func:`train_gan` reuses its pieces - Accelerate, ``make_ema``, the progress
bar, atomic safetensors checkpoints and ``.state.safetensors`` resume states, and the same clear stop on a
non-finite loss that keeps the last good checkpoint - and adds only the alternating update.
There is no encoder: interpolation between two *real* digits first inverts G by optimising z
(:meth:`GAN.invert`, Zhu et al. 2016), and the reconstruction column stays empty.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from storylab.errors import StorylabError
from storylab.images.zoo.common import DEFAULT_DATA, ZooModel, check_image_spec, check_positive, data_loader, save_zoo_model
from storylab.images.zoo.nets import down_stages, grid_size, label_maps, one_hot
from storylab.training import (TrainConfig, load_resume_state, make_ema, restore_resume_state, save_resume_state,
                               state_path_for)
from storylab.training.progress import progress_bar


@dataclass
class GANConfig:
    """Generator / discriminator sizes; ``num_classes > 0`` = conditional GAN."""

    latent_dim: int = 32
    width: int = 32
    num_classes: int = 0
    data: str = DEFAULT_DATA
    image_size: int = 8

    def __post_init__(self) -> None:
        check_positive(self.latent_dim, "latent dim")
        check_positive(self.width, "width")
        check_image_spec(self)
        if self.num_classes < 0 or self.num_classes == 1:
            raise StorylabError(f"num_classes must be 0 (unconditional) or >= 2, got {self.num_classes}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-V(D, G) = -E[log D(x)] - E[log(1 - D(G(z)))] with D = sigmoid(logits); 2 log 2 at D = 1/2."""
    bce = nn.functional.binary_cross_entropy_with_logits
    return bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits))


def generator_loss(fake_logits: torch.Tensor, saturating: bool = False) -> torch.Tensor:
    """Non-saturating -E[log D(G(z))] (default; log 2 at D = 1/2) or the min-max E[log(1 - D(G(z)))] (-log 2)."""
    bce = nn.functional.binary_cross_entropy_with_logits
    if saturating:
        return -bce(fake_logits, torch.zeros_like(fake_logits))
    return bce(fake_logits, torch.ones_like(fake_logits))


class Generator(nn.Module):
    """z ``(B, latent[+C])`` -> linear -> (B, 2w, g, g) -> [transposed conv 2w -> 2w per further stage]
    -> transposed conv -> (B, w, s, s) -> (B, 1, s, s) in [-1, 1] (digits: g = 4, s = 8; 28x28: g = 7)."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        w = config.width
        self.width, self.side = w, grid_size(config.image_size)
        g = self.side
        self.stem = nn.Sequential(nn.Linear(config.latent_dim + config.num_classes, 2 * w * g * g),
                                  nn.BatchNorm1d(2 * w * g * g), nn.ReLU())
        extra: list[nn.Module] = []
        for _ in range(down_stages(config.image_size) - 1):
            extra += [nn.ConvTranspose2d(2 * w, 2 * w, 4, stride=2, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU()]
        self.body = nn.Sequential(
            *extra,  # (B, 2w, s/2, s/2)
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU(),  # (B, w, s, s)
            nn.Conv2d(w, 1, 3, padding=1), nn.Tanh(),  # (B, 1, s, s)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(z).reshape(z.shape[0], 2 * self.width, self.side, self.side))


class Discriminator(nn.Module):
    """Image ``(B, 1[+C], s, s)`` -> strided conv -> (B, w, s/2, s/2) -> [strided conv w -> w per further stage]
    -> conv -> (B, 2w, g, g) -> logit ``(B,)``."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        w, g = config.width, grid_size(config.image_size)
        extra: list[nn.Module] = []
        for _ in range(down_stages(config.image_size) - 1):
            extra += [nn.Conv2d(w, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(
            nn.Conv2d(1 + config.num_classes, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, w, s/2, s/2)
            *extra,  # (B, w, g, g)
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.LeakyReLU(0.2),  # (B, 2w, g, g)
            nn.Flatten(), nn.Linear(2 * w * g * g, 1),  # (B, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class GAN(ZooModel):
    """Generator and discriminator; ``sample(labels)`` draws G(z[, c]) with z ~ N(0, I)."""

    family = "gan"
    config_cls = GANConfig

    def __init__(self, config: GANConfig | None = None) -> None:
        super().__init__(config or GANConfig())
        self.generator = Generator(self.config)
        self.discriminator = Discriminator(self.config)

    def generator_input(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, one_hot(labels, self.num_classes)], 1) if self.conditional else z

    def discriminator_input(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([images, label_maps(labels, self.num_classes, images.shape[-1])], 1) if self.conditional else images

    def generate(self, z: torch.Tensor, labels: torch.Tensor, generator: nn.Module | None = None) -> torch.Tensor:
        return (generator or self.generator)(self.generator_input(z, labels))

    def critic(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Discriminator logits ``(B,)``; D(x) = sigmoid(logit)."""
        return self.discriminator(self.discriminator_input(images, labels))

    def losses(self, real: torch.Tensor, labels: torch.Tensor, z: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fake images, D loss on the detached fake, D(x) logits) for one batch: the first half of a step."""
        fake = self.generate(z, labels)
        real_logits = self.critic(real, labels)
        return fake, discriminator_loss(real_logits, self.critic(fake.detach(), labels)), real_logits

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        raise StorylabError("a GAN has two opposed losses; train it with train_gan (storylab train gan DATASET)")

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn((labels.shape[0], self.config.latent_dim), generator=generator)
        return self.generate(z, labels)

    def reconstruct(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        return None

    def invert(self, images: torch.Tensor, labels: torch.Tensor, steps: int = 300, lr: float = 0.05,
               seed: int = 0) -> torch.Tensor:
        """z with G(z[, c]) close to ``images``: Adam on ||G(z) - x||^2 + 1e-3 ||z||^2 (GAN inversion)."""
        was_training = self.training
        self.eval()
        z = torch.randn((images.shape[0], self.config.latent_dim), generator=torch.Generator().manual_seed(seed))
        z.requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        with torch.enable_grad():
            for _ in range(steps):
                loss = ((self.generate(z, labels) - images) ** 2).mean() + 1e-3 * (z ** 2).mean()
                grad, = torch.autograd.grad(loss, z)
                z.grad = grad
                opt.step()
        self.train(was_training)
        return z.detach()

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.invert(images, labels if labels is not None else torch.zeros(images.shape[0], dtype=torch.long))

    def decode(self, latent: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generate(latent, labels)


def check_finite(loss: torch.Tensor, name: str, step: int, last_good: int) -> None:
    """Stop with one clear line when a GAN loss is NaN or infinite (the last good checkpoint stays)."""
    if not torch.isfinite(loss.detach()).all():
        raise StorylabError(f"train gan: {name} loss became {loss.item()} at step {step + 1}; stopped, the last good "
                            f"checkpoint (step {last_good}) is kept. Lower the learning rate.")


def train_gan(out: str | Path, config: GANConfig, train_config: TrainConfig, batch_size: int = 64,
              resume: bool = True, extra: dict[str, Any] | None = None, saturating: bool = False) -> dict[str, Any]:
    """Alternate one D step (ascend V) and one G step (non-saturating loss) for ``train_config.steps`` steps.

    Uses Adam with ``train_config.lr`` / ``betas`` at a constant rate (DCGAN), an EMA of G when
    ``ema_decay`` is set, atomic checkpoints every ``checkpoint_every`` steps and resume from
    ``<out>.state.safetensors``. A non-finite loss stops with :class:`StorylabError`, keeping the last good checkpoint.
    """
    from accelerate.utils import set_seed

    from storylab.training.loop import (average_buffers, average_gradients, broadcast_module, check_resume_state,
                                        check_shardable, make_accelerator, mean_over_processes, process_rng_states,
                                        restore_process_rng)

    out = Path(out)
    state_path = state_path_for(out)
    if not resume and state_path.exists():
        state_path.unlink()
    tc = train_config
    description = "train gan"
    accelerator = make_accelerator()
    set_seed(tc.seed)
    model = GAN(config)
    if accelerator.process_index:  # the same initial weights everywhere, each process its own z
        torch.manual_seed(tc.seed + accelerator.process_index)
    opt_g = torch.optim.Adam(model.generator.parameters(), lr=tc.lr, betas=tc.betas)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=tc.lr, betas=tc.betas)
    start = 0
    saved = load_resume_state(state_path)
    if saved is not None:
        check_resume_state(saved, state_path, model, tc, description, stateful=("opt_g", "opt_d"),
                           num_processes=accelerator.num_processes)
        start = restore_resume_state(saved, model, {"opt_g": opt_g, "opt_d": opt_d})
        restore_process_rng(saved, accelerator)
        if accelerator.is_main_process:
            print(f"resuming train gan from step {start} ({state_path})")
    loader = data_loader(config.data, batch_size, tc.seed)
    check_shardable(loader, accelerator.num_processes)
    # G and D step in turn on one batch, so no single DDP forward covers a step: gradients are averaged
    # over processes explicitly (average_gradients) after each backward, as DDP's hooks would
    model.to(accelerator.device)
    broadcast_module(model, accelerator)
    opt_g, opt_d, loader = accelerator.prepare(opt_g, opt_d, loader)
    raw: GAN = model
    ema = make_ema(model.generator, tc.ema_decay, tc.ema_warmup) if tc.ema_decay else None
    if ema is not None and saved is not None and saved.get("ema") is not None:
        ema.load_state_dict(saved["ema"])

    def checkpoint(step: int) -> None:
        rngs = process_rng_states(accelerator)  # collective: before the main-process-only part
        if accelerator.is_main_process:
            snapshot = GAN(config)
            snapshot.load_state_dict(raw.state_dict())
            if ema is not None:
                snapshot.generator.load_state_dict(ema.module.state_dict())
            save_zoo_model(out, snapshot, {**(extra or {}), "step": step})
            save_resume_state(state_path, {"model": raw.state_dict(), "opt_g": opt_g.state_dict(),
                                           "opt_d": opt_d.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                                           "rng": rngs[0], "rng_processes": rngs,
                                           "num_processes": accelerator.num_processes, "step": step,
                                           "config": asdict(tc), "description": description})
        accelerator.wait_for_everyone()  # no process reads the checkpoint before the main one has written it

    def batches():
        while True:
            yield from loader

    stream = batches()
    history: list[dict[str, float]] = []
    running: dict[str, float] = {}
    count = 0
    last_good = start
    t0 = time.perf_counter()
    raw.train()
    with progress_bar("train gan", total=tc.steps, completed=start,
                      enabled=tc.progress and accelerator.is_main_process) as bar:
        for step in range(start, tc.steps):
            real, labels = next(stream)
            z = torch.randn((real.shape[0], config.latent_dim), device=real.device)
            fake, d_loss, real_logits = raw.losses(real, labels, z)
            check_finite(d_loss, "discriminator", step, last_good)
            opt_d.zero_grad(set_to_none=True)
            accelerator.backward(d_loss)
            average_gradients(raw.discriminator.parameters(), accelerator)
            opt_d.step()
            fake_logits = raw.critic(fake, labels)  # the updated D judges the same fakes (Algorithm 1)
            g_loss = generator_loss(fake_logits, saturating)
            check_finite(g_loss, "generator", step, last_good)
            opt_g.zero_grad(set_to_none=True)
            accelerator.backward(g_loss)
            opt_d.zero_grad(set_to_none=True)  # D's gradients from G's loss are discarded
            average_gradients(raw.generator.parameters(), accelerator)
            opt_g.step()
            average_buffers(raw.generator, accelerator)  # BatchNorm statistics of each process's batch
            logs = {"d_real": float(torch.sigmoid(real_logits.detach()).mean()),
                    "d_fake": float(torch.sigmoid(fake_logits.detach()).mean())}
            if ema is not None:
                ema.update_parameters(raw.generator)
            for key, value in {"d_loss": d_loss.item(), "g_loss": g_loss.item(), **logs}.items():
                running[key] = running.get(key, 0.0) + value
            count += 1
            done = step + 1
            if done % tc.log_every == 0 or done == tc.steps:
                means = mean_over_processes({k: v / count for k, v in running.items()}, accelerator)
                history.append({"step": done, **means})
                bar.update(done, **means)
                running, count = {}, 0
            if tc.checkpoint_every and done % tc.checkpoint_every == 0 and done != tc.steps:
                checkpoint(done)
                last_good = done
        checkpoint(tc.steps)
    from storylab.images.zoo.common import load_zoo_model

    return {"seconds": time.perf_counter() - t0, "loss": history[-1]["g_loss"] if history else float("nan"),
            "history": history, "model": load_zoo_model(out, "gan")}
