"""What every zoo family shares: the model contract, checkpoints of kind ``zoo-<family>``, training.

Every family is a :class:`ZooModel` with the same small surface, so that the CLI, the sample
command and ``storylab evaluate zoo`` treat them alike:

* ``loss(images, labels) -> (loss, logs)`` - the family's objective (one optimiser; the GAN has its
  own two-optimiser loop in :mod:`storylab.images.zoo.gan`);
* ``sample(labels, generator)`` - new images ``(B, 1, s, s)`` in [-1, 1] (unconditional models ignore
  the labels but draw one sample per entry); s is the data set's image size (8 for the digits, 28
  for Fashion-MNIST / MNIST), recorded with the data set's name in every family's config;
* ``reconstruct(images, labels)`` - decode(encode(x)), or ``None`` where the model has no encoder;
* ``encode`` / ``decode`` - the latent used by the interpolation grids.

Checkpoints are storylab safetensors files of kind ``zoo-<family>`` whose config records the
family's dataclass (with ``data`` and ``image_size``), so a VAE checkpoint handed to ``storylab sample gan``,
or a digits checkpoint handed to a Fashion-MNIST command, fails with one clear line.
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from storylab.errors import StorylabError
from storylab.images.zoo.registry import family_classes
from storylab.training import TrainConfig, load_checkpoint, read_metadata, save_checkpoint, state_path_for, train

KIND_PREFIX = "zoo-"
DEFAULT_DATA = "digits"  # what a checkpoint without a ``data`` field (every one before data sets) was trained on


def kind_for(family: str) -> str:
    """Checkpoint kind of a family, e.g. ``zoo-vae``."""
    return KIND_PREFIX + family


def check_positive(value: float, name: str, integer: bool = True) -> None:
    """Raise :class:`StorylabError` unless ``value`` is a positive (integer) number."""
    if integer and (int(value) != value or value < 1):
        raise StorylabError(f"{name} must be a positive integer, got {value}")
    if not integer and not (math.isfinite(value) and value > 0):
        raise StorylabError(f"{name} must be a positive number, got {value}")


def check_image_spec(config: Any) -> None:
    """A family config's ``data`` must be a non-empty name and its ``image_size`` one the conv nets can halve."""
    from storylab.images.zoo.nets import down_stages

    if not isinstance(config.data, str) or not config.data:
        raise StorylabError(f"data must be a data set name, got {config.data!r}")
    down_stages(config.image_size)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A family config dataclass as a JSON-ready dict."""
    return asdict(config)


def config_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass, ignoring unknown keys (checkpoints from newer versions)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


class ZooModel(nn.Module):
    """Base class of every family: the contract the CLI and the evaluation rely on."""

    family: ClassVar[str] = ""
    config_cls: ClassVar[type] = object

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    @property
    def num_classes(self) -> int:
        return int(getattr(self.config, "num_classes", 0))

    @property
    def data(self) -> str:
        """The data set the model was trained on (``digits``, ``fashion-mnist``, ``mnist`` or ``idx:<folder>``)."""
        return str(getattr(self.config, "data", DEFAULT_DATA))

    @property
    def image_size(self) -> int:
        """Side of the square images the model reads and draws (8 for the digits, 28 for Fashion-MNIST)."""
        return int(getattr(self.config, "image_size", 8))

    @property
    def conditional(self) -> bool:
        """Whether samples are drawn for requested classes (adherence is then meaningful)."""
        return self.num_classes > 0

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def reconstruct(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
        """decode(encode(x)) in [-1, 1]; ``None`` for models without an encoder (GAN)."""
        return self.decode(self.encode(images, labels), labels)

    def encode(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latent: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, label_a: torch.Tensor, label_b: torch.Tensor,
                    steps: int) -> torch.Tensor:
        """Decode ``steps`` points on the straight line between the latents of real digits ``a`` and ``b``.

        ``a``, ``b``: ``(P, 1, s, s)`` pairs; returns ``(P * steps, 1, s, s)``, one row per pair.
        Conditional models interpolate the one-hot label too (a soft label in the middle).
        """
        za, zb = self.encode(a, label_a), self.encode(b, label_b)
        w = torch.linspace(0, 1, steps)
        rows = []
        for i in range(a.shape[0]):
            shape = (steps,) + (1,) * (za.ndim - 1)
            z = torch.lerp(za[i:i + 1].expand(steps, *za.shape[1:]), zb[i:i + 1].expand(steps, *zb.shape[1:]),
                           w.reshape(shape))
            labels = self.interpolated_labels(label_a[i], label_b[i], w)
            rows.append(self.decode(z, labels))
        return torch.cat(rows)

    def interpolated_labels(self, la: torch.Tensor, lb: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Soft one-hot labels ``(steps, C)`` from ``la`` to ``lb`` (unconditional models: ``la`` repeated)."""
        if not self.conditional:
            return la.reshape(1).expand(w.shape[0]).clone()
        eye = torch.eye(self.num_classes)
        return torch.lerp(eye[int(la)].expand(w.shape[0], -1), eye[int(lb)].expand(w.shape[0], -1), w[:, None])

    def num_parameters(self) -> int:
        """Number of stored parameters (everything needed to sample, e.g. the VQ-VAE's prior)."""
        return sum(p.numel() for p in self.parameters())

    def after_load(self) -> None:
        """Hook for a family to rebuild derived state after its weights are loaded."""


def save_zoo_model(path: str | Path, model: ZooModel, extra: dict[str, Any] | None = None) -> Path:
    """Save ``model`` as a storylab safetensors checkpoint of kind ``zoo-<family>`` (atomic)."""
    config = {"family": model.family, **config_to_dict(model.config)}
    return save_checkpoint(path, model.state_dict(), kind_for(model.family), config, extra)


def checkpoint_family(path: str | Path) -> str:
    """The family a checkpoint holds; a clear error for files that are not zoo checkpoints."""
    kind = read_metadata(path).get("storylab.kind", "")
    if not kind.startswith(KIND_PREFIX):
        raise StorylabError(f"{path} is not a model-zoo checkpoint (kind '{kind or 'none'}')")
    return kind[len(KIND_PREFIX):]


def check_data_matches(path: str | Path, found: str, expected: str) -> None:
    """One clear line when a checkpoint trained on data set ``found`` is used for ``expected``."""
    if found != expected:
        raise StorylabError(f"{path} was trained on '{found}', not '{expected}' (pass a checkpoint trained on "
                            f"'{expected}', or choose the data set '{found}')")


def load_zoo_model(path: str | Path, family: str | None = None, data: str | None = None) -> ZooModel:
    """Load a zoo checkpoint (of ``family`` and data set ``data`` if given) in eval mode; mismatches are one clear line."""
    classes = family_classes()
    if family is not None and family not in classes:
        raise StorylabError(f"unknown model family '{family}' (choose from {', '.join(classes)})")
    found = checkpoint_family(path)
    if family is not None and found != family:
        raise StorylabError(f"{path} is a '{found}' checkpoint, expected '{family}'")
    if found not in classes:
        raise StorylabError(f"{path} holds unknown family '{found}'")
    cls = classes[found]
    ckpt = load_checkpoint(path, kind_for(found))
    config = config_from_dict(cls.config_cls, ckpt.config)
    if data is not None:
        check_data_matches(path, str(getattr(config, "data", DEFAULT_DATA)), data)
    model = cls(config)
    try:
        model.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        raise StorylabError(f"{path}: weights do not match the recorded {found} configuration") from exc
    model.after_load()
    model.extra = ckpt.extra  # type: ignore[attr-defined]
    return model.eval()


def load_data_split(data: str, split: str = "train") -> Any:
    """``split`` of data set ``data`` (images ``(N, 1, s, s)`` in [-1, 1], labels ``(N,)``) via the wing's data sets."""
    from storylab.images.data.datasets import load_split

    return load_split(data, split)


def data_loader(data: str, batch_size: int, seed: int = 0, split: str = "train") -> torch.utils.data.DataLoader:
    """Shuffled DataLoader of ``(images, labels)`` over a fixed split of data set ``data``."""
    part = load_data_split(data, split)
    return tensor_loader((part.images, part.labels), batch_size, seed)


def tensor_loader(tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int = 0) -> torch.utils.data.DataLoader:
    """Shuffled DataLoader over tensors (drop_last so batch statistics are never taken on a stub)."""
    check_positive(batch_size, "batch size")
    dataset = torch.utils.data.TensorDataset(*tensors)
    return torch.utils.data.DataLoader(dataset, batch_size=min(batch_size, len(dataset)), shuffle=True, drop_last=True,
                                       generator=torch.Generator().manual_seed(seed))


def fit(model: ZooModel, out: str | Path, train_config: TrainConfig, batch_size: int = 128, resume: bool = True,
        extra: dict[str, Any] | None = None, loss_fn: Callable | None = None,
        loader: torch.utils.data.DataLoader | None = None, parameters: Any = None, state_path: Path | None = None,
        description: str | None = None, save_model: Callable[[nn.Module], ZooModel] | None = None) -> dict[str, Any]:
    """Train a one-optimiser family with the shared Accelerate loop; save EMA weights to ``out``.

    Returns ``{"seconds", "loss", "history", "model"}`` where ``model`` is the saved (EMA) model.
    ``save_model`` maps the trained module to the ZooModel to save (used when only a part trains).
    """
    out = Path(out)
    state_path = state_path or state_path_for(out)
    if not resume and state_path.exists():
        state_path.unlink()
    saved: dict[str, ZooModel] = {}

    def save(raw: nn.Module, ema: nn.Module | None, step: int) -> None:
        chosen = ema if ema is not None else raw
        target = save_model(chosen) if save_model is not None else chosen
        save_zoo_model(out, target, {**(extra or {}), "step": step})
        saved["model"] = target

    loss_fn = loss_fn or (lambda m, batch: m.loss(batch[0], batch[1]))
    state = train(model, loss_fn, loader or data_loader(model.data, batch_size, train_config.seed), train_config,
                  save_fn=save, state_path=state_path, parameters=parameters,
                  description=description or f"train {model.family}")
    # under several processes only the main one saved; the others read what it wrote (the loop waited for it)
    final = saved["model"] if "model" in saved else load_zoo_model(out) if out.exists() else model
    return {"seconds": state.losses.get("seconds", 0.0), "loss": state.losses.get("loss", float("nan")),
            "history": state.history, "model": final.eval()}


@torch.no_grad()
def batched(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor | None, batch_size: int = 512) -> torch.Tensor:
    """``fn`` applied to slices of ``batch_size`` rows of ``tensors`` (``None`` passes through), concatenated:
    the same result as one call, without holding the activations of a whole split (60,000 images) at once."""
    n = next(t for t in tensors if t is not None).shape[0]
    return torch.cat([fn(*(t[i:i + batch_size] if t is not None else None for t in tensors))
                      for i in range(0, n, batch_size)])


@torch.no_grad()
def reconstruction_error(model: ZooModel, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float | None:
    """Mean squared error per pixel (images in [-1, 1]) of decode(encode(x)); ``None`` without an encoder."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, images.shape[0], batch_size):
        rec = model.reconstruct(images[i:i + batch_size], labels[i:i + batch_size])
        if rec is None:
            return None
        total += float(((rec - images[i:i + batch_size]) ** 2).sum())
        count += rec.numel()
    return total / count


def shipped_path(family: str, data: str = DEFAULT_DATA) -> Path:
    """The shipped checkpoint of ``family`` for ``data``: ``zoo_<family>`` (digits), ``<data>_zoo_<family>`` otherwise."""
    from storylab.images.assets import zoo_checkpoint

    return zoo_checkpoint(family, data)
