"""The images wing's interactive panels: guided sample grids, ControlNet from a sketch, zoo samples.

Plain functions over the shipped checkpoints, returning arrays, tables and numbers; the web app
(``storylab app``) and ``storylab demo`` call them and decide how to show the result. Models are
loaded once per process (:func:`functools.lru_cache`), so a second click costs only the sampling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from storylab.errors import StorylabError
from storylab.images.assets import ASSETS, DENOISER, shipped
from storylab.images.defaults import DEFAULT_SAMPLER, STUDY_STEPS, resolve_sampler

# data set name -> its shipped denoiser checkpoint (class names come from storylab.images.data.datasets,
# imported only when a panel runs, so that importing the panels stays free of torch).
DATASETS: dict[str, Path] = {
    "digits": DENOISER,
    "fashion-mnist": shipped("fashion-mnist", "denoiser"),
}
CONTROL_KINDS = ("canny", "scribble")


def check_dataset(dataset: str) -> tuple[Path, tuple[str, ...]]:
    """The checkpoint and class names of a data set, or one clear line naming the choices."""
    if dataset not in DATASETS:
        raise StorylabError(f"unknown data set '{dataset}' (choose from {', '.join(DATASETS)})")
    from storylab.images.data.datasets import resolve

    path, names = DATASETS[dataset], resolve(dataset).class_names
    if not path.exists():
        raise StorylabError(f"no shipped denoiser for '{dataset}' at {path}")
    return path, names


@lru_cache(maxsize=4)
def _denoiser(path: str) -> Any:
    from storylab.images.networks.denoiser import load_digit_model

    return load_digit_model(path)


@lru_cache(maxsize=4)
def _controlnet(kind: str, base_path: str) -> Any:
    from storylab.images.control.controlnet import load_controlnet

    path = ASSETS / f"controlnet_{kind}.safetensors"
    if not path.exists():
        raise StorylabError(f"no shipped ControlNet for '{kind}' ({path})")
    return load_controlnet(path, _denoiser(base_path))


@dataclass
class GridResult:
    """A sample grid (rows = classes) as a uint8 image, its row names and what it cost."""

    image: np.ndarray            # (H, W) uint8, one row per class
    class_names: list[str]
    per_class: int
    nfe: int                     # network evaluations per sample (a batched k-branch call counts k)
    seconds: float
    schedule: str
    weights: list[float] = field(default_factory=list)   # per-step guidance scale s_i
    samples: np.ndarray | None = None  # (N, H, W) uint8, class-major (class 0's samples first)
    sampler: str = ""            # the sampler that drew it (``auto`` resolved for the model)


def guidance_grid(dataset: str = "digits", rule: str = "cfg", scale: float = 3.0, schedule: str = "constant",
                  sampler: str = DEFAULT_SAMPLER, steps: int = STUDY_STEPS, seed: int = 0, per_class: int = 1,
                  negative_class: int | None = None) -> GridResult:
    """One guided sample per class (``per_class`` each) with the shipped denoiser; rows are classes.

    The rule, scale convention and schedule grammar are those of :mod:`storylab.guidance`
    (diffusers convention: scale 1 = conditional; schedules of Wang et al. 2024). The rules with a
    negative branch (negative, negative3) steer every sample away from ``negative_class``.
    """
    import torch

    from storylab.guidance import make_rule
    from storylab.guidance.names import RULE_NETWORKS
    from storylab.guidance.schedules import parse_schedule
    from storylab.images.networks.denoiser import sample_digits
    from storylab.images.study.grid import grid_array

    if not 1 <= int(steps) <= 1000:
        raise StorylabError(f"steps must be between 1 and 1000, got {steps}")
    if not 1 <= int(per_class) <= 16:
        raise StorylabError(f"samples per class must be between 1 and 16, got {per_class}")
    if rule == "classifier":
        raise StorylabError("classifier guidance needs its classifier: use `storylab sample digits --guidance classifier`")
    path, names = check_dataset(dataset)
    weights = parse_schedule(schedule).scales(int(steps), float(scale)).tolist()  # a bad spec fails before sampling
    guidance = make_rule(rule)
    guide = None
    if rule in RULE_NETWORKS and RULE_NETWORKS[rule] == "weak":
        guide_path = shipped(dataset, "guide")
        if not guide_path.exists():
            raise StorylabError(f"AutoGuidance needs a weak guide model, and none is shipped for '{dataset}' ({guide_path})")
        guide = _denoiser(str(guide_path))
    labels = torch.arange(len(names)).repeat_interleave(int(per_class))
    negative = None
    if guidance.needs_negative:
        if negative_class is None or not 0 <= int(negative_class) < len(names):
            raise StorylabError(f"guidance '{rule}' steers away from a class: give a negative class between 0 and "
                                f"{len(names) - 1}")
        negative = torch.full_like(labels, int(negative_class))
    model = _denoiser(str(path))
    t0 = time.perf_counter()
    with torch.inference_mode():
        images, guided = sample_digits(model, labels, guidance, float(scale), schedule, sampler, int(steps), int(seed),
                                       negative=negative, return_model=True, guide=guide)
    seconds = time.perf_counter() - t0
    grid = grid_array(images, nrow=int(per_class), upscale=max(1, round(48 / images.shape[-1])))  # 48 px tiles
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    return GridResult(grid, list(names), int(per_class), int(guided.nfe), seconds, schedule, weights, pixels,
                      resolve_sampler(sampler, model.config.prediction))


def weight_curves(specs: list[str], scale: float, steps: int) -> dict[str, list[float]]:
    """Per-step guidance scale s_i = 1 + w_i of each schedule SPEC (sampling order, first = noisiest)."""
    from storylab.guidance.schedules import parse_schedule

    if not 1 <= int(steps) <= 1000:
        raise StorylabError(f"steps must be between 1 and 1000, got {steps}")
    return {spec: parse_schedule(spec).scales(int(steps), float(scale)).tolist() for spec in specs}


@dataclass
class ControlResult:
    """A condition map, controlled samples and the base model's on the same noise, and their fidelity."""

    condition: np.ndarray        # (S, S) float in [0, 1]
    controlled: np.ndarray       # (H, W) uint8 grid
    base: np.ndarray             # (H, W) uint8 grid
    metric: str
    fidelity_controlled: float
    fidelity_base: float
    seconds: float


def sketch_to_gray(image: Any) -> np.ndarray:
    """A drawn or uploaded picture (H, W[, 3|4]) as gray in [0, 255], ink bright on a dark background.

    A sketch pad gives dark strokes on white (or on transparent); the digits have bright ink on black,
    so a mostly light picture is inverted. An empty picture is one clear error.
    """
    if image is None:
        raise StorylabError("draw a sketch or upload an image first")
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim == 3 and arr.shape[2] == 4:  # RGBA: composite over white (transparent = paper)
        alpha = arr[..., 3:] / 255.0
        arr = arr[..., :3] * alpha + 255.0 * (1 - alpha)
    gray = arr.mean(2) if arr.ndim == 3 else arr
    if gray.ndim == 2 and gray.mean() > 127:  # dark strokes on light paper -> bright ink on black
        gray = 255.0 - gray
    if gray.ndim != 2 or gray.size == 0 or float(gray.max() - gray.min()) < 1.0:
        raise StorylabError("the sketch is empty: draw a few strokes (or upload an image with a visible shape)")
    return gray.astype(np.float32)


def control_samples(image: Any, kind: str = "scribble", control_scale: float = 1.0, start: float = 0.0, end: float = 1.0,
                    label: int | None = None, count: int = 8, steps: int = 20, seed: int = 0,
                    guidance_scale: float = 3.0) -> ControlResult:
    """Extract ``kind`` from a sketch, sample ``count`` digits with the shipped ControlNet and without it (same noise).

    ControlNet (Zhang et al. 2023) residuals are scaled by ``control_scale`` and applied only while
    sampling progress is inside [start, end]; ``label=None`` samples without a class (no CFG).
    """
    import torch

    from storylab.images.control.conditions import check_kind, condition_fidelity, extract
    from storylab.images.control.controlnet import Control, ControlledDenoiser
    from storylab.images.networks.denoiser import sample_digits
    from storylab.images.study.grid import grid_array

    kind = check_kind(kind)
    if kind not in CONTROL_KINDS:
        raise StorylabError(f"no shipped ControlNet for '{kind}' (choose from {', '.join(CONTROL_KINDS)})")
    if not 1 <= int(count) <= 32:
        raise StorylabError(f"count must be between 1 and 32, got {count}")
    net = _controlnet(kind, str(DENOISER))
    base = _denoiser(str(DENOISER))
    cond = torch.from_numpy(extract(kind, sketch_to_gray(image), size=net.config.cond_size, seed=seed))[None, None]
    cond_b = cond.expand(int(count), -1, -1, -1)
    labels = torch.full((int(count),), base.null_class) if label is None else torch.full((int(count),), int(label))
    rule, g = ("none", 1.0) if label is None else ("cfg", float(guidance_scale))
    t0 = time.perf_counter()
    dn = ControlledDenoiser(base, [Control(net, cond_b, float(control_scale), float(start), float(end))])
    with torch.inference_mode():
        controlled = sample_digits(base, labels, rule, g, "constant", DEFAULT_SAMPLER, int(steps), int(seed), denoiser=dn,
                                   conditions=dn.conditions(labels, base.null_class, False), on_step=dn.observe)
        plain = sample_digits(base, labels, rule, g, "constant", DEFAULT_SAMPLER, int(steps), int(seed))
    seconds = time.perf_counter() - t0
    f_c, f_b = condition_fidelity(kind, controlled, cond_b), condition_fidelity(kind, plain, cond_b)
    return ControlResult(cond[0, 0].numpy(), grid_array(controlled, nrow=int(count), upscale=6),
                         grid_array(plain, nrow=int(count), upscale=6), f_c.metric, f_c.mean, f_b.mean, seconds)


def zoo_samples(families: tuple[str, ...] | None = None, per_class: int = 4, seed: int = 0) -> list[dict[str, Any]]:
    """Samples of every shipped zoo model (rows = classes for conditional ones), with sizes and timings."""
    import torch

    from storylab.images.study.grid import grid_array
    from storylab.images.zoo import FAMILIES, load_zoo_model
    from storylab.images.zoo.common import shipped_path

    out = []
    for family in families or FAMILIES:
        path = shipped_path(family)
        if not path.exists():
            continue
        model = load_zoo_model(path, family)
        labels = torch.arange(10).repeat_interleave(int(per_class))
        t0 = time.perf_counter()
        with torch.inference_mode():
            images = model.sample(labels, torch.Generator().manual_seed(int(seed)))
        out.append({"family": family, "grid": grid_array(images, nrow=int(per_class) * 5, upscale=4),
                    "conditional": bool(model.conditional), "parameters": model.num_parameters(),
                    "seconds": time.perf_counter() - t0, "count": int(labels.shape[0])})
    return out
