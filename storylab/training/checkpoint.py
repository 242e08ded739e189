"""Checkpoints: safetensors weights with storylab metadata, plus an atomic resume state.

A storylab checkpoint is one ``.safetensors`` file whose metadata records what it is
(``storylab.kind``, e.g. ``digits-denoiser``), the model configuration as JSON and any extra facts
(training command, seed, class count). Loading checks the kind, so a ControlNet checkpoint handed to
the digit sampler fails with one clear line instead of a shape error deep inside PyTorch.

The resume state (optimizer, step, EMA, RNG) is a separate ``<name>.state.pt`` file written with
``torch.save``; both are written to a temporary name and renamed, so a killed run never leaves a
half-written file and resumes from the last complete one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from storylab.errors import StorylabError
from storylab.io import atomic_path

FORMAT_VERSION = "1"


@dataclass
class Checkpoint:
    """A loaded checkpoint: tensors, its kind, its model configuration and extra metadata."""

    state_dict: dict[str, torch.Tensor]
    kind: str
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], kind: str,
                    config: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Save ``state_dict`` as safetensors with storylab metadata, atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    metadata = {
        "storylab.format": FORMAT_VERSION,
        "storylab.kind": kind,
        "storylab.config": json.dumps(config, sort_keys=True),
        "storylab.extra": json.dumps(extra or {}, sort_keys=True),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """Return the raw safetensors metadata of ``path``; raise :class:`StorylabError` if unreadable."""
    p = Path(path)
    if not p.exists():
        raise StorylabError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise StorylabError(f"checkpoint is a folder, not a file: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise StorylabError(f"not a storylab checkpoint (unreadable safetensors): {p}") from exc


def load_checkpoint(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None) -> Checkpoint:
    """Load a storylab checkpoint, checking that it is one and (optionally) of the expected kind."""
    meta = read_metadata(path)
    if "storylab.kind" not in meta:
        raise StorylabError(f"not a storylab checkpoint (no storylab metadata): {path}")
    found = meta["storylab.kind"]
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and found not in kinds:
        raise StorylabError(f"{path} is a '{found}' checkpoint, expected {' or '.join(repr(k) for k in kinds)}")
    state = load_file(str(path))
    return Checkpoint(state_dict=state, kind=found, config=json.loads(meta.get("storylab.config", "{}")),
                      extra=json.loads(meta.get("storylab.extra", "{}")))


def state_path_for(path: str | os.PathLike) -> Path:
    """The resume-state file that belongs to checkpoint ``path``."""
    p = Path(path)
    return p.with_name(p.stem + ".state.pt")


def save_resume_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Save a resume state (optimizer, step, EMA, RNG) atomically with ``torch.save``."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_resume_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """Load a resume state, or ``None`` when there is none; a corrupt file is a clear error."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        return torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged pickle
        raise StorylabError(f"resume state is unreadable: {p} ({type(exc).__name__}); delete it to start over") from exc


def restore_resume_state(state: dict[str, Any], model: torch.nn.Module, stateful: dict[str, Any],
                         ema: Any | None = None) -> int:
    """Load a resume state into ``model``, the named optimizers/schedulers and the EMA; return its step.

    ``stateful`` maps keys of the saved state (``"optimizer"``, ``"scheduler"``, a GAN's ``"opt_g"``
    and ``"opt_d"``) to the objects that take them back with ``load_state_dict``; the torch RNG is
    restored too, so a resumed run draws what the uninterrupted run would have drawn.
    """
    model.load_state_dict(state["model"])
    for key, obj in stateful.items():
        obj.load_state_dict(state[key])
    if ema is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    torch.set_rng_state(state["rng"])
    return int(state["step"])
