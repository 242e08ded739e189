"""Training and measuring digit ControlNets: condition data, the training run, fidelity, the convergence curve.

Training follows the paper (Zhang et al. 2023, sec. 3.3-4): the base denoiser is frozen, the
ControlNet (trainable encoder copy, hint encoder, zero convs) is optimised with AdamW on the
eps-prediction loss (eq. 5), class labels are dropped with probability ``p_uncond`` (the paper
drops 50 % of the prompts) so the control also works without a class, and no EMA is used. Every
``eval_every`` steps the ControlNet samples from a fixed set of held-out conditions and the
condition fidelity (re-extracted condition vs input, :func:`condition_fidelity`) is logged: the
"sudden convergence" of the paper's Figure 21 shows up as a jump in that curve (``convergence.png``).
Step 0 of the curve is the base model itself, since zero convolutions start the ControlNet as the
identity.
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
                                        load_controlnet, save_controlnet)
from storylab.images.networks.denoiser import DigitDiffusion, load_digit_model, sample_digits
from storylab.images.data.digits import load_digits_split
from storylab.training import TrainConfig, load_checkpoint, load_resume_state, state_path_for, train


@dataclass
class ControlTrainingConfig:
    """What ``storylab train controlnet`` fills: the condition, the net's options and the optimisation."""

    kind: str = "canny"
    steps: int = 1500
    batch_size: int = 64
    lr: float = 5e-4
    p_uncond: float = 0.5
    hint_channels: tuple[int, ...] = (8, 16, 32)
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


def condition_data(kind: str, split: str = "train", variants: int = 1, seed: int = 0, size: int = 32
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Digits of ``split`` with their ``kind`` conditions: images (N, 1, 8, 8), labels (N,), conditions (N, 1, S, S).

    Scribbles are random drawings, so ``variants`` jittered copies of each digit are made (other kinds
    are deterministic and get one).
    """
    data = load_digits_split(split)
    copies = variants if check_kind(kind) == "scribble" else 1
    conds = [extract_batch(kind, data.images, size=size, seed=seed + 100_000 * v) for v in range(copies)]
    return data.images.repeat(copies, 1, 1, 1), data.labels.repeat(copies), torch.cat(conds)


def eval_conditions(kind: str, count: int, seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed, class-balanced set of ``count`` held-out (test split) digits, their labels and conditions."""
    data = load_digits_split("test")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data), generator=gen)
    by_class = [order[data.labels[order] == c] for c in range(10)]
    idx = torch.stack([by_class[i % 10][i // 10] for i in range(count)])
    images = data.images[idx]
    return images, data.labels[idx], extract_batch(kind, images, size=size, seed=seed + 7)


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
        return sample_digits(base, use, rule, g_scale, "constant", "ddim", steps, seed)
    dn = ControlledDenoiser(base, [Control(net, c, s) for net, c, s in zip(nets, conds, scales)])
    return sample_digits(base, use, rule, g_scale, "constant", "ddim", steps, seed, denoiser=dn,
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
    net = ControlNet(base.unet, ControlNetConfig(kind=cfg.kind, hint_channels=cfg.hint_channels, mid_only=cfg.mid_only,
                                                 unlock_decoder=cfg.unlock_decoder))
    model = ControlNetTraining(base, net, p_uncond=cfg.p_uncond)
    size = net.config.cond_size
    images, labels, conds = condition_data(cfg.kind, "train", cfg.variants, cfg.seed, size)
    dataset = torch.utils.data.TensorDataset(images, labels, conds)
    loader = torch.utils.data.DataLoader(dataset, batch_size=min(cfg.batch_size, len(dataset)), shuffle=True,
                                         drop_last=True, generator=torch.Generator().manual_seed(cfg.seed))
    ev_images, _, ev_conds = eval_conditions(cfg.kind, cfg.eval_count, seed=cfg.seed, size=size)

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
    if resume:
        load_resume_state(state_path)  # a foreign or planted state is refused before the baseline evaluation
    curve: list[dict[str, float]] = []
    if resume and state_path.exists() and out.exists():
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
                  callbacks=[on_log], parameters=net.parameters(), description=f"train controlnet ({cfg.kind})")
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
    """Fidelity, FID (with its real-vs-real floor) and class adherence per kind, scale and class mode.

    Conditions come from ``count`` held-out test digits; "class" samples with the source digit's
    label under CFG, "none" without a class. Scale 0 is the base model on the same noise and conditions.
    Adherence is the share of samples the feature net classifies as the source digit's class.
    """
    from storylab.images.networks.feature_training import load_digit_feature_net
    from storylab.images.study.study import real_reference, score_samples
    from storylab.training.progress import progress_bar

    base = load_digit_model(base_path)
    feature_net = load_digit_feature_net()
    ref = real_reference(feature_net, count, seed)
    results = []
    total = len(checkpoints) * len(scales) * 2
    with progress_bar("evaluate controlnet", total=total, enabled=progress) as bar:
        for kind, path in checkpoints.items():
            net = load_controlnet(path, base)
            images, labels, conds = eval_conditions(net.config.kind, count, seed=seed + 1, size=net.config.cond_size)
            for mode in ("class", "none"):
                for scale in scales:
                    t0 = time.perf_counter()
                    samples = controlled_samples(base, net if scale > 0 else None, conds, labels if mode == "class" else None,
                                                 scale, steps, seed, guidance_scale=guidance_scale,
                                                 uncond_control=uncond_control)
                    fid = condition_fidelity(net.config.kind, samples, conds)
                    scores = score_samples(samples, labels, feature_net, ref["test_feats"])
                    results.append({"kind": net.config.kind, "class": mode, "scale": scale, "metric": fid.metric,
                                    "fidelity": fid.mean, "fidelity_std": float(np.std(fid.scores)), "fid": scores["fid"],
                                    "fid_floor": ref["floor"]["fid"], "adherence": scores["adherence"],
                                    "seconds": time.perf_counter() - t0, "n": count})
                    bar.advance()
    return results
