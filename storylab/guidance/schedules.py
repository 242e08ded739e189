"""Guidance-weight schedules w(t) (Wang et al. 2024, "Analysis of Classifier-Free Guidance Weight Schedulers").

Conventions (fixed, used everywhere in storylab):

* The public ``scale`` follows diffusers: eps = eps_u + scale (eps_c - eps_u), so scale 1 is the
  plain conditional prediction. A schedule modulates the guidance *above* conditional,
  w = scale - 1 (the Ho & Salimans w of eps = (w + 1) eps_c - w eps_u); shape 0 means purely
  conditional. For classifier guidance the modulated strength is gamma itself.
* Shapes are functions of sampling progress p in [0, 1] (p = 1 at the last step), so "linear"
  *increases* from noise to data, as in the paper's Figure 1 code where the model sees T - t.
  With the lecture's diffusion time t (t = T is noise), p = (T - t) / T and the heuristics read:
  linear p, invlinear 1 - p, cosine 1 - cos(pi p), sine 1 + cos(pi p), V-shape max(p, 1 - p)
  (invlinear for the first half of sampling, linear for the second: high at both ends, half height
  in the middle), Λ-shape min(p, 1 - p) (the opposite composition, peak in the middle).
* Step grid: ``endpoints`` (default) puts the steps at p_i = i / (N - 1), first step p = 0;
  ``paper`` (spec suffix ``@paper``) uses Figure 1's t / T with t = 1..N, p_i = (i + 1) / N;
  ``start`` (``@start``) p_i = i / N, the loop index of diffusers' pipelines (CogVideoX's dynamic CFG).
* Heuristic shapes are mean-normalised so the average guidance equals the constant baseline (the
  paper's factor 2 in ``w0 * 2 * t / T``): over the actual steps on the endpoints grid, by the
  shape's mean over [0, 1] on the paper grid (so clamp-linear@paper is Figure 1's code literally).
  A shape that is zero at every step (Λ with fewer than 3 steps) falls back to constant.
* ``pcs:s=<s>`` is the lecture's parametrised cosine, literally: w(t, s) = (1 - cos(pi ((T - t)/T)^s)) / 2 * w,
  *not* normalised (its value at the last step is w). ``pcs-mean:s=<s>`` is the mean-normalised
  variant (schedule version 1's ``pcs``).
* ``pcs-dec:s=<s>`` is the decreasing parametrised cosine (1 - cos(pi (1 - p)^s)) / 2 * w, value w at
  p = 0; ``pcs-dec:s=5@start`` is CogVideoX's ``use_dynamic_cfg`` after diffusers PR #13172,
  s_i = 1 + w (1 - cos(pi ((N - i) / N)^5)) / 2.
* ``v-shape@slide`` / ``lambda-shape@slide`` read the slide's formulas literally (linear(t) = 1 - t/T,
  V = invlinear(t) for t < T/2 else linear(t), t = T noisiest): t < T/2 is the *second* half of
  sampling, so the literal V-shape is min(p, 1 - p) (a peak mid-sampling) and the literal Λ-shape
  max(p, 1 - p): the names' shapes and the slide's formulas are swapped. Plain ``v-shape`` keeps the name's shape.
* ``piecewise:3x3+7x45`` (stable-diffusion.cpp's syntax) and ``list:1,2,3`` / ``list:<file>`` give the
  *absolute* scale of every step (the nominal scale is not used): piecewise counts are steps (they
  must add up to the number of steps) or, written with a decimal point, fractions of sampling that
  add up to 1 (step i belongs to the piece whose cumulative fractions hold i / N). A rule whose
  strength is the scale itself (classifier gamma, PAG's s, CFG++'s lambda) reads the values as that.
* ``remove:start=a,stop=b`` is the complement of ``interval``: guided everywhere except a <= p <= b
  (the lecture's negative-perturbation experiment: removing guidance from one part of sampling).
* ``clamp:<shape>:c=<floor>`` floors the modulated w at c after normalisation (w = max(c, w(t)),
  Figure 1's ``max(1, ...)``), which raises the mean above the baseline, as in the paper. The floor
  is defined for a guidance weight w >= 0 only: a scale below 1 (w < 0) with a clamp is an error.
* ``interval:start=a,stop=b`` guides with the full w only while a <= p <= b (Kynkäänniemi et al.
  2024 in progress units); ``diffusers-interval:start=a,stop=b`` uses diffusers' guider convention
  int(a N) <= i < int(b N) for porting settings; ``interval:sigma_lo=lo,sigma_hi=hi`` is the paper's
  own definition on the noise level, guiding where lo < sigma_t <= hi (sigma = s / a of the step:
  sqrt((1 - alpha-bar) / alpha-bar) for DDPM/DDIM, sigma for EDM). Outside it w = 0 and the sampler
  skips the unconditional pass.

The values are computed in float64 numpy (``*_array`` methods), so that ``storylab guidance weights``
answers without importing torch (about 2 s); the tensor methods (:meth:`WeightSchedule.strengths`,
:meth:`WeightSchedule.scales`, :func:`sampling_progress`) convert at the boundary to the samplers.

Schedules may be added, but never changed: saved studies depend on these definitions. When a
definition does change, :data:`SCHEDULE_VERSION` is bumped and studies record it (README changelog).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from storylab.errors import StorylabError
from storylab.guidance.names import GRIDS, SCHEDULE_VERSION, SPEC_HELP

if TYPE_CHECKING:
    import torch

# Shapes of progress p (a float64 numpy array), before mean normalisation.
SHAPES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "constant": lambda p: np.ones_like(p),
    "linear": lambda p: p,
    "invlinear": lambda p: 1 - p,
    "cosine": lambda p: 1 - np.cos(math.pi * p),
    "sine": lambda p: 1 + np.cos(math.pi * p),
    "v-shape": lambda p: np.maximum(p, 1 - p),
    "lambda-shape": lambda p: np.minimum(p, 1 - p),
}
ALIASES = {"v": "v-shape", "vshape": "v-shape", "lambda": "lambda-shape", "Λ-shape": "lambda-shape",
           "λ-shape": "lambda-shape", "λ": "lambda-shape", "Λ": "lambda-shape", "lambdashape": "lambda-shape",
           "static": "constant"}

__all__ = ["GRIDS", "SCHEDULE_VERSION", "SHAPES", "WeightSchedule", "check_scale", "parse_schedule",
           "progress_array", "sampling_progress"]


def _tensor(values: np.ndarray) -> torch.Tensor:
    """The float64 tensor of a schedule's values (torch is imported here, not with this module)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))


def _float64_array(values: Any) -> np.ndarray:
    """A flat float64 array of step sigmas given as a list, an array or a (any-device) tensor."""
    if hasattr(values, "detach"):  # a torch tensor, possibly on an accelerator or requiring grad
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def progress_array(num_steps: int, grid: str = "endpoints") -> np.ndarray:
    """Progress p_i of each sampling step: i / (N - 1) (``endpoints``; ``[1.0]`` for one step), (i + 1) / N (``paper``) or i / N (``start``)."""
    if num_steps < 1:
        raise StorylabError(f"steps must be >= 1, got {num_steps}")
    if grid == "paper":
        return np.arange(1, num_steps + 1, dtype=np.float64) / num_steps
    if grid == "start":
        return np.arange(num_steps, dtype=np.float64) / num_steps
    if grid != "endpoints":
        raise StorylabError(f"unknown step grid '{grid}' (choose from {', '.join(GRIDS)})")
    if num_steps == 1:
        return np.ones(1, dtype=np.float64)
    return np.linspace(0, 1, num_steps, dtype=np.float64)


def sampling_progress(num_steps: int, grid: str = "endpoints") -> torch.Tensor:
    """:func:`progress_array` as a float64 tensor."""
    return _tensor(progress_array(num_steps, grid))


def _continuous_mean(fn: Callable[[np.ndarray], np.ndarray]) -> float:
    # Midpoint rule on 2^16 cells: exact to ~1e-10 for these smooth (or piecewise-linear) shapes.
    n = 1 << 16
    return float(fn((np.arange(n, dtype=np.float64) + 0.5) / n).mean())


@dataclass(frozen=True)
class WeightSchedule:
    """A guidance-weight schedule: a shape of progress, an optional floor and an optional interval."""

    shape: str = "constant"
    exponent: float | None = None  # pcs / pcs-mean only
    floor: float | None = None  # clamp
    interval: tuple[float, float] | None = None  # progress interval (closed)
    interval_convention: str = "closed"  # or "diffusers": int(start N) <= i < int(stop N)
    sigma_interval: tuple[float, float] | None = None  # (sigma_lo, sigma_hi]
    invert: bool = False  # remove: guided outside the interval
    values: tuple[float, ...] | None = None  # list: one absolute scale per step
    pieces: tuple[tuple[float, float], ...] | None = None  # piecewise: (scale, steps or fraction)
    piece_unit: str = "steps"  # or "fraction"
    grid: str = "endpoints"
    spec: str = field(default="constant", compare=False)

    @property
    def needs_sigma(self) -> bool:
        """True when the weight depends on the noise level of the step (a sigma interval)."""
        return self.sigma_interval is not None

    @property
    def absolute(self) -> bool:
        """True for ``list`` and ``piecewise``: the schedule gives each step's scale itself."""
        return self.values is not None or self.pieces is not None

    def absolute_scales(self, num_steps: int) -> np.ndarray:
        """The per-step scales of a ``list`` or ``piecewise`` schedule; a count that does not fit is one clear line."""
        if self.values is not None:
            if len(self.values) != num_steps:
                raise StorylabError(f"schedule '{self.spec}' has {len(self.values)} values but sampling has {num_steps} steps")
            return np.asarray(self.values, dtype=np.float64)
        if self.pieces is None:
            raise StorylabError(f"schedule '{self.spec}' is not a list of scales")
        if self.piece_unit == "steps":
            total = int(sum(count for _, count in self.pieces))
            if total != num_steps:
                raise StorylabError(f"schedule '{self.spec}' covers {total} steps but sampling has {num_steps} steps")
            return np.concatenate([np.full(int(count), scale) for scale, count in self.pieces]).astype(np.float64)
        bounds = np.cumsum([count for _, count in self.pieces])
        position = np.arange(num_steps, dtype=np.float64) / num_steps
        index = np.minimum(np.searchsorted(bounds, position + 1e-12, side="right"), len(self.pieces) - 1)
        return np.asarray([self.pieces[k][0] for k in index], dtype=np.float64)

    def _shape_fn(self) -> Callable[[np.ndarray], np.ndarray]:
        if self.shape in ("pcs", "pcs-mean"):
            s = self.exponent
            return lambda p: (1 - np.cos(math.pi * p ** s)) / 2
        if self.shape == "pcs-dec":
            s = self.exponent
            return lambda p: (1 - np.cos(math.pi * (1 - p) ** s)) / 2
        return SHAPES[self.shape]

    def shape_values(self, num_steps: int) -> torch.Tensor:
        """The shape over ``num_steps`` steps in sampling order (mean-normalised unless pcs or an interval)."""
        return _tensor(self.shape_array(num_steps))

    def shape_array(self, num_steps: int) -> np.ndarray:
        """:meth:`shape_values` as a float64 numpy array."""
        p = progress_array(num_steps, self.grid)
        if self.sigma_interval is not None:
            raise StorylabError(f"schedule '{self.spec}' depends on the noise level: call strengths(..., sigmas=...)")
        if self.absolute:
            raise StorylabError(f"schedule '{self.spec}' gives absolute scales, not a shape: use scales()")
        if self.interval is not None:
            start, stop = self.interval
            if self.interval_convention == "diffusers":
                i = np.arange(num_steps)
                return ((i >= int(start * num_steps)) & (i < int(stop * num_steps))).astype(np.float64)
            inside = (p >= start - 1e-12) & (p <= stop + 1e-12)
            return (~inside if self.invert else inside).astype(np.float64)
        fn = self._shape_fn()
        values = fn(p)
        if self.shape in ("pcs", "pcs-dec"):
            return values  # the lecture's formula, literally: value 1 (times w) at p = 1 (pcs-dec: at p = 0)
        mean = values.mean() if self.grid == "endpoints" else _continuous_mean(fn)
        if np.abs(values).max() <= 1e-12 or mean <= 1e-12:
            return np.ones_like(p)
        return values / mean

    def strengths(self, num_steps: int, strength: float, sigmas: Sequence[float] | torch.Tensor | None = None) -> torch.Tensor:
        """Per-step guidance strength w_i (w = scale - 1 for CFG, gamma for classifier guidance).

        ``sigmas`` (the noise level sigma_i = s_i / a_i of each step) is needed by sigma intervals only.
        """
        return _tensor(self.strengths_array(num_steps, strength, sigmas))

    def strengths_array(self, num_steps: int, strength: float,
                        sigmas: Sequence[float] | torch.Tensor | None = None) -> np.ndarray:
        """:meth:`strengths` as a float64 numpy array."""
        if self.absolute:
            return self.absolute_scales(num_steps) - 1.0  # w_i = s_i - 1 (diffusers convention)
        if self.floor is not None and strength < 0:
            raise StorylabError(f"schedule '{self.spec}': clamp floors a guidance weight w >= 0 (scale >= 1), "
                                f"but this scale gives w = {strength:g}; use a scale >= 1 or drop the clamp")
        if self.sigma_interval is not None:
            if sigmas is None:
                raise StorylabError(f"schedule '{self.spec}' depends on the noise level: pass the step sigmas")
            sig = _float64_array(sigmas)
            if sig.size != num_steps:
                raise StorylabError(f"schedule '{self.spec}': got {sig.size} sigmas for {num_steps} steps")
            lo, hi = self.sigma_interval
            return strength * ((sig > lo) & (sig <= hi)).astype(np.float64)
        w = strength * self.shape_array(num_steps)
        if self.floor is not None:
            w = np.maximum(w, self.floor)
        return w

    def strength_at(self, step: int, num_steps: int, strength: float, sigma: float | None = None) -> float:
        """The strength of one step; a sigma interval reads the step's own noise level ``sigma``."""
        if self.sigma_interval is not None:
            if sigma is None:
                raise StorylabError(f"schedule '{self.spec}' depends on the noise level: pass the step's sigma")
            lo, hi = self.sigma_interval
            return strength if lo < sigma <= hi else 0.0
        return float(self.strengths_array(num_steps, strength)[step])

    def scales(self, num_steps: int, scale: float, sigmas: Sequence[float] | torch.Tensor | None = None) -> torch.Tensor:
        """Per-step diffusers-convention scales s_i = 1 + w_i in sampling order (first = noisiest)."""
        return _tensor(self.scales_array(num_steps, scale, sigmas))

    def scales_array(self, num_steps: int, scale: float,
                     sigmas: Sequence[float] | torch.Tensor | None = None) -> np.ndarray:
        """:meth:`scales` as a float64 numpy array."""
        check_scale(scale)
        if self.absolute:
            return self.absolute_scales(num_steps)
        return 1.0 + self.strengths_array(num_steps, scale - 1.0, sigmas)


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
        if key in out:
            raise StorylabError(f"schedule '{spec}': parameter '{key}' is given twice (give each parameter once)")
        out[key] = _number(value, key, spec)
    return out


def _parse_interval(name: str, rest: str, text: str, spec: str) -> WeightSchedule:
    allowed = ("start", "stop") if name in ("diffusers-interval", "remove") else ("start", "stop", "sigma_lo", "sigma_hi")
    params = _params(rest, text, allowed)
    if "sigma_lo" in params or "sigma_hi" in params:
        if "start" in params or "stop" in params:
            raise StorylabError(f"schedule '{spec}': give either start/stop (progress) or sigma_lo/sigma_hi, not both")
        lo, hi = params.get("sigma_lo", 0.0), params.get("sigma_hi", math.inf)
        if not 0 <= lo < hi:
            raise StorylabError(f"schedule '{spec}': need 0 <= sigma_lo < sigma_hi, got sigma_lo={lo:g}, sigma_hi={hi:g}")
        return WeightSchedule(sigma_interval=(lo, hi), spec=text)
    start, stop = params.get("start", 0.0), params.get("stop", 1.0)
    if not 0 <= start <= stop <= 1:
        raise StorylabError(f"schedule '{spec}': need 0 <= start <= stop <= 1, got start={start:g}, stop={stop:g}")
    convention = "diffusers" if name == "diffusers-interval" else "closed"
    return WeightSchedule(interval=(start, stop), interval_convention=convention, spec=text)


def parse_schedule(spec: str | WeightSchedule | None, grid: str | None = None) -> WeightSchedule:
    """Parse a schedule SPEC (the same names in the CLI, Python and config files).

    SPEC is one of: ``constant``, ``linear``, ``invlinear``, ``cosine``, ``sine``, ``v-shape``,
    ``lambda-shape``, ``clamp:<shape>:c=<floor>``, ``pcs:s=<exponent>``, ``pcs-mean:s=<exponent>``,
    ``interval:start=<a>,stop=<b>``, ``diffusers-interval:start=<a>,stop=<b>``,
    ``interval:sigma_lo=<lo>,sigma_hi=<hi>``, optionally followed by ``@paper`` or ``@endpoints``
    (the step grid). ``grid`` applies when the SPEC names none (default ``endpoints``).
    """
    if spec is None:
        return WeightSchedule(grid=grid or "endpoints", spec="constant")
    if isinstance(spec, WeightSchedule):
        return spec if grid is None else replace(spec, grid=grid)
    text = spec.strip()
    body, *suffixes = text.split("@")
    slide = False
    for suffix in (x.strip().lower() for x in suffixes):
        if suffix == "slide":
            slide = True
        elif suffix in GRIDS:
            grid = suffix
        else:
            raise StorylabError(f"schedule '{spec}': unknown step grid '{suffix}' (choose from {', '.join(GRIDS)}, "
                                "or @slide for the slide's literal V/Λ formulas)")
    if not suffixes and grid is not None and grid not in GRIDS:
        raise StorylabError(f"unknown step grid '{grid}' (choose from {', '.join(GRIDS)})")
    schedule = _parse_body(body.strip(), text, spec)
    if slide:
        if schedule.shape not in _SLIDE_READING or schedule.interval is not None or schedule.absolute:
            raise StorylabError(f"schedule '{spec}': @slide applies to v-shape and lambda-shape only")
        schedule = replace(schedule, shape=_SLIDE_READING[schedule.shape])
    return replace(schedule, grid=grid or "endpoints", spec=text)


# The slide's literal formulas (t < T/2 is the second half of sampling) give the other name's shape.
_SLIDE_READING = {"v-shape": "lambda-shape", "lambda-shape": "v-shape"}


def _scale_value(text: str, spec: str) -> float:
    value = _number(text, "a scale", spec)
    if value < 0:
        raise StorylabError(f"schedule '{spec}': scales must be >= 0, got {value:g}")
    return value


def _parse_list(rest: str, text: str, spec: str) -> WeightSchedule:
    from pathlib import Path

    items = rest.replace(",", " ").split()
    if not items:
        raise StorylabError(f"schedule '{spec}': list needs scales, e.g. list:3,3,5,7 or list:<file>")
    try:
        [float(v) for v in items]
    except ValueError:
        path = Path(rest.strip())
        if not path.is_file():
            raise StorylabError(f"schedule '{spec}': list needs numbers or a file of numbers, and no file "
                                f"'{path}' exists") from None
        items = path.read_text().replace(",", " ").split()
        if not items:
            raise StorylabError(f"schedule '{spec}': the file '{path}' holds no scales")
    return WeightSchedule(values=tuple(_scale_value(v, spec) for v in items), spec=text)


def _parse_piecewise(rest: str, text: str, spec: str) -> WeightSchedule:
    pieces, decimal = [], []
    for part in filter(None, (x.strip() for x in rest.split("+"))):
        scale, sep, count = part.lower().partition("x")
        if not sep:
            raise StorylabError(f"schedule '{spec}': expected <scale>x<steps> pieces joined by '+', got '{part}'")
        value = _scale_value(scale.strip(), spec)
        amount = _number(count.strip(), "a piece's length", spec)
        if amount <= 0:
            raise StorylabError(f"schedule '{spec}': a piece's length must be > 0, got '{count.strip()}'")
        decimal.append("." in count or "e" in count.lower())
        if not decimal[-1] and int(amount) != amount:
            raise StorylabError(f"schedule '{spec}': a piece's step count must be an integer, got '{count.strip()}'")
        pieces.append((value, amount))
    if not pieces:
        raise StorylabError(f"schedule '{spec}': piecewise needs pieces, e.g. piecewise:3x3+7x45")
    if any(decimal) and not all(decimal):
        raise StorylabError(f"schedule '{spec}': give every piece in steps (3x3) or every piece as a fraction (3x0.1), not both")
    unit = "fraction" if decimal[0] else "steps"
    if unit == "fraction" and not math.isclose(sum(a for _, a in pieces), 1.0, abs_tol=1e-9):
        raise StorylabError(f"schedule '{spec}': fractions must add up to 1, got {sum(a for _, a in pieces):g}")
    return WeightSchedule(pieces=tuple(pieces), piece_unit=unit, spec=text)


def _parse_body(body: str, text: str, spec: str) -> WeightSchedule:
    name, _, rest = body.partition(":")
    name = ALIASES.get(name.strip(), ALIASES.get(name.strip().lower(), name.strip().lower()))
    if name in SHAPES:
        if rest:
            raise StorylabError(f"schedule '{spec}': '{name}' takes no parameters")
        return WeightSchedule(shape=name, spec=text)
    if name == "list":
        return _parse_list(rest, text, spec)
    if name == "piecewise":
        return _parse_piecewise(rest, text, spec)
    if name in ("pcs", "pcs-mean", "pcs-dec"):
        params = _params(rest, text, ("s",))
        if "s" not in params:
            raise StorylabError(f"schedule '{spec}': {name} needs an exponent, e.g. {name}:s=0.5")
        if params["s"] <= 0:
            raise StorylabError(f"schedule '{spec}': pcs exponent s must be > 0, got {params['s']:g}")
        return WeightSchedule(shape=name, exponent=params["s"], spec=text)
    if name == "clamp":
        inner, sep, floor_part = rest.rpartition(":")
        if not sep or not inner or not floor_part.strip().startswith("c="):
            raise StorylabError(f"schedule '{spec}': expected clamp:<shape>:c=<floor>, e.g. clamp:linear:c=2")
        floor = _params(floor_part, text, ("c",))["c"]
        if floor < 0:
            raise StorylabError(f"schedule '{spec}': the clamp floor c must be >= 0, got {floor:g}")
        base = _parse_body(inner, text, spec)
        if base.interval is not None or base.sigma_interval is not None or base.floor is not None or base.absolute:
            raise StorylabError(f"schedule '{spec}': clamp takes a shape, not '{inner}'")
        return WeightSchedule(shape=base.shape, exponent=base.exponent, floor=floor, spec=text)
    if name in ("interval", "diffusers-interval"):
        return _parse_interval(name, rest, text, spec)
    if name == "remove":
        removed = _parse_interval(name, rest, text, spec)
        return replace(removed, invert=True)
    raise StorylabError(f"unknown schedule '{spec}' (choose from {SPEC_HELP})")
