"""Model-zoo commands: ``storylab train ae|vae|cvae|vqvae|gan|ldm DATASET``, ``storylab sample ...``, ``storylab evaluate zoo``.

DATASET is the images wing's vocabulary: ``digits`` (8x8, the tiny test set), ``fashion-mnist``,
``mnist`` or a folder of MNIST-format IDX files; ``sample`` and ``evaluate zoo`` take it as ``--data``
like ``storylab train classifier --data``. The networks are sized by the data set's image size.

Every option fills a family's config dataclass and a :class:`~storylab.training.TrainConfig`; the
work happens in :mod:`storylab.images.zoo`. Defaults are the settings of the shipped checkpoints
(``storylab/assets/images/zoo.md``) and train in minutes on two CPU cores.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from storylab.cli_groups import evaluate_app, sample_app, train_app
from storylab.errors import StorylabError
from storylab.images.assets import zoo_checkpoint as shipped_path
from storylab.images.data.datasets import DATA_HELP
from storylab.io import run_path, use_hint

_DATASET = typer.Argument(..., metavar="DATASET", help=DATA_HELP + " (its train split).")
_HIDDEN = typer.Option(None, "--hidden", show_default="128 for 8x8 images, 64 for larger ones",
                       help="Width of the MLP between the conv features and the latent.")


def _command_line() -> str:
    return "storylab " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _dataset(dataset: str) -> Any:
    """The data set named on the command line (one clear line for an unknown one)."""
    from storylab.images.data.datasets import resolve

    return resolve(dataset)


def _image_fields(ds: Any) -> dict[str, Any]:
    """The config fields that size a family's networks for the data set ``ds``."""
    return {"data": ds.name, "image_size": ds.image_size}


def _hidden(hidden: int | None, ds: Any) -> int:
    """``--hidden``, by default 128 at 8x8 and 64 at larger sizes (keeps a 28x28 checkpoint under ~1 MB)."""
    return hidden if hidden is not None else (128 if ds.image_size <= 8 else 64)


def _default_out(family: str, ds: Any, out: Path | None) -> Path:
    """``--out``: ``runs/zoo_<family>.safetensors`` (digits), ``runs/<data>_zoo_<family>.safetensors`` otherwise."""
    if out is not None:
        return out
    if ds.name == "digits":
        return run_path(f"zoo_{family}.safetensors")
    return run_path(f"{ds.slug if ds.path is None else 'idx'}_zoo_{family}.safetensors")


def _train_config(steps: int, lr: float, seed: int, progress: bool, ema: float | None, **more: Any):
    from storylab.training import TrainConfig

    if steps < 1:
        raise StorylabError(f"--steps must be >= 1, got {steps}")
    if not lr > 0:
        raise StorylabError(f"--lr must be positive, got {lr}")
    return TrainConfig(steps=steps, lr=lr, warmup_steps=min(100, steps // 10), ema_decay=ema,
                       checkpoint_every=max(1, min(500, steps // 4)), log_every=min(50, steps), seed=seed,
                       progress=progress, **more)


def _check_batch(batch_size: int) -> None:
    if batch_size < 1:
        raise StorylabError(f"--batch-size must be >= 1, got {batch_size}")


def _extra(seed: int) -> dict[str, Any]:
    return {"command": _command_line(), "seed": seed}


def _done(family: str, out: Path, info: dict[str, Any], more: str = "") -> None:
    print(f"saved {out}  ({info['seconds']:.0f} s, final loss {info['loss']:.4f}{more})")
    _hint(family, out)


def _hint(family: str, out: Path) -> None:
    compare = shlex.join(["storylab", "evaluate", "zoo", "--checkpoints", f"{family}={out}"])
    print(use_hint("storylab", "sample", family, "--checkpoint", out) + f"  (or {compare})")


_OUT = ("Checkpoint to write (safetensors), relative to the current directory; a .state.safetensors beside it allows resume. "
        "The shipped checkpoint is never overwritten unless named here.")
_RESUME = typer.Option(True, "--resume/--no-resume", help="Resume from OUT's .state.safetensors if present.")
_PROGRESS = typer.Option(True, "--progress/--no-progress", help="Show a progress bar.")


def _out_option(family: str) -> Any:
    """``--out`` of ``storylab train <family> DATASET``: under ``runs/``, never the shipped file."""
    return typer.Option(None, "--out", help=_OUT,
                        show_default=f"runs/zoo_{family}.safetensors for digits, runs/<data>_zoo_{family}.safetensors otherwise")


@train_app.command("ae")
def train_ae(dataset: str = _DATASET,
             out: Optional[Path] = _out_option("ae"),
             steps: int = typer.Option(1500, "--steps", help="Optimisation steps."),
             batch_size: int = typer.Option(128, "--batch-size", help="Batch size."),
             lr: float = typer.Option(2e-3, "--lr", help="Peak AdamW learning rate (cosine decay)."),
             latent_dim: int = typer.Option(8, "--latent-dim", help="Code size."),
             width: int = typer.Option(16, "--width", help="Conv width."),
             hidden: Optional[int] = _HIDDEN,
             seed: int = typer.Option(0, "--seed", help="Random seed."),
             resume: bool = _RESUME, progress: bool = _PROGRESS) -> None:
    """Train the deterministic autoencoder (MSE reconstruction)."""
    from storylab.images.zoo.autoencoder import AEConfig, train_autoencoder

    _check_batch(batch_size)
    ds = _dataset(dataset)
    out = _default_out("ae", ds, out)
    config = AEConfig(latent_dim=latent_dim, width=width, hidden=_hidden(hidden, ds), **_image_fields(ds))
    info = train_autoencoder(out, config, _train_config(steps, lr, seed, progress, 0.995), batch_size, resume, _extra(seed))
    _done("ae", out, info)


def _train_vae_family(conditional: bool, dataset: str, out: Path | None, steps: int, batch_size: int, lr: float,
                      beta: float, latent_dim: int, width: int, hidden: int | None, seed: int, resume: bool,
                      progress: bool) -> None:
    from storylab.images.zoo.cvae import CVAEConfig
    from storylab.images.zoo.vae import VAEConfig, check_beta, train_vae

    _check_batch(batch_size), check_beta(beta)
    ds = _dataset(dataset)
    out = _default_out("cvae" if conditional else "vae", ds, out)
    more = {"num_classes": ds.num_classes} if conditional else {}
    cls = CVAEConfig if conditional else VAEConfig
    config = cls(latent_dim=latent_dim, width=width, hidden=_hidden(hidden, ds), beta=beta, **more, **_image_fields(ds))
    info = train_vae(out, config, _train_config(steps, lr, seed, progress, 0.995), batch_size, resume, _extra(seed))
    _done("cvae" if conditional else "vae", out, info, f", {info['active_units']}/{latent_dim} active latent units")


@train_app.command("vae")
def train_vae_cmd(dataset: str = _DATASET,
                  out: Optional[Path] = _out_option("vae"),
                  steps: int = typer.Option(2000, "--steps", help="Optimisation steps."),
                  batch_size: int = typer.Option(128, "--batch-size", help="Batch size."),
                  lr: float = typer.Option(2e-3, "--lr", help="Peak AdamW learning rate (cosine decay)."),
                  beta: float = typer.Option(1.0, "--beta", help="KL weight (1 = the ELBO; larger shows posterior collapse)."),
                  latent_dim: int = typer.Option(8, "--latent-dim", help="Latent size."),
                  width: int = typer.Option(16, "--width", help="Conv width."),
                  hidden: Optional[int] = _HIDDEN,
                  seed: int = typer.Option(0, "--seed", help="Random seed."),
                  resume: bool = _RESUME, progress: bool = _PROGRESS) -> None:
    """Train the VAE (Gaussian encoder, Bernoulli decoder, beta-weighted ELBO)."""
    _train_vae_family(False, dataset, out, steps, batch_size, lr, beta, latent_dim, width, hidden, seed, resume, progress)


@train_app.command("cvae")
def train_cvae_cmd(dataset: str = _DATASET,
                   out: Optional[Path] = _out_option("cvae"),
                   steps: int = typer.Option(2000, "--steps", help="Optimisation steps."),
                   batch_size: int = typer.Option(128, "--batch-size", help="Batch size."),
                   lr: float = typer.Option(2e-3, "--lr", help="Peak AdamW learning rate (cosine decay)."),
                   beta: float = typer.Option(1.0, "--beta", help="KL weight of L_CVAE."),
                   latent_dim: int = typer.Option(8, "--latent-dim", help="Latent size."),
                   width: int = typer.Option(16, "--width", help="Conv width."),
                   hidden: Optional[int] = _HIDDEN,
                   seed: int = typer.Option(0, "--seed", help="Random seed."),
                   resume: bool = _RESUME, progress: bool = _PROGRESS) -> None:
    """Train the class-conditional VAE (the lecture's L_CVAE)."""
    _train_vae_family(True, dataset, out, steps, batch_size, lr, beta, latent_dim, width, hidden, seed, resume, progress)


@train_app.command("vqvae")
def train_vqvae_cmd(dataset: str = _DATASET,
                    out: Optional[Path] = _out_option("vqvae"),
                    steps: int = typer.Option(1500, "--steps", help="VQ-VAE optimisation steps."),
                    prior_steps: int = typer.Option(1000, "--prior-steps", help="Steps of the autoregressive code prior."),
                    batch_size: int = typer.Option(128, "--batch-size", help="Batch size of the VQ-VAE."),
                    prior_batch_size: int = typer.Option(64, "--prior-batch-size", help="Batch size of the prior."),
                    lr: float = typer.Option(2e-3, "--lr", help="Peak AdamW learning rate of the VQ-VAE."),
                    prior_lr: float = typer.Option(1e-3, "--prior-lr", help="Peak AdamW learning rate of the prior."),
                    codebook_size: int = typer.Option(64, "--codebook-size", help="Number of codes K (>= 2)."),
                    code_dim: int = typer.Option(8, "--code-dim", help="Code vector size D."),
                    commitment: float = typer.Option(0.25, "--commitment", help="Commitment weight beta (paper: 0.25)."),
                    restart_after: int = typer.Option(100, "--restart-after", help="Restart codes unused for this many steps (0 = never)."),
                    width: int = typer.Option(16, "--width", help="Conv width."),
                    seed: int = typer.Option(0, "--seed", help="Random seed."),
                    resume: bool = _RESUME, progress: bool = _PROGRESS) -> None:
    """Train the VQ-VAE (codebook, straight-through, commitment, dead-code restarts), then its code prior."""
    from storylab.images.zoo.vqvae import VQVAEConfig, train_vqvae

    _check_batch(batch_size), _check_batch(prior_batch_size)
    ds = _dataset(dataset)
    out = _default_out("vqvae", ds, out)
    config = VQVAEConfig(codebook_size=codebook_size, code_dim=code_dim, commitment=commitment,
                         restart_after=restart_after, width=width, **_image_fields(ds))
    info = train_vqvae(out, config, _train_config(steps, lr, seed, progress, None), batch_size, resume, _extra(seed),
                       prior_config=_train_config(prior_steps, prior_lr, seed, progress, 0.995),
                       prior_batch_size=prior_batch_size)
    _done("vqvae", out, info, f", codebook usage {info['usage']:.0%}, perplexity {info['perplexity']:.1f}, "
                              f"prior NLL {info['prior_nll']:.3f} nats/code")


@train_app.command("gan")
def train_gan_cmd(dataset: str = _DATASET,
                  out: Optional[Path] = _out_option("gan"),
                  steps: int = typer.Option(3000, "--steps", help="Alternating D/G steps."),
                  batch_size: int = typer.Option(64, "--batch-size", help="Batch size."),
                  lr: float = typer.Option(2e-4, "--lr", help="Adam learning rate of both players (DCGAN)."),
                  latent_dim: int = typer.Option(32, "--latent-dim", help="Size of z."),
                  width: int = typer.Option(32, "--width", help="Conv width."),
                  conditional: bool = typer.Option(False, "--conditional/--unconditional", help="Class-conditional GAN (Mirza & Osindero)."),
                  saturating: bool = typer.Option(False, "--saturating/--non-saturating", help="Generator loss: min-max log(1 - D(G(z))) or the non-saturating -log D(G(z))."),
                  ema: float = typer.Option(0.999, "--ema", help="EMA decay of the saved generator (0 = raw weights)."),
                  seed: int = typer.Option(0, "--seed", help="Random seed."),
                  resume: bool = _RESUME, progress: bool = _PROGRESS) -> None:
    """Train the GAN with the lecture's min-max objective (two optimisers, non-saturating G loss)."""
    from storylab.images.zoo.gan import GANConfig, train_gan

    _check_batch(batch_size)
    if not 0 <= ema < 1:
        raise StorylabError(f"--ema must be in [0, 1), got {ema}")
    ds = _dataset(dataset)
    out = _default_out("gan", ds, out)
    config = GANConfig(latent_dim=latent_dim, width=width, num_classes=ds.num_classes if conditional else 0,
                       **_image_fields(ds))
    tc = _train_config(steps, lr, seed, progress, ema or None, betas=(0.5, 0.999))
    info = train_gan(out, config, tc, batch_size, resume, _extra(seed), saturating=saturating)
    last = info["history"][-1] if info["history"] else {}
    print(f"saved {out}  ({info['seconds']:.0f} s, final D loss {last.get('d_loss', float('nan')):.3f}, "
          f"G loss {last.get('g_loss', float('nan')):.3f}, D(x) {last.get('d_real', float('nan')):.2f}, "
          f"D(G(z)) {last.get('d_fake', float('nan')):.2f})")
    _hint("gan", out)


@train_app.command("ldm")
def train_ldm_cmd(dataset: str = _DATASET,
                  out: Optional[Path] = _out_option("ldm"),
                  vae: Optional[Path] = typer.Option(None, "--vae", show_default="the shipped VAE of DATASET",
                                                     help="Trained VAE checkpoint (of the same data set) whose latents are modelled."),
                  steps: int = typer.Option(3000, "--steps", help="Optimisation steps."),
                  batch_size: int = typer.Option(256, "--batch-size", help="Batch size."),
                  lr: float = typer.Option(1e-3, "--lr", help="Peak AdamW learning rate (cosine decay)."),
                  width: int = typer.Option(128, "--width", help="Width of the MLP denoiser."),
                  depth: int = typer.Option(3, "--depth", help="Residual adaLN blocks."),
                  p_uncond: float = typer.Option(0.1, "--p-uncond", help="Label dropout probability (CFG training)."),
                  guidance_scale: float = typer.Option(1.0, "--guidance-scale", help="Default CFG scale stored for sampling (1 = conditional)."),
                  seed: int = typer.Option(0, "--seed", help="Random seed."),
                  resume: bool = _RESUME, progress: bool = _PROGRESS) -> None:
    """Train latent diffusion: the foundation's DDPM on the VAE's latents (class-conditional, CFG dropout)."""
    from storylab.images.zoo.latent_diffusion import LDMConfig, train_latent_diffusion

    _check_batch(batch_size)
    if guidance_scale < 0:
        raise StorylabError(f"--guidance-scale must be >= 0, got {guidance_scale}")
    ds = _dataset(dataset)
    out = _default_out("ldm", ds, out)
    vae = vae or shipped_path("vae", ds.name)
    if not Path(vae).exists():
        raise StorylabError(f"VAE checkpoint missing: {vae} (train one with `storylab train vae {dataset}` and pass --vae)")
    config = LDMConfig(width=width, depth=depth, num_classes=ds.num_classes, p_uncond=p_uncond,
                       guidance_scale=guidance_scale)
    info = train_latent_diffusion(out, vae, config, _train_config(steps, lr, seed, progress, 0.995), batch_size, resume,
                                  _extra(seed), data=ds.name)
    _done("ldm", out, info)


def _sample(family: str, checkpoint: Path | None, out: Path, per_class: int, pairs: int, steps: int, seed: int,
            data: str | None = None) -> None:
    from storylab.images.zoo.common import load_zoo_model
    from storylab.images.zoo.figures import write_sample_figures

    for value, name in ((per_class, "--per-class"), (pairs, "--pairs"), (steps, "--steps")):
        if value < 1:
            raise StorylabError(f"{name} must be >= 1, got {value}")
    if steps < 2:
        raise StorylabError(f"--steps must be >= 2 (the two ends of the interpolation), got {steps}")
    import torch

    torch.manual_seed(seed)
    name = _dataset(data).name if data is not None else None
    if checkpoint is None:
        checkpoint = shipped_path(family, name or "digits")
        if not checkpoint.exists():
            raise StorylabError(f"no {family} checkpoint is shipped for '{name}' ({checkpoint}); train one with "
                                f"`storylab train {family} {data}` and pass --checkpoint")
    model = load_zoo_model(checkpoint, family, data=name)
    written = write_sample_figures(model, out, per_class, pairs, steps, seed)
    print("wrote " + "  ".join(str(p) for p in written.values()))


def _sample_command(family: str, what: str) -> None:
    def command(checkpoint: Path = typer.Option(None, "--checkpoint", help=f"{family} checkpoint (default: the shipped one)."),
                out: Path = typer.Option(Path(f"zoo-{family}"), "--out", help="Folder for samples.png, reconstructions.png, interpolation.png."),
                per_class: int = typer.Option(10, "--per-class", help="Samples per grid row (one row per class)."),
                pairs: int = typer.Option(5, "--pairs", help="Interpolation rows (pairs of real test digits)."),
                steps: int = typer.Option(10, "--steps", help="Interpolation points per row."),
                seed: int = typer.Option(0, "--seed", help="Random seed."),
                data: Optional[str] = typer.Option(None, "--data", show_default="digits, or the --checkpoint's data set",
                                                   help=DATA_HELP + "; picks the shipped checkpoint and must match --checkpoint's.")) -> None:
        _sample(family, checkpoint, out, per_class, pairs, steps, seed, data)

    command.__doc__ = f"Samples, reconstructions and latent interpolations between real digits: {what}."
    sample_app.command(family)(command)


for _family, _what in (("ae", "autoencoder (samples from a Gaussian fitted to its codes)"),
                       ("vae", "VAE (z ~ N(0, I))"), ("cvae", "conditional VAE (one row per class)"),
                       ("vqvae", "VQ-VAE (codes from its autoregressive prior)"),
                       ("gan", "GAN (interpolation after inverting G)"),
                       ("ldm", "latent diffusion (DDIM + CFG on the VAE latent)")):
    _sample_command(_family, _what)


@evaluate_app.command("zoo")
def evaluate_zoo_cmd(out: Path = typer.Option(Path("zoo-eval"), "--out", help="Folder for zoo.json, zoo.md and zoo.png."),
                     families: str = typer.Option("ae,vae,cvae,vqvae,gan,ldm,diffusion", "--families",
                                                  help="Comma list of rows: ae, vae, cvae, vqvae, gan, ldm, diffusion."),
                     checkpoints: str = typer.Option("", "--checkpoints", help="Overrides, e.g. 'vae=runs/vae.safetensors,gan=g.safetensors'."),
                     per_class: int = typer.Option(50, "--per-class", help="Samples per class for every model."),
                     cfg_scale: float = typer.Option(1.0, "--cfg-scale", help="CFG scale of the diffusion rows (1 = conditional)."),
                     features: Optional[Path] = typer.Option(None, "--features", help="Feature network for the metrics (from `storylab train features`); default: the shipped one."),
                     steps: Optional[int] = typer.Option(None, "--steps", show_default="10 EDM Heun steps for a v-prediction pixel model, 50 DDPM for an eps one, 50 DDIM for latent diffusion",
                                                         help="Sampling steps of the diffusion rows (pixel diffusion: the images wing's default sampler; latent diffusion: DDIM)."),
                     seed: int = typer.Option(0, "--seed", help="Random seed."),
                     data: str = typer.Option("digits", "--data", help=DATA_HELP + "; every checkpoint must be trained on it.")) -> None:
    """One table for the zoo and the pixel diffusion model: reconstruction, FID vs floor, precision, recall, density, coverage, diversity, adherence, time, size."""
    from storylab.images.zoo.evaluate import evaluate_zoo, parse_checkpoints, parse_families

    name = _dataset(data).name
    rows = parse_families(families)
    paths = parse_checkpoints(checkpoints, rows, name)
    if per_class < 1 or (steps is not None and steps < 1):
        raise StorylabError("--per-class and --steps must be >= 1")
    evaluate_zoo(out, rows, paths, per_class, cfg_scale, steps, seed, features, data=name)
