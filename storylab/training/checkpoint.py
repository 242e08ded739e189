"""Checkpoints: safetensors weights with storylab metadata, plus an atomic resume state.

A storylab checkpoint is one ``.safetensors`` file whose metadata records what it is
(``storylab.kind``, e.g. ``digits-denoiser``), the model configuration as JSON and any extra facts
(training command, seed, class count). Loading checks the kind, so a ControlNet checkpoint handed to
the digit sampler fails with one clear line instead of a shape error deep inside PyTorch.

The resume state (model, optimizer, scheduler, EMA, RNG, step, config) is a separate
``<name>.state.safetensors`` file: its tensors are safetensors tensors and everything else (the
nesting, numbers, strings, tuples) is a JSON skeleton in the file's metadata. No pickle is ever
written or read, so a planted or downloaded state file can at worst be refused, never run code.
Both files are written to a temporary name and renamed, so a killed run never leaves a half-written
file and resumes from the last complete one.
"""

from __future__ import annotations

import json
import math
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
KNOWN_FORMATS = ("1",)  # the storylab.format versions this release reads


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
    check_format_version(meta, path)
    found = meta["storylab.kind"]
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and found not in kinds:
        raise StorylabError(f"{path} is a '{found}' checkpoint, expected {' or '.join(repr(k) for k in kinds)}")
    try:
        config, extra = json.loads(meta.get("storylab.config", "{}")), json.loads(meta.get("storylab.extra", "{}"))
    except json.JSONDecodeError as exc:
        raise StorylabError(f"{path}: its storylab metadata is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(config, dict) or not isinstance(extra, dict):
        raise StorylabError(f"{path}: its storylab metadata is not a JSON object")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise StorylabError(f"not a storylab checkpoint (unreadable safetensors): {path}") from exc
    check_finite(state, path)
    return Checkpoint(state_dict=state, kind=found, config=config, extra=extra)


def check_format_version(meta: dict[str, str], path: str | os.PathLike) -> None:
    """Refuse a file whose ``storylab.format`` is not one this release reads (a newer storylab wrote it).

    A file without the key is read as version 1 (the only version so far; early metric references
    omit it)."""
    version = meta.get("storylab.format", FORMAT_VERSION)
    if version not in KNOWN_FORMATS:
        raise StorylabError(f"{path}: unknown storylab.format version {version[:40]!r} "
                            f"(this storylab reads version {', '.join(KNOWN_FORMATS)}); was it written by a newer storylab?")


def check_finite(state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Refuse weights holding NaN or infinity: sampling from them gives a blank image with exit 0."""
    for name, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                raise StorylabError(f"{path}: tensor {name!r} holds {bad} non-finite value{'s' if bad != 1 else ''} "
                                    f"(NaN or infinity) of {tensor.numel()}; the checkpoint is broken (a diverged run?)")


STATE_SUFFIX = ".state.safetensors"
LEGACY_STATE_SUFFIX = ".state.pt"  # storylab <= 0.1 wrote pickles there; they are refused, never loaded
STATE_KIND = "resume-state"


def state_path_for(path: str | os.PathLike) -> Path:
    """The resume-state file that belongs to checkpoint ``path`` (``<stem>.state.safetensors``)."""
    p = Path(path)
    return p.with_name(p.stem + STATE_SUFFIX)


def _legacy_path(path: Path) -> Path | None:
    if path.name.endswith(STATE_SUFFIX):
        return path.with_name(path.name[: -len(STATE_SUFFIX)] + LEGACY_STATE_SUFFIX)
    return None


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON skeleton of ``obj``; every tensor goes into ``tensors`` and is referenced by name.

    Hand-written because no library stores an optimizer's nested state (int-keyed dicts, tuples,
    None, tensors) without pickle: safetensors holds flat tensors only, JSON no tensors.
    """
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().to("cpu").clone().contiguous()
        return {"tensor": name}
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return {"value": obj}
    if isinstance(obj, float):
        return {"value": obj} if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, dict):
        return {"dict": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"tuple": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return {"list": [_encode(v, tensors) for v in obj]}
    if hasattr(obj, "item") and hasattr(obj, "dtype"):  # a numpy scalar
        return _encode(obj.item(), tensors)
    raise TypeError(f"cannot store a {type(obj).__name__} in a resume state")


def _decode(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`_encode`; raises ValueError on anything it did not write."""
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError("malformed node")
    (tag, value), = node.items()
    if tag == "tensor":
        return tensors[value]
    if tag == "value":
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise ValueError("malformed value")
        return value
    if tag == "float":
        if value not in ("nan", "inf", "-inf"):
            raise ValueError("malformed float")
        return float(value)
    if tag == "dict":
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value}
    if tag == "tuple":
        return tuple(_decode(v, tensors) for v in value)
    if tag == "list":
        return [_decode(v, tensors) for v in value]
    raise ValueError(f"unknown tag {tag!r}")


def save_resume_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Save a resume state (optimizer, step, EMA, RNG, ...) atomically, as safetensors + JSON (no pickle)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, tensors)
    metadata = {"storylab.format": FORMAT_VERSION, "storylab.kind": STATE_KIND,
                "storylab.state": json.dumps(skeleton)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def load_resume_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """Load a resume state, or ``None`` when there is none.

    Only files written by :func:`save_resume_state` load. Anything else (a pickle, a damaged file,
    another safetensors file) is refused with one line; nothing in it is executed. An old pickle
    state (``<stem>.state.pt``) beside the checkpoint is refused too, with how to start fresh.
    """
    p = Path(path)
    fresh = "delete it to start fresh (or pass --no-resume)"
    if not p.exists():
        legacy = _legacy_path(p)
        if legacy is not None and legacy.exists():
            raise StorylabError(f"{legacy} is an old pickle resume state, which storylab no longer loads "
                                f"(a pickle can run code); {fresh}")
        return None
    if p.is_dir():
        raise StorylabError(f"resume state is a folder, not a file: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
            if meta.get("storylab.kind") != STATE_KIND or "storylab.state" not in meta:
                raise ValueError("not a resume state")
            check_format_version(meta, p)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        state = _decode(json.loads(meta["storylab.state"]), tensors)
        if not isinstance(state, dict):
            raise ValueError("not a dict")
        return state
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise StorylabError(f"resume state is not a storylab state file: {p}; {fresh}") from exc


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
