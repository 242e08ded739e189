"""Guidance-weight schedules w(t) (Wang et al. 2024, "Analysis of Classifier-Free Guidance Weight Schedulers").

Conventions (fixed, used everywhere in storylab):

* The public ``scale`` follows diffusers: eps = eps_u + scale (eps_c - eps_u), so scale 1 is the
  plain conditional prediction. A schedule modulates the guidance *above* conditional,
  w = scale - 1 (the Ho & Salimans w of eps = (w + 1) eps_c - w eps_u); shape 0 means purely
  conditional. For classifier guidance the modulated strength is gamma itself.
* Shapes are functions of sampling progress p in [0, 1] (p = 0 at the first, noisiest step, p = 1 at
  the last), so "linear" *increases* from noise to data, as in the paper's Figure 1 code where the
  model sees T - t. With t/T = 1 - p, the paper's heuristics become: linear p, invlinear 1 - p,
  cosine 1 - cos(pi p), sine 1 + cos(pi p), V-shape |1 - 2p| (high at both ends), Λ-shape
  1 - |1 - 2p| (peak in the middle), parametrized cosine pcs (1 - cos(pi p^s)) / 2.
* Every shape is mean-normalised over the actual sampling steps, so its average guidance equals the
  constant baseline (the paper's factor 2 in ``w0 * 2 * t / T``). A shape that is zero at every step
  (Λ with fewer than 3 steps) falls back to constant.
* ``clamp:<shape>:c=<floor>`` floors the modulated w at c after normalisation (w = max(c, w(t)),
  Figure 1's ``max(1, ...)``), which raises the mean above the baseline, as in the paper.
* ``interval:start=a,stop=b`` guides with the full w only while a <= p <= b (Kynkäänniemi et al.
  2024); outside it w = 0 and the sampler skips the unconditional pass.

Schedules may be added, but never changed: saved studies depend on these definitions.

The values are computed in float64 with NumPy, so that ``storylab guidance weights`` answers without
importing torch (about 2 s); the public methods return torch tensors for the samplers, and
:meth:`WeightSchedule.scale_list` plain floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from typing import TYPE_CHECKING

import numpy as np

from storylab.errors import StorylabError
from storylab.guidance.names import SPEC_HELP

if TYPE_CHECKING:
    import torch

SHAPES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "constant": lambda p: np.ones_like(p),
    "linear": lambda p: p,
    "invlinear": lambda p: 1 - p,
    "cosine": lambda p: 1 - np.cos(math.pi * p),
    "sine": lambda p: 1 + np.cos(math.pi * p),
    "v-shape": lambda p: np.abs(1 - 2 * p),
    "lambda-shape": lambda p: 1 - np.abs(1 - 2 * p),
}
ALIASES = {"v": "v-shape", "vshape": "v-shape", "lambda": "lambda-shape", "Λ-shape": "lambda-shape",
           "Λ": "lambda-shape", "lambdashape": "lambda-shape", "static": "constant"}


def _progress(num_steps: int) -> np.ndarray:
    if num_steps < 1:
        raise StorylabError(f"steps must be >= 1, got {num_steps}")
    if num_steps == 1:
        return np.ones(1, dtype=np.float64)
    return np.linspace(0, 1, num_steps, dtype=np.float64)


def _tensor(values: np.ndarray) -> "torch.Tensor":
    import torch

    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))


def sampling_progress(num_steps: int) -> "torch.Tensor":
    """Progress p_i = i / (N - 1) of each sampling step (0 = noisiest); ``[1.0]`` for one step."""
    return _tensor(_progress(num_steps))


@dataclass(frozen=True)
class WeightSchedule:
    """A guidance-weight schedule: a shape of progress, an optional floor and an optional interval."""

    shape: str = "constant"
    exponent: float | None = None  # pcs only
    floor: float | None = None  # clamp
    interval: tuple[float, float] | None = None
    spec: str = field(default="constant", compare=False)

    def _shape(self, num_steps: int) -> np.ndarray:
        p = _progress(num_steps)
        if self.interval is not None:
            start, stop = self.interval
            return ((p >= start - 1e-12) & (p <= stop + 1e-12)).astype(np.float64)
        if self.shape == "pcs":
            values = (1 - np.cos(math.pi * p ** self.exponent)) / 2
        else:
            values = SHAPES[self.shape](p)
        mean = values.mean()
        if mean <= 1e-12:
            return np.ones_like(p)
        return values / mean

    def _strengths(self, num_steps: int, strength: float) -> np.ndarray:
        w = strength * self._shape(num_steps)
        return np.maximum(w, self.floor) if self.floor is not None else w

    def shape_values(self, num_steps: int) -> "torch.Tensor":
        """The mean-normalised shape over ``num_steps`` steps (mean 1 unless it is an interval)."""
        return _tensor(self._shape(num_steps))

    def strengths(self, num_steps: int, strength: float) -> "torch.Tensor":
        """Per-step guidance strength w_i (w = scale - 1 for CFG, gamma for classifier guidance)."""
        return _tensor(self._strengths(num_steps, strength))

    def scales(self, num_steps: int, scale: float) -> "torch.Tensor":
        """Per-step diffusers-convention scales s_i = 1 + w_i in sampling order (first = noisiest)."""
        return _tensor(np.asarray(self.scale_list(num_steps, scale)))

    def scale_list(self, num_steps: int, scale: float) -> list[float]:
        """:meth:`scales` as plain floats, computed without torch (for the CLI and plots)."""
        check_scale(scale)
        return (1.0 + self._strengths(num_steps, scale - 1.0)).tolist()


def check_scale(scale: float) -> None:
    """Reject a guidance scale below 0 (or not a finite number) with one clear line."""
    if not math.isfinite(scale) or scale < 0:
        raise StorylabError(f"guidance scale must be a finite number >= 0, got {scale}")


def _number(text: str, what: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise StorylabError(f"schedule '{spec}': {what} must be a number, got '{text}'") from None
    if not math.isfinite(value):
        raise StorylabError(f"schedule '{spec}': {what} must be finite, got '{text}'")
    return value


def _params(text: str, spec: str, allowed: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        if "=" not in part:
            raise StorylabError(f"schedule '{spec}': expected name=value, got '{part}'")
        key, value = (x.strip() for x in part.split("=", 1))
        if key not in allowed:
            raise StorylabError(f"schedule '{spec}': unknown parameter '{key}' (expected {', '.join(allowed)})")
        out[key] = _number(value, key, spec)
    return out


def parse_schedule(spec: str | WeightSchedule | None) -> WeightSchedule:
    """Parse a schedule SPEC (the same names in the CLI, Python and config files).

    SPEC is one of: ``constant``, ``linear``, ``invlinear``, ``cosine``, ``sine``, ``v-shape``,
    ``lambda-shape``, ``clamp:<shape>:c=<floor>``, ``pcs:s=<exponent>``, ``interval:start=<a>,stop=<b>``.
    """
    if spec is None:
        return WeightSchedule()
    if isinstance(spec, WeightSchedule):
        return spec
    text = spec.strip()
    name, _, rest = text.partition(":")
    name = ALIASES.get(name.strip().lower(), name.strip().lower())
    if name in SHAPES:
        if rest:
            raise StorylabError(f"schedule '{spec}': '{name}' takes no parameters")
        return WeightSchedule(shape=name, spec=text)
    if name == "pcs":
        params = _params(rest, text, ("s",))
        if "s" not in params:
            raise StorylabError(f"schedule '{spec}': pcs needs an exponent, e.g. pcs:s=0.5")
        if params["s"] <= 0:
            raise StorylabError(f"schedule '{spec}': pcs exponent s must be > 0, got {params['s']:g}")
        return WeightSchedule(shape="pcs", exponent=params["s"], spec=text)
    if name == "clamp":
        inner, sep, floor_part = rest.rpartition(":")
        if not sep or not inner or not floor_part.strip().startswith("c="):
            raise StorylabError(f"schedule '{spec}': expected clamp:<shape>:c=<floor>, e.g. clamp:linear:c=2")
        floor = _params(floor_part, text, ("c",))["c"]
        base = parse_schedule(inner)
        if base.interval is not None or base.floor is not None:
            raise StorylabError(f"schedule '{spec}': clamp takes a shape, not '{inner}'")
        return WeightSchedule(shape=base.shape, exponent=base.exponent, floor=floor, spec=text)
    if name == "interval":
        params = _params(rest, text, ("start", "stop"))
        start, stop = params.get("start", 0.0), params.get("stop", 1.0)
        if not 0 <= start <= stop <= 1:
            raise StorylabError(f"schedule '{spec}': need 0 <= start <= stop <= 1, got start={start:g}, stop={stop:g}")
        return WeightSchedule(interval=(start, stop), spec=text)
    raise StorylabError(f"unknown schedule '{spec}' (choose from {SPEC_HELP})")
