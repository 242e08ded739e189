"""Train and evaluate FunnyNet-W on a labelled clips table (Liu et al., IJCV 2024, Sec. 4).

Two recipes, both on the foundation's Accelerate loop (checkpoints with metadata, resume, progress bar),
batch 16 and 100 epochs: ``recipe="paper"`` is the official code's (Adam, learning rate 1e-4, halved
at epochs 20, 40, 80 and 100, no weight decay, no gradient clipping); ``recipe="storylab"`` (the
CLI's default, with its trainable CPU encoders) is AdamW with weight decay 1e-4, a short warm-up and
a cosine decay, at the learning rate the CLI passes (3e-4). F1 and accuracy are reported with
"funny" as the positive class, as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from storylab.errors import StorylabError
from storylab.humor.data import ClipInputs, clip_inputs, read_laughter_json
from storylab.humor.labels import read_clip_table
from storylab.humor.config import FunnyNetConfig
from storylab.humor.encoders import channel_major_to_mel_major
from storylab.humor.model import FunnyNet, funnynet_loss

CHECKPOINT_KIND = "funnynet-w"


@dataclass
class FunnyNetTrainConfig:
    """Optimisation settings: the paper's sizes, storylab's or the paper's schedule (``recipe``)."""

    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 1e-4      # storylab recipe only (the paper: none)
    seed: int = 0
    progress: bool = True
    recipe: str = "storylab"        # storylab: AdamW + warm-up + cosine; paper: Adam, x0.5 at epochs 20/40/80/100
    milestones: tuple[int, ...] = (20, 40, 80, 100)  # paper recipe: epochs at which the rate is halved


def load_split(clips_path: str | Path, split: str | None, config: FunnyNetConfig, progress: bool = False) -> ClipInputs:
    """Inputs for the clips of one split (``train``/``test``; None = all) of a clips table."""
    df = read_clip_table(clips_path)
    if split is not None:
        df = df[df["split"] == split]
    if df.empty:
        raise StorylabError(f"{Path(clips_path).name} has no '{split}' clips; label more episodes or lower --holdout")
    laughter_path = Path(clips_path).with_name("laughter.json")
    laughter = read_laughter_json(laughter_path) if laughter_path.exists() else {}
    return clip_inputs(list(df["file"]), list(df["start"]), list(df["end"]), list(df["label"]), list(df["text"]),
                       config, laughter, progress=progress)


class _ClipDataset(torch.utils.data.Dataset):
    def __init__(self, inputs: ClipInputs) -> None:
        self.inputs = inputs

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> int:
        return i


def train_funnynet(inputs: ClipInputs, config: FunnyNetConfig, train_config: FunnyNetTrainConfig,
                   out: str | Path, extra: dict | None = None, init: dict | None = None,
                   resume: bool = True) -> tuple[FunnyNet, dict]:
    """Train FunnyNet-W on ``inputs`` and save the checkpoint to ``out``; returns the model and final losses.

    ``init``: a state dict of the same architecture to start from (fine-tuning; its audio statistics kept).
    A resume state beside ``out`` goes through the loop's check (a foreign or planted one is refused);
    ``resume=False`` deletes it first."""
    from storylab.training import TrainConfig, save_checkpoint, state_path_for, train
    from storylab.training.loop import process_count

    if len(inputs) < 2 or len(set(inputs.label.tolist())) < 2:
        raise StorylabError("training needs funny and not-funny clips; the clips table has only one class")
    torch.manual_seed(train_config.seed)
    model = FunnyNet(config)
    if init is not None:
        model.load_state_dict(init)
    elif inputs.audio is not None:
        a = inputs.audio.float()
        model.audio_stats.copy_(torch.stack([a.mean(), a.std() + 1e-6]))
    processes = process_count()  # under `accelerate launch`, each step takes one batch per process
    drop_last = len(inputs) > train_config.batch_size
    batches = len(inputs) // train_config.batch_size if drop_last else 1  # batches in one pass of the loader
    per_epoch = math.ceil(batches / processes)  # steps in one pass
    steps = train_config.epochs * math.ceil(len(inputs) / (train_config.batch_size * processes))
    # the order comes from --seed alone (not the global RNG, which differs per process), so a run's
    # batches are the same on any number of processes
    loader = torch.utils.data.DataLoader(_ClipDataset(inputs), batch_size=train_config.batch_size, shuffle=True,
                                         drop_last=drop_last, collate_fn=lambda idx: inputs.batch(torch.as_tensor(idx)),
                                         generator=torch.Generator().manual_seed(train_config.seed))
    common = dict(steps=steps, lr=train_config.lr, ema_decay=None, checkpoint_every=0,
                  log_every=max(1, min(20, steps // 10)), seed=train_config.seed, progress=train_config.progress)
    if train_config.recipe == "paper":  # Adam (AdamW without decay is Adam), MultiStepLR(gamma=0.5) per epoch
        tc = TrainConfig(**common, weight_decay=0.0, lr_schedule="multistep", lr_gamma=0.5, grad_clip=None,
                         lr_milestones=tuple(m * per_epoch for m in train_config.milestones))
    elif train_config.recipe == "storylab":
        tc = TrainConfig(**common, weight_decay=train_config.weight_decay, lr_schedule="cosine",
                         warmup_steps=min(20, steps // 10))
    else:
        raise StorylabError(f"unknown training recipe '{train_config.recipe}' (use storylab or paper)")
    meta = {"modalities": config.modalities, "clips": len(inputs), "train": asdict(train_config), **(extra or {})}

    def save(raw, ema, step):
        save_checkpoint(out, raw.state_dict(), CHECKPOINT_KIND, asdict(config), {**meta, "step": step})

    if not resume:
        state_path_for(out).unlink(missing_ok=True)
    state = train(model, funnynet_loss, loader, tc, save_fn=save, state_path=state_path_for(out),
                  description=f"FunnyNet-W ({config.modalities.upper()})")
    state_path_for(out).unlink(missing_ok=True)  # finished: nothing to resume
    return model.eval(), state.losses


def load_funnynet(path: str | Path) -> FunnyNet:
    """Load a FunnyNet-W checkpoint written by :func:`train_funnynet`."""
    from storylab.training import load_checkpoint

    ckpt = load_checkpoint(path, CHECKPOINT_KIND)
    cfg = dict(ckpt.config)
    cfg["frame_channels"] = tuple(cfg.get("frame_channels", (16, 32, 64, 128)))
    cfg.setdefault("modality_dropout", 0.0)  # checkpoints from before the option were trained without it
    state = dict(ckpt.state_dict)
    if cfg.get("audio_flatten", "channel-mel") == "channel-mel":  # written before BYOL-A's flatten order was fixed
        key = "encoders.a.fc.0.weight"
        if key in state and not cfg.get("audio_encoder"):
            state[key] = channel_major_to_mel_major(state[key], int(cfg.get("audio_channels", 16)))
    cfg["audio_flatten"] = "mel-channel"
    model = FunnyNet(FunnyNetConfig(**cfg))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("encoders.v.model.")]:
        raise StorylabError(f"{Path(path).name} does not match the FunnyNet-W architecture it describes")
    return model.eval()


@torch.no_grad()
def predict(model: FunnyNet, inputs: ClipInputs, batch_size: int = 32) -> np.ndarray:
    """Probability that each clip is funny (is followed by laughter)."""
    model.eval()
    probs = []
    for s in range(0, len(inputs), batch_size):
        logits, _ = model(inputs.batch(slice(s, s + batch_size)))
        probs.append(torch.softmax(logits, -1)[:, 1])
    return torch.cat(probs).numpy() if probs else np.zeros(0)


def classification_scores(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """F1, accuracy, precision and recall with funny as the positive class (FunnyNet-W's metrics)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    pred = (probs >= threshold).astype(int)
    return {"f1": float(f1_score(labels, pred, zero_division=0)), "acc": float(accuracy_score(labels, pred)),
            "precision": float(precision_score(labels, pred, zero_division=0)),
            "recall": float(recall_score(labels, pred, zero_division=0)), "clips": int(len(labels))}
