"""Guidance rules beyond CFG: a weak model, an optimised scale, a projection, frequency bands, perturbed attention.

All combine the branch predictions of one step in the diffusers convention (scale 1 = conditional)
and, like diffusers' ``guiders``, work on the raw network outputs (eps, v or x_0):

* :class:`AutoGuidance` - Karras et al. 2024 ("Guiding a Diffusion Model with a Bad Version of
  Itself", eq. 1): eps = eps_weak + (w + 1)(eps_c - eps_weak), the weak branch a smaller or
  less-trained model with the same condition.
* :class:`CFGZeroStar` - Fan et al. 2025 (CFG-Zero*, eq. 7 and sec. 4.2): the unconditional branch
  scaled by s* = <eps_c, eps_u> / ||eps_u||^2 per sample, and a zero output for the first
  ``zero_init_steps`` steps.
* :class:`TangentialCFG` - Kwon et al. 2025 (TCFG, Algorithm 1): eps_u replaced by its projection
  onto the first right singular vector of the 2 x D matrix [eps_c; eps_u].
* :class:`FrequencyDecoupledGuidance` - Sadat et al. 2025 (FDG, Algorithm 2): CFG applied per level
  of a Laplacian pyramid (Burt & Adelson 1983), with a lower scale on the coarsest (low-frequency) level.
* :class:`APGMix` - adaptive projected guidance (Sadat et al. 2024, Algorithm 1) in prediction
  space after CFG warm-up steps, as diffusers' ``AdaptiveProjectedMixGuidance`` (HunyuanImage-2.1).
* :class:`PerturbedGuidance` - guidance away from a perturbed network: identity self-attention
  (PAG, Ahn et al. 2024, eq. 9-10), Gaussian-blurred queries (SEG, Hong 2024, eq. 8) or a skipped
  attention layer (skip-layer / spatiotemporal skip guidance, Hyung et al. 2024):
  eps = eps_u + s_cfg (eps_c - eps_u) + s (eps_c - eps_perturbed).

Rules with two strengths (FDG's two bands, APG-Mix's CFG and APG scales, perturbation + CFG) return
per-step pairs from :meth:`schedule_strengths`: the weight schedule modulates both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from storylab.diffusion.contract import Prediction, StepContext
from storylab.errors import StorylabError
from storylab.guidance.rules import GuidanceRule, near, rescale_guided
from storylab.guidance.schedules import WeightSchedule

PERTURBATIONS = ("identity", "blur", "skip")


def _check_rescale(phi: float) -> None:
    if not 0.0 <= phi <= 1.0:
        raise StorylabError(f"guidance rescale phi must be in [0, 1], got {phi}")


def _per_sample(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return value.reshape(-1, *([1] * (like.ndim - 1)))


@dataclass
class AutoGuidance(GuidanceRule):
    """AutoGuidance (Karras et al. 2024, eq. 1): eps = eps_weak + (w + 1)(eps_c - eps_weak).

    The ``weak`` branch is a separate network (an earlier checkpoint or a smaller width of the same
    model, same noise schedule), queried with the conditional condition. ``rescale`` is Lin et al.'s phi.
    """

    rescale: float = 0.0
    name: str = field(default="autoguidance", init=False)
    network_branches = ("weak",)
    raw_space = True

    def __post_init__(self) -> None:
        _check_rescale(self.rescale)

    def branches(self, w: float) -> tuple[str, ...]:
        return ("cond",) if near(w, 0.0) else ("cond", "weak")

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w: float) -> Prediction:
        if near(w, 0.0):
            return Prediction(eps["cond"])
        cond, weak = eps["cond"], eps["weak"]
        return Prediction(rescale_guided(weak + (w + 1.0) * (cond - weak), cond, self.rescale))


def zero_star_scale(cond: torch.Tensor, uncond: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """CFG-Zero*'s optimised scale s* = <v_c, v_u> / (||v_u||^2 + eps) per sample (Fan et al. 2025, eq. 7), shape (B,)."""
    c, u = cond.flatten(1).float(), uncond.flatten(1).float()
    return ((c * u).sum(1) / ((u * u).sum(1) + eps)).to(cond.dtype)


@dataclass
class CFGZeroStar(GuidanceRule):
    """CFG-Zero* (Fan et al. 2025): eps = s* eps_u + (w + 1)(eps_c - s* eps_u), zero output for the first steps.

    ``zero_init_steps`` steps (diffusers' default 1; the paper zeroes the first 4 % of a flow-matching
    ODE) return a zero raw output without evaluating the network. The paper derives it for flow
    matching's velocity; for an eps network the zero is eps = 0 (the step keeps x_t / alpha's direction),
    as diffusers' guider does on whatever the network predicts.
    """

    zero_init_steps: int = 1
    rescale: float = 0.0
    name: str = field(default="cfg-zero*", init=False)
    raw_space = True

    def __post_init__(self) -> None:
        _check_rescale(self.rescale)
        if self.zero_init_steps < 0 or int(self.zero_init_steps) != self.zero_init_steps:
            raise StorylabError(f"cfg-zero* zero_init_steps must be an integer >= 0, got {self.zero_init_steps}")
        self.zero_init_steps = int(self.zero_init_steps)

    def zero_step(self, ctx: StepContext) -> bool:
        return ctx.step < self.zero_init_steps

    def branches(self, w: float) -> tuple[str, ...]:
        return ("cond",) if near(w, 0.0) else ("cond", "uncond")

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w: float) -> Prediction:
        if near(w, 0.0):
            return Prediction(eps["cond"])
        cond = eps["cond"]
        uncond = eps["uncond"] * _per_sample(zero_star_scale(cond, eps["uncond"]), cond)
        return Prediction(rescale_guided(uncond + (w + 1.0) * (cond - uncond), cond, self.rescale))


@dataclass
class TangentialCFG(GuidanceRule):
    """Tangential CFG (Kwon et al. 2025, Algorithm 1): CFG with eps_u projected onto the leading singular direction.

    Per sample, V = the right singular vectors of the 2 x D matrix [eps_c; eps_u]; eps_u' = (eps_u . v_1) v_1
    drops eps_u's component along v_2 (the "tangential" one); then eps = eps_u' + (w + 1)(eps_c - eps_u').
    """

    rescale: float = 0.0
    name: str = field(default="tcfg", init=False)
    raw_space = True

    def __post_init__(self) -> None:
        _check_rescale(self.rescale)

    def branches(self, w: float) -> tuple[str, ...]:
        return ("cond",) if near(w, 0.0) else ("cond", "uncond")

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w: float) -> Prediction:
        if near(w, 0.0):
            return Prediction(eps["cond"])
        cond, uncond = eps["cond"], eps["uncond"]
        stacked = torch.stack([cond.flatten(1), uncond.flatten(1)], dim=1).float()  # (B, 2, D)
        v1 = torch.linalg.svd(stacked, full_matrices=False).Vh[:, 0]  # (B, D), unit norm; its sign cancels
        u = uncond.flatten(1).float()
        projected = ((u * v1).sum(1, keepdim=True) * v1).reshape(uncond.shape).to(cond.dtype)
        return Prediction(rescale_guided(projected + (w + 1.0) * (cond - projected), cond, self.rescale))


_PYRAMID_KERNEL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # Burt & Adelson's 5-tap binomial filter


def _blur(x: torch.Tensor) -> torch.Tensor:
    """The 5 x 5 binomial blur with reflect padding, per channel. x: (B, C, H, W) with H, W >= 3."""
    k1 = _PYRAMID_KERNEL.to(x)
    kernel = (k1[:, None] * k1[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def pyramid_down(x: torch.Tensor) -> torch.Tensor:
    """Blur, then bilinear down-sampling to (H // 2, W // 2) (kornia's ``pyrdown``)."""
    return F.interpolate(_blur(x), size=(x.shape[-2] // 2, x.shape[-1] // 2), mode="bilinear", align_corners=False)


def pyramid_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear up-sampling to ``size``, then blur (kornia's ``pyrup`` when size = 2 x the input)."""
    return _blur(F.interpolate(x, size=size, mode="bilinear", align_corners=False))


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid (Burt & Adelson 1983): ``levels`` bands, finest first, the last the Gaussian residual.

    x: (B, C, H, W). :func:`reconstruct_pyramid` inverts it exactly.
    """
    if levels < 1:
        raise StorylabError(f"a Laplacian pyramid needs >= 1 level, got {levels}")
    if x.ndim != 4:
        raise StorylabError(f"frequency-decoupled guidance needs image-shaped predictions (B, C, H, W), got {tuple(x.shape)}")
    if levels > 1 and min(x.shape[-2:]) // 2 ** (levels - 2) < 3:
        raise StorylabError(f"{levels} pyramid levels need images of at least {3 * 2 ** (levels - 2)} px, "
                            f"got {x.shape[-2]} x {x.shape[-1]}")
    gaussian = [x]
    for _ in range(levels - 1):
        gaussian.append(pyramid_down(gaussian[-1]))
    bands = [fine - pyramid_up(coarse, fine.shape[-2:]) for fine, coarse in zip(gaussian[:-1], gaussian[1:])]
    return bands + [gaussian[-1]]


def reconstruct_pyramid(bands: list[torch.Tensor]) -> torch.Tensor:
    """The image of a Laplacian pyramid: up-sample the residual and add each finer band."""
    image = bands[-1]
    for band in reversed(bands[:-1]):
        image = pyramid_up(image, band.shape[-2:]) + band
    return image


def _project(v: torch.Tensor, onto: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(parallel, orthogonal) parts of v with respect to ``onto``, per sample, in float64."""
    dims = tuple(range(1, v.ndim))
    v64, unit = v.double(), F.normalize(onto.double().flatten(1), dim=1).reshape(onto.shape)
    parallel = (v64 * unit).sum(dim=dims, keepdim=True) * unit
    return parallel.to(v.dtype), (v64 - parallel).to(v.dtype)


@dataclass
class FrequencyDecoupledGuidance(GuidanceRule):
    """Frequency-decoupled guidance (Sadat et al. 2025, Algorithm 2): CFG per Laplacian-pyramid band.

    The guided scale applies to the ``levels - 1`` finer bands, ``low_scale`` to the coarsest one
    (the paper: a low scale there keeps diversity and colour, a high one on details keeps quality).
    ``parallel_weight`` < 1 down-weights each band's shift component along eps_c (APG's projection).
    A schedule modulates both strengths: w_i = (scale - 1) shape_i, w_low,i = (low_scale - 1) shape_i.
    """

    low_scale: float = 1.0
    levels: int = 2
    parallel_weight: float = 1.0
    name: str = field(default="fdg", init=False)
    raw_space = True

    def __post_init__(self) -> None:
        if not math.isfinite(self.low_scale) or self.low_scale < 0:
            raise StorylabError(f"fdg low_scale must be a finite number >= 0, got {self.low_scale}")
        if int(self.levels) != self.levels or not 2 <= self.levels <= 6:
            raise StorylabError(f"fdg levels must be an integer from 2 to 6, got {self.levels}")
        self.levels = int(self.levels)

    def strength(self, scale: float) -> tuple[float, float]:
        return (scale - 1.0, self.low_scale - 1.0)

    def zero_strength(self) -> tuple[float, float]:
        return (0.0, 0.0)

    def schedule_strengths(self, schedule: WeightSchedule, num_steps: int, scale: float) -> torch.Tensor:
        return torch.stack([schedule.strengths(num_steps, scale - 1.0),
                            schedule.strengths(num_steps, self.low_scale - 1.0)], dim=1)

    def branches(self, w) -> tuple[str, ...]:
        return ("cond",) if all(near(v, 0.0) for v in w) else ("cond", "uncond")

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w) -> Prediction:
        w_high, w_low = w
        if near(w_high, 0.0) and near(w_low, 0.0):
            return Prediction(eps["cond"])
        cond_bands = laplacian_pyramid(eps["cond"], self.levels)
        uncond_bands = laplacian_pyramid(eps["uncond"], self.levels)
        guided = []
        for level, (c, u) in enumerate(zip(cond_bands, uncond_bands)):
            w_level = w_low if level == self.levels - 1 else w_high
            if near(w_level, 0.0):
                guided.append(c)
                continue
            shift = c - u
            if not near(self.parallel_weight, 1.0):
                parallel, orthogonal = _project(shift, c)
                shift = self.parallel_weight * parallel + orthogonal
            guided.append(u + (w_level + 1.0) * shift)
        return Prediction(reconstruct_pyramid(guided))


@dataclass
class APGMix(GuidanceRule):
    """CFG for the first steps, then adaptive projected guidance in prediction space (Sadat et al. 2024).

    Steps 0..``start_step`` use CFG at the guided scale and feed the momentum buffer (running =
    diff + momentum * running, diff = eps_c - eps_u); later steps use the running difference, capped
    at norm ``norm_threshold`` (0 = off), split along eps_c, eps = eps_u + s_apg (diff_orth + eta diff_par).
    ``apg_scale`` s_apg defaults to the guided scale. A schedule modulates both scales. Follows
    diffusers' ``AdaptiveProjectedMixGuidance`` (its defaults: momentum -0.5, norm 10, start step 5).
    """

    apg_scale: float | None = None
    eta: float = 0.0
    momentum: float = -0.5
    norm_threshold: float = 10.0
    start_step: int = 5
    name: str = field(default="apg-mix", init=False)
    raw_space = True
    _running: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.apg_scale is not None and (not math.isfinite(self.apg_scale) or self.apg_scale < 0):
            raise StorylabError(f"apg-mix apg_scale must be a finite number >= 0, got {self.apg_scale}")
        if self.norm_threshold < 0:
            raise StorylabError(f"apg-mix norm_threshold must be >= 0 (0 = off), got {self.norm_threshold}")
        if int(self.start_step) != self.start_step or self.start_step < 0:
            raise StorylabError(f"apg-mix start_step must be an integer >= 0, got {self.start_step}")
        self.start_step = int(self.start_step)

    def reset(self) -> None:
        self._running = None

    def _apg(self, scale: float) -> float:
        return scale if self.apg_scale is None else self.apg_scale

    def strength(self, scale: float) -> tuple[float, float]:
        return (scale - 1.0, self._apg(scale) - 1.0)

    def zero_strength(self) -> tuple[float, float]:
        return (0.0, 0.0)

    def schedule_strengths(self, schedule: WeightSchedule, num_steps: int, scale: float) -> torch.Tensor:
        return torch.stack([schedule.strengths(num_steps, scale - 1.0),
                            schedule.strengths(num_steps, self._apg(scale) - 1.0)], dim=1)

    def branches(self, w) -> tuple[str, ...]:
        return ("cond",) if near(w[0], 0.0) else ("cond", "uncond")

    def _update(self, diff: torch.Tensor) -> torch.Tensor:
        if self._running is not None and self._running.shape == diff.shape:
            diff = diff + self.momentum * self._running
        self._running = diff
        return diff

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w) -> Prediction:
        w_cfg, w_apg = w
        cond = eps["cond"]
        if near(w_cfg, 0.0):
            return Prediction(cond)
        uncond = eps["uncond"]
        if ctx.step <= self.start_step or near(w_apg, 0.0):
            self._update(cond - uncond)
            return Prediction(uncond + (w_cfg + 1.0) * (cond - uncond))
        diff = self._update(cond - uncond)
        if self.norm_threshold > 0:
            norm = _per_sample(diff.flatten(1).norm(dim=1), diff)
            diff = diff * torch.clamp(self.norm_threshold / norm, max=1.0)
        parallel, orthogonal = _project(diff, cond)
        return Prediction(uncond + (w_apg + 1.0) * (orthogonal + self.eta * parallel))


@dataclass
class PerturbedGuidance(GuidanceRule):
    """Guidance away from a perturbed network: eps = eps_u + s_cfg (eps_c - eps_u) + s (eps_c - eps_perturbed).

    The ``perturbed`` branch is the same network with its self-attention changed (the images wing
    builds it): ``identity`` attention map (PAG, Ahn et al. 2024, eq. 9-10), queries blurred by a
    Gaussian of ``blur_sigma`` (SEG, Hong 2024, eq. 8; inf = uniform attention), or the attention
    layer skipped (skip-layer guidance). The scale is s itself (0 = no perturbation guidance);
    ``cfg_scale`` (diffusers convention, 1 = off) adds CFG. A schedule modulates s and s_cfg - 1.
    With CFG off this is the paper's eps_c + s (eps_c - eps_perturbed); diffusers' PAG guider then
    computes eps_perturbed + s (eps_c - eps_perturbed), i.e. ours at s - 1.
    """

    perturbation: str = "identity"
    cfg_scale: float = 1.0
    blur_sigma: float = math.inf
    name: str = field(default="pag", init=False)
    network_branches = ("perturbed",)
    raw_space = True

    def __post_init__(self) -> None:
        if self.perturbation not in PERTURBATIONS:
            raise StorylabError(f"unknown attention perturbation '{self.perturbation}' (choose from {', '.join(PERTURBATIONS)})")
        if not math.isfinite(self.cfg_scale) or self.cfg_scale < 0:
            raise StorylabError(f"cfg_scale must be a finite number >= 0, got {self.cfg_scale}")
        if not self.blur_sigma > 0:
            raise StorylabError(f"seg blur_sigma must be > 0 (inf = uniform attention), got {self.blur_sigma}")
        self.name = {"identity": "pag", "blur": "seg", "skip": "slg"}[self.perturbation]

    def strength(self, scale: float) -> tuple[float, float]:
        return (scale, self.cfg_scale - 1.0)

    def zero_strength(self) -> tuple[float, float]:
        return (0.0, 0.0)

    def schedule_strengths(self, schedule: WeightSchedule, num_steps: int, scale: float) -> torch.Tensor:
        return torch.stack([schedule.strengths(num_steps, scale),
                            schedule.strengths(num_steps, self.cfg_scale - 1.0)], dim=1)

    def branches(self, w) -> tuple[str, ...]:
        s, w_cfg = w
        return ("cond",) + (() if near(w_cfg, 0.0) else ("uncond",)) + (() if near(s, 0.0) else ("perturbed",))

    def combine(self, eps: dict[str, torch.Tensor], ctx: StepContext, w) -> Prediction:
        s, w_cfg = w
        cond = eps["cond"]
        out = cond
        if not near(w_cfg, 0.0):
            out = eps["uncond"] + (w_cfg + 1.0) * (cond - eps["uncond"])
        if not near(s, 0.0):
            out = out + s * (cond - eps["perturbed"])
        return Prediction(out)
