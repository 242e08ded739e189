"""Training and measuring ControlNets: condition data, the training run, fidelity, the convergence curve.

Training follows the paper (Zhang et al. 2023, sec. 3.3-4): the base denoiser is frozen, the
ControlNet (trainable encoder copy, hint encoder, zero convs) is optimised with AdamW on the
eps-prediction loss (eq. 5), class labels are dropped with probability ``p_uncond`` (the paper
drops 50 % of the prompts) so the control also works without a class, and no EMA is used. Every
``eval_every`` steps the ControlNet samples from a fixed set of held-out conditions and the
condition fidelity (re-extracted condition vs input, :func:`condition_fidelity`) is logged: the
"sudden convergence" of the paper's Figure 21 shows up as a jump in that curve (``convergence.png``).
Step 0 of the curve is the base model itself, since zero convolutions start the ControlNet as the
identity. The data set and image size are the base denoiser's (``base.config.data``): the digits'
8x8 or a 28x28 set; conditions are extracted per batch (:class:`ConditionDataset`), so 60,000
Fashion-MNIST conditions never sit in memory at once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from storylab.errors import StorylabError
from storylab.images.control.conditions import check_kind, condition_fidelity, extract_batch
from storylab.images.control.controlnet import (Control, ControlledDenoiser, ControlNet, ControlNetConfig, ControlNetTraining,
                                        hint_channels_for, load_controlnet, save_controlnet)
from storylab.images.data.datasets import load_split
from storylab.images.networks.denoiser import DEFAULT_SAMPLER, DigitDiffusion, load_digit_model, sample_digits
from storylab.training import TrainConfig, load_checkpoint, load_resume_state, state_path_for, train


@dataclass
class ControlTrainingConfig:
    """What ``storylab train controlnet`` fills: the condition, the net's options and the optimisation."""

    kind: str = "canny"
    steps: int = 1500
    batch_size: int = 64
    lr: float = 5e-4
    p_uncond: float = 0.5
    hint_channels: tuple[int, ...] | None = None  # None: sized by the base's image side (hint_channels_for)
    mid_only: bool = False
    unlock_decoder: bool = False
    variants: int = 4  # jittered versions of each training digit (scribble only)
    eval_every: int = 100
    eval_count: int = 48
    eval_steps: int = 10
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = check_kind(self.kind)
        for name in ("steps", "batch_size", "eval_every", "eval_count", "eval_steps", "variants"):
            if getattr(self, name) < 1:
                raise StorylabError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.p_uncond <= 1:
            raise StorylabError(f"p-uncond must be in [0, 1], got {self.p_uncond}")
        if self.lr <= 0:
            raise StorylabError(f"lr must be > 0, got {self.lr}")


class ConditionDataset(torch.utils.data.Dataset):
    """``(image, label, condition)`` triples of a split, the ``kind`` condition extracted when an item is read.

    Scribbles are random drawings, so ``variants`` jittered copies of each image are made (other kinds
    are deterministic and get one); item ``v * N + i`` is copy ``v`` of image ``i``, jittered with
    seed ``seed + 100000 v + i``.
    """

    def __init__(self, kind: str, images: torch.Tensor, labels: torch.Tensor, size: int, variants: int = 1,
                 seed: int = 0) -> None:
        self.kind, self.images, self.labels, self.size, self.seed = check_kind(kind), images, labels, size, seed
        self.copies = variants if self.kind == "scribble" else 1

    def __len__(self) -> int:
        return self.copies * self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        v, i = divmod(int(index), self.images.shape[0])
        cond = extract_batch(self.kind, self.images[i:i + 1], size=self.size, seed=self.seed + 100_000 * v + i)[0]
        return self.images[i], self.labels[i], cond  # (1, S, S), (), (1, cond, cond)


def condition_data(kind: str, split: str = "train", variants: int = 1, seed: int = 0, size: int = 32,
                   data: str = "digits") -> ConditionDataset:
    """Images of ``split`` of ``data`` with their ``kind`` conditions (a :class:`ConditionDataset`)."""
    loaded = load_split(data, split)
    return ConditionDataset(kind, loaded.images, loaded.labels, size, variants, seed)


def eval_conditions(kind: str, count: int, seed: int = 0, size: int = 32, data: str = "digits"
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed, class-balanced set of ``count`` held-out (test split) images of ``data``, their labels and conditions."""
    split = load_split(data, "test")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(split), generator=gen)
    k = int(split.labels.max()) + 1
    by_class = [order[split.labels[order] == c] for c in range(k)]
    idx = torch.stack([by_class[i % k][i // k] for i in range(count)])
    images = split.images[idx]
    return images, split.labels[idx], extract_batch(kind, images, size=size, seed=seed + 7)


@torch.no_grad()
def controlled_samples(base: DigitDiffusion, nets: list[ControlNet] | ControlNet | None, conds: list[torch.Tensor] | torch.Tensor | None,
                       labels: torch.Tensor | None, scales: list[float] | float = 1.0, steps: int = 20, seed: int = 0,
                       guidance: str = "cfg", guidance_scale: float = 3.0, uncond_control: bool = True) -> torch.Tensor:
    """Sample one digit per condition; ``labels=None`` samples without a class (null label, no CFG).

    ``uncond_control`` controls CFG's unconditional branch too (the references' default; see
    :meth:`ControlledDenoiser.conditions`).

    ``nets=None`` (or scale 0) is the base model on the same noise: the reference row of every table.
    """
    nets = [] if nets is None else (nets if isinstance(nets, list) else [nets])
    conds = [] if conds is None else (conds if isinstance(conds, list) else [conds])
    scales = scales if isinstance(scales, list) else [scales] * len(nets)
    n = conds[0].shape[0] if conds else (labels.shape[0] if labels is not None else 0)
    use = torch.full((n,), base.null_class) if labels is None else labels
    rule, g_scale = ("none", 1.0) if labels is None else (guidance, guidance_scale)
    if not nets:
        return sample_digits(base, use, rule, g_scale, "constant", DEFAULT_SAMPLER, steps, seed)
    dn = ControlledDenoiser(base, [Control(net, c, s) for net, c, s in zip(nets, conds, scales)])
    return sample_digits(base, use, rule, g_scale, "constant", DEFAULT_SAMPLER, steps, seed, denoiser=dn,
                         conditions=dn.conditions(use, base.null_class, uncond_control), on_step=dn.observe)


def train_controlnet(out: str | Path, base_path: str | Path, cfg: ControlTrainingConfig, progress: bool = True,
                     resume: bool = True) -> tuple[ControlNet, dict[str, Any]]:
    """Train a ControlNet for the ``cfg.kind`` condition on the frozen base at ``base_path``; save to ``out``.

    Returns the trained net and ``{"seconds", "loss", "history", "fidelity"}`` where ``fidelity`` is
    the list of ``{"step", "fidelity", "loss"}`` points of the convergence curve (step 0 = the base).
    """
    out = Path(out)
    base = load_digit_model(base_path)
    torch.manual_seed(cfg.seed)
    side = base.config.image_size
    net = ControlNet(base.unet, ControlNetConfig(kind=cfg.kind, hint_channels=cfg.hint_channels or hint_channels_for(side),
                                                 mid_only=cfg.mid_only, unlock_decoder=cfg.unlock_decoder, image_size=side))
    model = ControlNetTraining(base, net, p_uncond=cfg.p_uncond)
    size = net.config.cond_size
    dataset = condition_data(cfg.kind, "train", cfg.variants, cfg.seed, size, data=base.config.data)
    loader = torch.utils.data.DataLoader(dataset, batch_size=min(cfg.batch_size, len(dataset)), shuffle=True,
                                         drop_last=True, generator=torch.Generator().manual_seed(cfg.seed))
    ev_images, _, ev_conds = eval_conditions(cfg.kind, cfg.eval_count, seed=cfg.seed, size=size, data=base.config.data)

    def fidelity(current: ControlNet | None) -> float:
        was_training = current.training if current is not None else False
        if current is not None:
            current.eval()
        samples = controlled_samples(base, current, ev_conds, None, 1.0, cfg.eval_steps, seed=cfg.seed)
        if current is not None and was_training:
            current.train()
        return condition_fidelity(cfg.kind, samples, ev_conds).mean

    state_path = state_path_for(out)
    if not resume and state_path.exists():
        state_path.unlink()
    # a foreign or planted state is refused before the baseline evaluation; the loop gets the state read here
    saved_state = load_resume_state(state_path) if resume else None
    curve: list[dict[str, float]] = []
    if saved_state is not None and out.exists():
        curve = list(load_checkpoint(out).extra.get("fidelity", []))
    if not curve:
        curve.append({"step": 0, "fidelity": fidelity(None), "loss": float("nan")})
    base_fidelity = curve[0]["fidelity"]
    t0 = time.perf_counter()

    def on_log(state: Any) -> None:
        if state.step % cfg.eval_every == 0 or state.step == cfg.steps:
            curve.append({"step": state.step, "fidelity": fidelity(state.model.net), "loss": state.losses.get("loss", float("nan"))})

    on_log.every = cfg.eval_every  # the loop calls it at every multiple of --eval-every

    def save(raw: ControlNetTraining, ema: Any, step: int) -> None:
        extra = {**cfg.extra, "kind": cfg.kind, "seed": cfg.seed, "step": step, "fidelity": curve,
                 "base_fidelity": base_fidelity, "training": {k: v for k, v in asdict(cfg).items() if k != "extra"},
                 "seconds": time.perf_counter() - t0}
        save_controlnet(out, raw.net, base, extra)

    tc = TrainConfig(steps=cfg.steps, lr=cfg.lr, warmup_steps=0, lr_schedule="constant", ema_decay=None,
                     checkpoint_every=max(cfg.eval_every, 250), log_every=min(cfg.eval_every, 50), seed=cfg.seed,
                     progress=progress)
    state = train(model, lambda m, b: m.loss(b[0], b[1], b[2]), loader, tc, save_fn=save, state_path=state_path,
                  callbacks=[on_log], parameters=net.parameters(), description=f"train controlnet ({cfg.kind})",
                  resume_state=saved_state)
    final = load_controlnet(out, base)
    return final, {"seconds": state.losses.get("seconds", 0.0), "loss": state.losses.get("loss", float("nan")),
                   "history": state.history, "fidelity": curve, "base_fidelity": base_fidelity}


def plot_convergence(curves: dict[str, list[dict[str, float]]], path: str | Path, metric: str = "F1") -> Path:
    """Condition fidelity vs training step per condition kind (the paper's "sudden convergence", Fig. 21)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from storylab.io import atomic_savefig

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    for kind, curve in curves.items():
        steps = [p["step"] for p in curve]
        values = [p["fidelity"] for p in curve]
        line, = ax.plot(steps, values, marker="o", markersize=3, label=f"{kind} ControlNet")
        ax.axhline(values[0], color=line.get_color(), linestyle=":", linewidth=1, label=f"{kind}: base model (step 0)")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"condition fidelity ({metric})")
    ax.set_title("ControlNet training: condition fidelity on held-out conditions (no class)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return Path(path)


def evaluate_controlnets(base_path: str | Path, checkpoints: dict[str, Path], scales: list[float], count: int = 100,
                         steps: int = 20, seed: int = 0, guidance_scale: float = 3.0, progress: bool = True,
                         uncond_control: bool = True) -> list[dict[str, Any]]:
    """Fidelity, FID (with its real-vs-real floor, mean and spread) and class adherence per kind, scale and class mode.

    Conditions come from ``count`` held-out test digits; "class" samples with the source digit's
    label under CFG, "none" without a class. Scale 0 is the base model on the same noise and conditions.
    Adherence is the share of samples the feature net classifies as the source digit's class.
    """
    from storylab.images.networks.feature_training import load_digit_feature_net
    from storylab.images.study.study import real_reference, score_samples
    from storylab.training.progress import progress_bar

    base = load_digit_model(base_path)
    data = base.config.data
    feature_net = load_digit_feature_net(data=data)
    ref = real_reference(feature_net, count, seed, data=data)
    results = []
    total = len(checkpoints) * len(scales) * 2
    with progress_bar("evaluate controlnet", total=total, enabled=progress) as bar:
        for kind, path in checkpoints.items():
            net = load_controlnet(path, base)
            images, labels, conds = eval_conditions(net.config.kind, count, seed=seed + 1, size=net.config.cond_size, data=data)
            for mode in ("class", "none"):
                for scale in scales:
                    t0 = time.perf_counter()
                    samples = controlled_samples(base, net if scale > 0 else None, conds, labels if mode == "class" else None,
                                                 scale, steps, seed, guidance_scale=guidance_scale,
                                                 uncond_control=uncond_control)
                    fid = condition_fidelity(net.config.kind, samples, conds)
                    scores = score_samples(samples, labels, feature_net, ref["test_feats"], ref["stats"])
                    results.append({"kind": net.config.kind, "class": mode, "scale": scale, "metric": fid.metric,
                                    "fidelity": fid.mean, "fidelity_std": float(np.std(fid.scores)), "fid": scores["fid"],
                                    "fid_floor": ref["floor"]["fid"], "fid_floor_std": ref["floor"]["fid_std"],
                                    "n_floor": ref["n_floor"], "feature_dim": ref["dim"], "adherence": scores["adherence"],
                                    "seconds": time.perf_counter() - t0, "n": count})
                    bar.advance()
    return results
