"""The class-conditional digit diffusion model: training, loading and sampling with any guidance.

DDPM training (Ho et al. 2020) of :class:`~storylab.images.networks.unet.DigitUNet` on the digits train
split, with the class label dropped to the null class with probability ``p_uncond`` so that one
network gives both eps(x_t, t, y) and eps(x_t, t) for classifier-free guidance (Ho & Salimans
2022). Sampling goes through the foundation's samplers and guidance rules; this module only adapts
the network to the ``denoiser(x, t, cond)`` contract.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from storylab.diffusion import alphas_cumprod, beta_schedule, ddim_sample, ddpm_sample, diffusion_loss, edm_heun_sample
from storylab.errors import StorylabError
from storylab.guidance import Guided, GuidanceRule, make_rule
from storylab.images.defaults import DEFAULT_SAMPLER, IMAGE_SAMPLERS, default_steps, resolve_sampler
from storylab.images.networks.unet import DigitUNet, UNetConfig
from storylab.training import TrainConfig, load_checkpoint, save_checkpoint, state_path_for, train

KIND = "digits-denoiser"


@dataclass
class DigitDiffusionConfig:
    """Diffusion settings of the digit model (saved inside its checkpoint)."""

    unet: UNetConfig = field(default_factory=lambda: UNetConfig(channels=32))
    beta_schedule: str = "cosine"
    num_timesteps: int = 1000
    prediction: str = "eps"
    loss_weighting: str = "uniform"  # or "min-snr" (Hang et al. 2023), with gamma ``snr_gamma``
    snr_gamma: float = 5.0
    p_uncond: float = 0.1
    data: str = "digits"
    image_size: int = 8

    def to_dict(self) -> dict:
        data = asdict(self)
        data["unet"] = self.unet.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "DigitDiffusionConfig":
        data = dict(data)
        unet = UNetConfig.from_dict(data.pop("unet", {}))
        return cls(unet=unet, **{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class DigitDiffusion(nn.Module):
    """A DigitUNet with its noise schedule; ``denoiser(x, t, cond)`` is the sampler-facing callable.

    ``cond`` is a label tensor ``(B,)`` (``num_classes`` = null), or a dict with ``labels`` and any
    extra keys a wrapper understands (ControlNet adds ``control``).
    """

    def __init__(self, config: DigitDiffusionConfig | None = None) -> None:
        super().__init__()
        self.config = config or DigitDiffusionConfig()
        self.unet = DigitUNet(self.config.unet)
        self.register_buffer("alpha_bar", alphas_cumprod(beta_schedule(self.config.beta_schedule,
                                                                       self.config.num_timesteps)).float(),
                             persistent=False)

    @property
    def num_classes(self) -> int:
        return self.config.unet.num_classes

    @property
    def null_class(self) -> int:
        return self.unet.null_class

    def denoiser(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        """The network's eps prediction for labels ``cond`` (a tensor or ``{"labels": ...}``)."""
        labels = cond["labels"] if isinstance(cond, dict) else cond
        return self.unet(x, t, labels)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """DDPM loss with condition dropout: labels replaced by the null class with prob. p_uncond."""
        drop = torch.rand(labels.shape[0], device=labels.device) < self.config.p_uncond
        labels = torch.where(drop, torch.full_like(labels, self.null_class), labels)
        return diffusion_loss(self.denoiser, images, labels, self.alpha_bar, self.config.prediction,
                              weighting=self.config.loss_weighting, snr_gamma=self.config.snr_gamma)


# The training recipes of ``storylab train`` (``--recipe``). ``v-min-snr`` is the default, chosen side by side
# against ``eps`` and diffusers' example recipe at equal minutes (bench/images_recipe.py, docs/fashion_mnist_study.md):
# v-prediction (Salimans & Ho 2022) with Min-SNR-5 weighting (Hang et al. 2023), a 64-wide timestep embedding, EMA
# warm-up. ``eps`` is the first recipe: eps target, uniform weights (Ho et al. 2020), fixed EMA decay.
RECIPES: dict[str, dict[str, Any]] = {
    "v-min-snr": {"prediction": "v", "loss_weighting": "min-snr", "snr_gamma": 5.0, "time_dim": 64, "ema_warmup": True,
                  "lr": 2e-3},
    "eps": {"prediction": "eps", "loss_weighting": "uniform", "snr_gamma": 5.0, "time_dim": 0, "ema_warmup": False,
            "lr": None},  # None: the data set's first learning rate (2e-3 for digits, 1e-3 at 28x28)
}
DEFAULT_RECIPE = "v-min-snr"


def recipe_config(recipe: str, data: str = "digits", channels: int = 32, steps: int = 1000, lr: float | None = None,
                  p_uncond: float = 0.1, beta_schedule: str = "cosine", seed: int = 0, progress: bool = True,
                  prediction: str | None = None) -> tuple[DigitDiffusionConfig, TrainConfig]:
    """The model and optimisation settings of a named recipe (:data:`RECIPES`) for a data set.

    ``lr`` and ``prediction`` override the recipe's. Warm-up is min(100, steps / 10) steps, then cosine decay.
    """
    from storylab.images.data.datasets import resolve

    if recipe not in RECIPES:
        raise StorylabError(f"unknown recipe '{recipe}' (choose from {', '.join(RECIPES)})")
    r = RECIPES[recipe]
    ds = resolve(data)
    first_lr = 2e-3 if ds.image_size <= 8 else 1e-3
    config = DigitDiffusionConfig(unet=UNetConfig(channels=channels, num_classes=ds.num_classes, time_dim=r["time_dim"]),
                                  beta_schedule=beta_schedule, prediction=prediction or r["prediction"],
                                  loss_weighting=r["loss_weighting"], snr_gamma=r["snr_gamma"], p_uncond=p_uncond,
                                  data=ds.name, image_size=ds.image_size)
    lr = lr if lr is not None else (r["lr"] if r["lr"] is not None else first_lr)
    tc = TrainConfig(steps=steps, lr=lr, warmup_steps=min(100, steps // 10), ema_decay=0.995,
                     ema_warmup=r["ema_warmup"], checkpoint_every=250, seed=seed, progress=progress)
    return config, tc


def save_digit_model(path: str | Path, model: DigitDiffusion, extra: dict | None = None) -> Path:
    """Save the digit model as a storylab safetensors checkpoint of kind ``digits-denoiser``."""
    return save_checkpoint(path, model.unet.state_dict(), KIND, model.config.to_dict(), extra)


def load_digit_model(path: str | Path, num_classes: int | None = None) -> DigitDiffusion:
    """Load a ``digits-denoiser`` checkpoint; a class-count mismatch is a clear error."""
    ckpt = load_checkpoint(path, KIND)
    config = DigitDiffusionConfig.from_dict(ckpt.config)
    if num_classes is not None and config.unet.num_classes != num_classes:
        raise StorylabError(f"{path} was trained for {config.unet.num_classes} classes, but {num_classes} were asked for")
    model = DigitDiffusion(config)
    try:
        model.unet.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        raise StorylabError(f"{path}: weights do not match the recorded configuration") from exc
    return model.eval()


def digits_loader(batch_size: int, seed: int = 0, augment: bool = False, data: str = "digits"
                  ) -> torch.utils.data.DataLoader:
    """Shuffled DataLoader over the train split of ``data`` (a data-set name or IDX folder; images in [-1, 1], labels)."""
    from storylab.images.data.datasets import load_split

    data = load_split(data, "train")
    dataset = torch.utils.data.TensorDataset(data.images, data.labels)
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=generator)


def train_digit_model(out: str | Path, config: DigitDiffusionConfig, train_config: TrainConfig, batch_size: int = 128,
                      resume: bool = True, extra: dict | None = None,
                      callbacks: list[Callable] | None = None) -> tuple[DigitDiffusion, dict]:
    """Train the digit model with the shared Accelerate loop; the EMA weights are what is saved."""
    out = Path(out)
    torch.manual_seed(train_config.seed)  # --seed fixes the initial weights too, not only the batches
    model = DigitDiffusion(config)
    state_path = state_path_for(out)
    if not resume and state_path.exists():
        state_path.unlink()

    def save(raw: nn.Module, ema: nn.Module | None, step: int) -> None:
        chosen = ema if ema is not None else raw
        save_digit_model(out, chosen, {**(extra or {}), "step": step})

    loader = digits_loader(batch_size, train_config.seed, data=config.data)
    result = train(model, lambda m, batch: m.loss(batch[0], batch[1]), loader,
                   train_config, save_fn=save, state_path=state_path, callbacks=callbacks,
                   description=f"train {config.data}")
    final = load_digit_model(out)
    return final, {"seconds": result.losses.get("seconds", 0.0), "loss": result.losses.get("loss", float("nan")),
                   "history": result.history}


def guidance_conditions(model: DigitDiffusion, labels: torch.Tensor, negative: torch.Tensor | None = None
                        ) -> dict[str, torch.Tensor | None]:
    """cond / uncond / negative label tensors for the guided model."""
    return {"cond": labels, "uncond": torch.full_like(labels, model.null_class), "negative": negative}


@torch.no_grad()
def sample_digits(model: DigitDiffusion, labels: torch.Tensor, rule: GuidanceRule | str = "cfg", scale: float = 3.0,
                  schedule: str | None = "constant", sampler: str = DEFAULT_SAMPLER, steps: int | None = None, seed: int = 0,
                  negative: torch.Tensor | None = None, eta: float = 0.0, denoiser: Callable | None = None,
                  conditions: dict[str, Any] | None = None, return_model: bool = False,
                  on_step: Callable[[Any], None] | None = None, guide: Any = None, uncond_model: Any = None) -> Any:
    """Sample images of the given ``labels`` ``(B,)``; returns ``(B, 1, S, S)`` in [-1, 1] (S = the model's image size).

    ``rule`` is a :class:`GuidanceRule` or a name (none, cfg, negative, cfg++, apg; classifier
    guidance needs a rule object carrying its classifier). ``denoiser`` and ``conditions`` let a
    wrapper (ControlNet) replace the network and the per-branch conditions; ``on_step(ctx)`` is
    called with every :class:`StepContext` before the guided model sees it (ControlNet's start/end
    windows read ``ctx.step`` there, since the guided model hands the denoiser only x, t and cond).
    ``guide`` is AutoGuidance's weak model, ``uncond_model`` a separate unconditional network
    (:func:`storylab.images.networks.guidance_networks.guidance_networks`).
    """
    from storylab.images.networks.guidance_networks import guidance_networks

    rule = make_rule(rule) if isinstance(rule, str) else rule
    networks = guidance_networks(model, rule, guide, uncond_model, denoiser)
    generator = torch.Generator().manual_seed(seed)
    size = model.config.unet
    side = model.config.image_size
    x = torch.randn((labels.shape[0], size.in_channels, side, side), generator=generator)
    conds = conditions or guidance_conditions(model, labels, negative)
    guided = Guided(denoiser or model.denoiser, conds["cond"], rule=rule, scale=scale, schedule=schedule,
                    uncond=conds.get("uncond"), negative=conds.get("negative"), prediction=model.config.prediction,
                    networks=networks)
    sampler = resolve_sampler(sampler, model.config.prediction)
    steps = steps or default_steps(sampler, model.config.prediction)
    model_fn = guided if on_step is None else _Observed(guided, on_step)
    if sampler == "ddim":
        out = ddim_sample(model_fn, x, model.alpha_bar, steps, eta=eta, clip_x0=1.0, generator=generator)
    elif sampler == "ddpm":
        out = ddpm_sample(model_fn, x, model.alpha_bar, steps, clip_x0=1.0, generator=generator)
    elif sampler == "edm-heun":
        out = _vp_heun(model_fn, x, model, steps)
    else:
        raise StorylabError(f"unknown sampler '{sampler}' ({', '.join(IMAGE_SAMPLERS)})")
    out = out.clamp(-1, 1)
    return (out, guided) if return_model else out


class _Observed:
    """A guided model that reports each step context to ``on_step`` first."""

    def __init__(self, guided: Guided, on_step: Callable[[Any], None]) -> None:
        self.guided, self.on_step = guided, on_step

    def __call__(self, ctx):
        self.on_step(ctx)
        return self.guided(ctx)


def _vp_heun(guided: Callable, x: torch.Tensor, model: DigitDiffusion, steps: int) -> torch.Tensor:
    """EDM Heun on the VP model: sample in sigma space x_sigma = x_t / sqrt(ab) (Karras et al. 2022, sec. 3).

    At each sigma of the Karras grid the VP network sees x_t = x_sigma / sqrt(1 + sigma^2) at the fractional
    timestep whose sigma_t = sqrt((1 - ab_t) / ab_t) equals sigma, interpolated linearly in log sigma between
    the trained integer timesteps (k-diffusion's ``DiscreteSchedule.sigma_to_t``); the network's sinusoidal
    embedding takes fractional t.
    """
    ab = model.alpha_bar.double()
    log_sigmas = ((1 - ab) / ab).sqrt().log()  # increasing in t
    index = torch.arange(ab.shape[0], dtype=torch.float64)

    def sigma_to_t(sigma: float) -> float:
        ls = torch.tensor(sigma, dtype=torch.float64).log().clamp(log_sigmas[0], log_sigmas[-1])
        hi = int(torch.searchsorted(log_sigmas, ls).clamp(1, ab.shape[0] - 1))
        w = float((ls - log_sigmas[hi - 1]) / (log_sigmas[hi] - log_sigmas[hi - 1]))
        return float(index[hi - 1] + w)

    class _VPAsVE:
        def __call__(self, ctx):
            sigma = float(ctx.s)
            a = (1.0 + sigma ** 2) ** -0.5
            inner = type(ctx)(x=ctx.x * a, t=torch.full(ctx.t.shape, sigma_to_t(sigma), dtype=ctx.x.dtype),
                              step=ctx.step, num_steps=ctx.num_steps, a=a, s=sigma * a, corrector=ctx.corrector)
            return guided(inner)  # eps is the same in VP and VE parameterisations

    sigma_min, sigma_max = float(log_sigmas[0].exp()), min(80.0, float(log_sigmas[-1].exp()))
    return edm_heun_sample(_VPAsVE(), x, steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=7.0)
