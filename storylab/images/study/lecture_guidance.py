"""Two guidance experiments of Wang et al. 2024 ("Analysis of Classifier-Free Guidance Weight Schedulers").

* :func:`run_removal_sweep` - the negative-perturbation experiment that motivates the schedulers
  (the paper's Sec. 3): CFG is removed from one part of sampling, [0, a] (the noisiest part first),
  [b, 1], or a sliding window of width ``width``, with ``remove:start=..,stop=..`` schedules; FID
  and adherence against the removed window, at each scale, beside constant CFG (nothing removed).
* :func:`run_code_slide_loops` - the paper's Figure 1 loops literally, in Ho & Salimans' convention
  eps = (w + 1) eps_c - w eps_u: constant w = 2, constant w = 14, and the clamp-linear
  w_t = max(1, w0 * 2 * t / T) (``clamp:linear:c=1@paper`` at scale w0 + 1), on the same seeds,
  with a grid of samples per loop and FID / adherence / diversity.

Both score like the schedule study (:func:`storylab.images.study.study.score_samples`) against the
test split, with the real-vs-real floor at the same n.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from storylab.images.defaults import DEFAULT_SAMPLER, default_steps, resolve_sampler
from storylab.errors import StorylabError
from storylab.guidance.names import SCHEDULE_VERSION
from storylab.io import atomic_path, atomic_savefig, atomic_write_json
from storylab.images.study.rule_study import sample_rule_cell
from storylab.images.study.study import real_reference, score_samples
from storylab.metrics.floor import fid_warning
from storylab.training.progress import progress_bar

FAMILIES = ("prefix", "suffix", "window")


def removal_windows(points: int, width: float) -> list[dict[str, Any]]:
    """The removed windows: [0, a] and [b, 1] for ``points`` values in (0, 1), and windows of ``width`` centred on them.

    a = b = c = k / (points + 1), k = 1..points; a sliding window [c - width/2, c + width/2] is cut to [0, 1].
    """
    if points < 1:
        raise StorylabError(f"--points must be >= 1, got {points}")
    if not 0 < width < 1:
        raise StorylabError(f"--window must be in (0, 1), got {width}")
    grid = [k / (points + 1) for k in range(1, points + 1)]
    out = []
    for x in grid:
        out.append({"family": "prefix", "at": x, "start": 0.0, "stop": x})
        out.append({"family": "suffix", "at": x, "start": x, "stop": 1.0})
        out.append({"family": "window", "at": x, "start": max(0.0, x - width / 2), "stop": min(1.0, x + width / 2)})
    for w in out:
        w["schedule"] = f"remove:start={w['start']:.4g},stop={w['stop']:.4g}"
    return out


def _setup(checkpoint: str | Path, per_class: int, seed: int, features: str | Path | None, floor_repeats: int):
    from storylab.images.networks.denoiser import load_digit_model
    from storylab.images.networks.feature_training import load_digit_feature_net

    model = load_digit_model(checkpoint)
    feature_net = load_digit_feature_net(features, data=model.config.data)
    labels = torch.arange(model.num_classes).repeat_interleave(per_class)
    ref = real_reference(feature_net, int(labels.shape[0]), seed, floor_repeats, data=model.config.data,
                         feature_net_path=features)
    warning = fid_warning(int(labels.shape[0]), ref["dim"])
    if warning:
        print(warning)
    return model, feature_net, labels, ref, warning


def _score_cell(model, feature_net, labels, ref, scale, spec, steps, seed, batch_size, bar) -> tuple[dict, torch.Tensor]:
    t0 = time.perf_counter()
    images, mean_scale, nfe = sample_rule_cell(model, labels, "cfg", {}, scale, spec, steps, seed, batch_size,
                                               on_batch=bar.advance)
    seconds = time.perf_counter() - t0
    metrics = score_samples(images, labels, feature_net, ref["test_feats"], ref["stats"])
    return {"schedule": spec, "scale": scale, "mean_scale": mean_scale, **metrics, "nfe_per_sample": nfe,
            "seconds": seconds}, images


def _floor(ref: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ref["floor"].items() if k != "fid_values"}


def run_removal_sweep(out: str | Path, checkpoint: str | Path, scales: Sequence[float], per_class: int, steps: int | None,
                      seed: int, points: int = 9, width: float = 0.2, features: str | Path | None = None,
                      floor_repeats: int = 10, batch_size: int = 64) -> dict[str, Any]:
    """Remove CFG from [0, a], [b, 1] or a sliding window; write study.json, table.md and removal.png into ``out``."""
    windows = removal_windows(points, width)
    model, feature_net, labels, ref, warning = _setup(checkpoint, per_class, seed, features, floor_repeats)
    steps = steps or default_steps(DEFAULT_SAMPLER, model.config.prediction, study=True)
    batches = -(-int(labels.shape[0]) // batch_size)
    cells: list[dict[str, Any]] = []
    with progress_bar("guidance removal", total=len(scales) * (len(windows) + 1) * batches) as bar:
        for scale in scales:
            base, _ = _score_cell(model, feature_net, labels, ref, scale, "constant", steps, seed, batch_size, bar)
            cells.append({**base, "family": "none", "at": None, "start": None, "stop": None})
            for w in windows:
                cell, _ = _score_cell(model, feature_net, labels, ref, scale, w["schedule"], steps, seed, batch_size, bar)
                cells.append({**cell, **w})
    n = int(labels.shape[0])
    result = {"experiment": "guidance removal (Wang et al. 2024, Sec. 3)", "data": model.config.data,
              "schedule_version": SCHEDULE_VERSION,
              "sampler": resolve_sampler(DEFAULT_SAMPLER, model.config.prediction), "steps": steps, "per_class": per_class,
              "seed": seed, "checkpoint": str(checkpoint), "n_fake": n, "n_real": ref["n_real"], "width": width,
              "fid_warning": warning, "real_vs_real": _floor(ref), "cells": cells}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "study.json", result)
    with atomic_path(out / "table.md") as tmp:
        Path(tmp).write_text(removal_table(result))
    plot_removal(result, out / "removal.png")
    return result


def _fmt(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def removal_table(result: dict[str, Any]) -> str:
    """Markdown table of the removal sweep: the removed window, its scale, FID, adherence, recall, NFE."""
    floor = result["real_vs_real"]
    lines = [f"Guidance removal on {result['data']}: n = {result['n_fake']} samples per cell, {result['sampler'].upper()} {result['steps']} "
             f"steps, FID against {result['n_real']} test images; real vs real (n = {floor.get('n_fake')}): "
             f"FID {_fmt(floor['fid'])} ± {_fmt(floor['fid_std'])} (mean ± std over class-balanced train subsets).", "",
             "| removed | scale | FID | adherence | recall | Vendi | NFE |", "|---|---|---|---|---|---|---|"]
    for c in result["cells"]:
        removed = "nothing (constant CFG)" if c["family"] == "none" else f"[{c['start']:.3g}, {c['stop']:.3g}]"
        lines.append(f"| {removed} | {c['scale']:g} | {_fmt(c['fid'])} | {_fmt(c['adherence'])} | {_fmt(c['recall'])} "
                     f"| {_fmt(c['vendi'])} | {c['nfe_per_sample']:.0f} |")
    return "\n".join(lines) + "\n"


def plot_removal(result: dict[str, Any], path: Path) -> None:
    """FID (top) and adherence (bottom) against the removed window, one column per family, one line per scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells, n = result["cells"], result["n_fake"]
    scales = sorted({c["scale"] for c in cells})
    titles = {"prefix": "removed [0, a] (noisiest first)", "suffix": "removed [b, 1]",
              "window": f"removed a window of width {result['width']:g}"}
    xlabels = {"prefix": "a (progress)", "suffix": "b (progress)", "window": "window centre (progress)"}
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4), dpi=110, sharex=True)
    for col, family in enumerate(FAMILIES):
        for row, (key, label) in enumerate((("fid", "FID (lower is better)"), ("adherence", "adherence"))):
            ax = axes[row][col]
            for i, scale in enumerate(scales):
                mine = sorted((c for c in cells if c["family"] == family and c["scale"] == scale), key=lambda c: c["at"])
                base = next(c for c in cells if c["family"] == "none" and c["scale"] == scale)
                ax.plot([c["at"] for c in mine], [c[key] for c in mine], marker="o", color=f"C{i}",
                        label=f"scale {scale:g}")
                ax.axhline(base[key], color=f"C{i}", linestyle="--", linewidth=1, label=f"constant, scale {scale:g}")
            if key == "fid":
                ax.axhline(result["real_vs_real"]["fid"], color="black", linestyle=":", linewidth=1,
                           label=f"real vs real (n = {n})")
                ax.set_title(titles[family], fontsize=9)
            ax.set_ylabel(label if col == 0 else "")
            ax.set_xlabel(xlabels[family] if row == 1 else "")
            ax.grid(alpha=0.3)
    axes[0][2].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"guidance removed from one part of sampling, n = {n} samples per point", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.86, 0.96))
    atomic_savefig(fig, path)
    plt.close(fig)


def code_slide_loops(w0: float) -> list[dict[str, Any]]:
    """Figure 1's loops as (label, scale, SPEC): w = 2, w = 14 and w_t = max(1, w0 * 2 * t / T) (Ho's w = scale - 1)."""
    if not w0 >= 1:
        raise StorylabError(f"--w0 must be >= 1 (the clamp floors w at 1), got {w0}")
    return [{"loop": "w = 2", "scale": 3.0, "schedule": "constant"},
            {"loop": "w = 14", "scale": 15.0, "schedule": "constant"},
            {"loop": f"w = max(1, {w0:g} * 2 t / T)", "scale": w0 + 1.0, "schedule": "clamp:linear:c=1@paper"}]


def run_code_slide_loops(out: str | Path, checkpoint: str | Path, per_class: int, steps: int | None, seed: int,
                         w0: float = 2.0, features: str | Path | None = None, floor_repeats: int = 10,
                         batch_size: int = 64, show: int = 8) -> dict[str, Any]:
    """The three loops on the same seeds: study.json, table.md and loops.png (``show`` samples per class each)."""
    loops = code_slide_loops(w0)
    model, feature_net, labels, ref, warning = _setup(checkpoint, per_class, seed, features, floor_repeats)
    steps = steps or default_steps(DEFAULT_SAMPLER, model.config.prediction, study=True)
    batches = -(-int(labels.shape[0]) // batch_size)
    cells, grids = [], []
    with progress_bar("code-slide loops", total=len(loops) * batches) as bar:
        for loop in loops:
            cell, images = _score_cell(model, feature_net, labels, ref, loop["scale"], loop["schedule"], steps, seed,
                                       batch_size, bar)
            cells.append({**loop, **cell})
            keep = torch.cat([images[labels == c][:show] for c in range(model.num_classes)])
            grids.append(keep)
    n = int(labels.shape[0])
    result = {"experiment": "Wang et al. 2024, Figure 1's loops", "data": model.config.data,
              "schedule_version": SCHEDULE_VERSION,
              "sampler": resolve_sampler(DEFAULT_SAMPLER, model.config.prediction), "steps": steps, "per_class": per_class,
              "seed": seed, "checkpoint": str(checkpoint), "w0": w0, "n_fake": n, "n_real": ref["n_real"],
              "fid_warning": warning, "real_vs_real": _floor(ref), "cells": cells}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "study.json", result)
    lines = [f"Figure 1's loops on {result['data']}: n = {n} samples per loop, {result['sampler'].upper()} {steps} steps, the same seeds; "
             f"real vs real (n = {result['real_vs_real'].get('n_fake')}): FID {_fmt(result['real_vs_real']['fid'])} ± "
             f"{_fmt(result['real_vs_real']['fid_std'])} (mean ± std over class-balanced train subsets).", "",
             "| loop | SPEC, scale | FID | adherence | recall | Vendi | mean scale |", "|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {c['loop']} | {c['schedule']}, {c['scale']:g} | {_fmt(c['fid'])} | {_fmt(c['adherence'])} | "
                     f"{_fmt(c['recall'])} | {_fmt(c['vendi'])} | {c['mean_scale']:.3g} |")
    with atomic_path(out / "table.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    plot_loops(cells, grids, model.num_classes, min(show, per_class), out / "loops.png")
    return result


def plot_loops(cells: list[dict[str, Any]], grids: list[torch.Tensor], num_classes: int, show: int, path: Path) -> None:
    """One panel of samples per loop (rows = classes, the same seeds in every panel), its metrics in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from storylab.images.study.grid import grid_array

    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 4.8), dpi=110)
    for ax, cell, images in zip(np.atleast_1d(axes), cells, grids):
        ax.imshow(grid_array(images, nrow=show, upscale=max(1, 32 // images.shape[-1])), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{cell['loop']}\nFID {_fmt(cell['fid'])}, adherence {_fmt(cell['adherence'])}, "
                     f"Vendi {_fmt(cell['vendi'])}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
