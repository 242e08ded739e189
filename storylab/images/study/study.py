"""The guidance-schedule study of Wang et al. 2024 on any image data set: every schedule x every mean scale.

For each cell it samples ``per_class`` images of every class with the same noise, then measures on
the data set's shipped feature network: FID against the test split's feature statistics (with the
real-vs-real floor of class-balanced train subsets of the same n beside it, mean ± spread),
precision/recall (k = 3), density/coverage (k = 5), diversity (Vendi score and mean pairwise
feature distance, averaged within each class, since guidance trades diversity *within* a class for
adherence), adherence (accuracy of the feature network's classifier on the requested classes),
network evaluations and wall time. Every cell also records the schedule's *actual* mean guidance
scale next to the nominal one (a clamp can raise it). Writes ``study.json`` and the paper-style plots.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from storylab.errors import StorylabError
from storylab.guidance.plots import plot_weights
from storylab.guidance.names import SCHEDULE_VERSION
from storylab.guidance.schedules import parse_schedule
from storylab.images.assets import ASSETS
from storylab.images.defaults import DEFAULT_SAMPLER, default_steps, resolve_sampler
from storylab.images.study.sampling import build_rule
from storylab.io import atomic_savefig, atomic_write_json
from storylab.metrics import (adherence, distribution_report, extract_features, mean_pairwise_distance, predict_classes,
                              vendi_score)
from storylab.metrics.floor import balanced_floor, balanced_subset, fid_warning
from storylab.metrics.frechet import frechet_distance_to_stats
from storylab.metrics.significance import bootstrap_interval
from storylab.training.progress import progress_bar

SHIPPED_STUDY = ASSETS / "fashion_mnist_study.json"  # the study of docs/fashion_mnist_study.md, for the demo
METRIC_KEYS = ("fid", "precision", "recall", "density", "coverage", "vendi", "pairwise", "adherence")


def parse_list(text: str) -> list[str]:
    """Split a schedule list on ';' (or on ',' when no ';' is present and no SPEC needs commas)."""
    parts = [p.strip() for p in (text.split(";") if ";" in text else text.split(",")) if p.strip()]
    if not parts:
        raise StorylabError("--schedules is empty")
    for spec in parts:
        parse_schedule(spec)
    return parts


def within_class_diversity(feats: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean over classes of the Vendi score and of the mean pairwise distance of that class's samples.

    Only classes with at least two samples have a diversity. When none has (a handful of samples spread
    over ten classes, as in the tiny test configurations), within-class diversity is undefined and both
    values are NaN, shown as "n/a" in the tables.
    """
    vendi, pairwise = [], []
    for c in labels.unique():
        sel = feats[labels == c]
        if sel.shape[0] >= 2:
            vendi.append(vendi_score(sel))
            pairwise.append(mean_pairwise_distance(sel))
    if not vendi:
        return float("nan"), float("nan")
    return float(np.mean(vendi)), float(np.mean(pairwise))


def score_samples(images: torch.Tensor, labels: torch.Tensor, feature_net: Any, real_feats: Any,
                  stats: tuple[np.ndarray, np.ndarray, int] | None = None, bootstrap: int = 0) -> dict[str, Any]:
    """All study metrics of one sample set against the real (test split) features.

    ``bootstrap`` > 0 adds 95 % bootstrap intervals over that many resamples of the generated set
    (``fid_interval``: the centred interval, the resamples' spread around the full-sample FID, since resampled
    FIDs sit above it; ``adherence_interval``: percentile interval; needs ``stats``).

    ``real_feats`` is the real side of precision/recall/density/coverage; FID is taken against
    ``stats`` (mean, covariance, count of the whole test split) when given, else against ``real_feats``.
    """
    feats = extract_features(feature_net, images)
    report = distribution_report(real_feats, feats)
    if stats is not None:
        report["fid"] = frechet_distance_to_stats(*stats, feats)
        report["n_real"] = int(stats[2])
    vendi, pairwise = within_class_diversity(feats, labels)
    out = {**report, "vendi": vendi, "pairwise": pairwise, "adherence": adherence(feature_net, images, labels)}
    if bootstrap and stats is not None:
        fake = feats.numpy().astype(np.float64)
        correct = (predict_classes(feature_net, images) == labels).numpy()
        out["fid_interval"] = bootstrap_interval(lambda idx: frechet_distance_to_stats(*stats, fake[idx]), len(fake),
                                                 resamples=bootstrap, method="centred")
        out["adherence_interval"] = bootstrap_interval(lambda idx: float(correct[idx].mean()), len(correct),
                                                       resamples=bootstrap)
    return out


def real_reference(feature_net: Any, n_fake: int, seed: int = 0, repeats: int = 10, data: str = "digits",
                   feature_net_path: str | Path | None = None) -> dict[str, Any]:
    """The real side of every image metric, and the real-vs-real floor at the model's sample size.

    Returns ``test_feats`` (PRDC's real points: the whole digits test split, or Fashion-MNIST's
    fixed balanced test subset), ``stats`` (the test split's feature statistics, for FID),
    ``floor`` (every metric of one class-balanced train subset of the sample's size, with the FID
    averaged over ``repeats`` such subsets and its spread ``fid_std``), ``n_real``, ``n_floor``.
    """
    from storylab.images.data.reference import load_reference

    ref = load_reference(data, feature_net, feature_net_path)
    num_classes = int(ref.pool_labels.max()) + 1
    per_class = max(1, round(n_fake / num_classes))
    spread = balanced_floor(ref.stats, ref.pool_feats, ref.pool_labels, per_class, max(2, repeats), seed, num_classes)
    rng = np.random.default_rng(seed + 1)
    feats = ref.pool_feats[balanced_subset(ref.pool_labels, per_class, rng, num_classes)]
    labels = np.repeat(np.arange(num_classes), per_class)
    floor = {**distribution_report(ref.test_feats, feats), "adherence": float("nan")}
    vendi, pairwise = within_class_diversity(torch.from_numpy(feats), torch.from_numpy(labels))
    floor.update({"vendi": vendi, "pairwise": pairwise, "fid": spread["fid"], "fid_std": spread["fid_std"],
                  "fid_values": spread["fid_values"], "n_fake": spread["n"], "n_real": ref.test_count})
    return {"test_feats": torch.from_numpy(ref.test_feats).float(), "stats": ref.stats, "floor": floor,
            "n_real": ref.test_count, "n_floor": spread["n"], "dim": ref.dim, "reference": ref}


def actual_mean_scale(guided: Any, steps: int) -> float:
    """The mean of the per-step guidance scales a schedule really applied, in the command's scale convention.

    A schedule is normalised to the nominal mean, but a clamp (``clamp:...:c=2``) or an interval can
    move the actual mean away from it: at nominal 1.5, ``clamp:linear:c=2`` applies w >= 2 at every
    step, i.e. a constant scale 3.
    """
    strengths = guided.strengths(steps)
    return float(guided.scale + (np.mean(strengths) - guided.rule.strength(guided.scale)))


def sample_cell(model: Any, labels: torch.Tensor, guidance: str, scale: float, spec: str, steps: int, seed: int,
                batch_size: int, classifier_path: str | Path | None = None, on_batch: Any = None,
                sampler: str | None = None) -> tuple[torch.Tensor, float, float]:
    """One cell's samples (``sampler``: the images wing's default when ``None``) in batches of ``batch_size``: (images, actual mean scale, network evaluations per sample).

    ``classifier_path`` is the noise-aware classifier, needed only when ``guidance`` is ``classifier``.
    Batch ``k`` draws its noise with seed ``seed + k``, so every cell sees the same noise for the
    same ``seed`` and ``batch_size`` (one batch: exactly the noise of a single call with ``seed``).
    Batches of a few dozen 28x28 images run about twice as fast per image as one batch of hundreds
    on a CPU (measured 0.0058 vs 0.0124 s per image and DDIM step at 64 vs 320, one thread).
    """
    from storylab.images.networks.denoiser import DEFAULT_SAMPLER, sample_digits

    sampler = sampler or DEFAULT_SAMPLER
    parts, mean_scale, nfe = [], float(scale), 0.0
    for k, start in enumerate(range(0, labels.shape[0], batch_size)):
        chunk = labels[start:start + batch_size]
        rule = build_rule(guidance, chunk, Path(classifier_path or ""), model.num_classes, 0.0, 0.0, 0.0, 0.0,
                          data=model.config.data, image_size=model.config.image_size)
        images, guided = sample_digits(model, chunk, rule, scale, spec, sampler, steps, seed + k, return_model=True)
        parts.append(images)
        mean_scale, nfe = actual_mean_scale(guided, steps), float(guided.nfe)
        if on_batch is not None:
            on_batch()
    return torch.cat(parts), mean_scale, nfe


def run_study(out: str | Path, checkpoint: str | Path, specs: Sequence[str], scales: Sequence[float], guidance: str,
              per_class: int, steps: int | None, seed: int, classifier_path: str | Path,
              features: str | Path | None = None, floor_repeats: int = 10, batch_size: int = 64,
              sampler: str | None = None, bootstrap: int = 200) -> dict[str, Any]:
    """Run every (schedule, scale) cell, write study.json + plots into ``out``, print a table; return the results.

    Each cell samples in batches of ``batch_size`` (see :func:`sample_cell`); ``bootstrap`` resamples give each
    cell's 95 % intervals of FID and adherence (0: none).
    """
    from storylab.images.data.datasets import resolve
    from storylab.images.networks.denoiser import load_digit_model
    from storylab.images.networks.feature_training import load_digit_feature_net

    out = Path(out)
    model = load_digit_model(checkpoint)
    sampler = resolve_sampler(sampler or DEFAULT_SAMPLER, model.config.prediction)
    steps = steps or default_steps(sampler, model.config.prediction, study=True)
    data = model.config.data
    feature_net = load_digit_feature_net(features, data=data)  # None: the data set's shipped network
    labels = torch.arange(model.num_classes).repeat_interleave(per_class)
    ref = real_reference(feature_net, labels.shape[0], seed, floor_repeats, data=data, feature_net_path=features)
    warning = fid_warning(int(labels.shape[0]), ref["dim"])
    if warning:
        print(warning)
    cells: list[dict[str, Any]] = []
    batches = -(-int(labels.shape[0]) // batch_size)
    with progress_bar("schedule study", total=len(specs) * len(scales) * batches) as bar:
        for spec in specs:
            for scale in scales:
                t0 = time.perf_counter()
                images, mean_scale, nfe = sample_cell(model, labels, guidance, scale, spec, steps, seed, batch_size,
                                                      classifier_path, bar.advance, sampler)
                seconds = time.perf_counter() - t0
                metrics = score_samples(images, labels, feature_net, ref["test_feats"], ref["stats"], bootstrap)
                cells.append({"schedule": spec, "scale": scale, "mean_scale": mean_scale, **metrics,
                              "nfe_per_sample": nfe, "seconds": seconds})
    floor = {k: v for k, v in ref["floor"].items() if k != "fid_values"}
    result = {"data": resolve(data).name, "class_names": list(resolve(data).class_names), "guidance": guidance,
              "sampler": sampler,
              "schedule_version": SCHEDULE_VERSION, "steps": steps, "per_class": per_class, "seed": seed,
              "batch_size": batch_size,
              "checkpoint": str(checkpoint),
              "n_fake": int(labels.shape[0]), "n_real": ref["n_real"], "n_prdc_real": int(ref["test_feats"].shape[0]),
              "feature_dim": ref["dim"], "fid_warning": warning, "real_vs_real": floor,
              "floor_fid_values": ref["floor"]["fid_values"], "cells": cells, "ranking": rank_schedules(cells)}
    atomic_write_json(out / "study.json", result)
    plot_tradeoffs(cells, floor, out)
    plot_weights(specs, max(scales), steps, out / "weights.png")
    print_study(result)
    return result


def rank_schedules(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per schedule: mean FID and adherence over scales, and its mean rank on FID (lower is better)."""
    scales = sorted({c["scale"] for c in cells})
    specs = list(dict.fromkeys(c["schedule"] for c in cells))
    ranks: dict[str, list[int]] = {s: [] for s in specs}
    for scale in scales:
        ordered = sorted((c for c in cells if c["scale"] == scale), key=lambda c: c["fid"])
        for r, c in enumerate(ordered, start=1):
            ranks[c["schedule"]].append(r)
    rows = []
    for s in specs:
        mine = [c for c in cells if c["schedule"] == s]
        rows.append({"schedule": s, "mean_fid_rank": float(np.mean(ranks[s])), "mean_fid": float(np.mean([c["fid"] for c in mine])),
                     "mean_adherence": float(np.mean([c["adherence"] for c in mine])),
                     "mean_recall": float(np.mean([c["recall"] for c in mine]))})
    return sorted(rows, key=lambda r: (r["mean_fid_rank"], r["mean_fid"]))


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")


def plot_tradeoffs(cells: list[dict[str, Any]], floor: dict[str, float], out: Path) -> None:
    """FID vs adherence and diversity vs adherence, one curve per schedule (points = mean scales).

    Each scale has its own marker shape (second legend) instead of a text label beside every point,
    so labels never overlap however close the points are; the real-vs-real floor is a dotted line
    with its spread over subsets as a grey band.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    specs = list(dict.fromkeys(c["schedule"] for c in cells))
    scales = sorted({c["scale"] for c in cells})
    marker = {s: _MARKERS[i % len(_MARKERS)] for i, s in enumerate(scales)}
    n = floor.get("n_fake")
    for ykey, ylabel, name in (("fid", "FID vs test split (lower is better)", "fid_vs_adherence.png"),
                               ("vendi", "within-class Vendi score (diversity)", "diversity_vs_adherence.png")):
        fig, ax = plt.subplots(figsize=(8.6, 4.8), dpi=110)
        for i, spec in enumerate(specs):
            colour = f"C{i % 10}"
            mine = sorted((c for c in cells if c["schedule"] == spec), key=lambda c: c["scale"])
            ax.plot([c["adherence"] for c in mine], [c[ykey] for c in mine], color=colour, label=spec, linewidth=1.4)
            for c in mine:
                ax.plot(c["adherence"], c[ykey], marker=marker[c["scale"]], color=colour, markersize=6, linestyle="none")
        ax.axhline(floor[ykey], color="black", linestyle=":", linewidth=1, label=f"real vs real (n = {n})")
        if ykey == "fid" and floor.get("fid_std") is not None:
            ax.axhspan(floor["fid"] - floor["fid_std"], floor["fid"] + floor["fid_std"], color="grey", alpha=0.2)
        ax.set_xlabel("adherence (feature net's accuracy on the requested class)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel.split(' (')[0]} against adherence, n = {n} samples per point", fontsize=9)
        # legends outside the axes, so that they cover no point
        first = ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="schedule", title_fontsize=7)
        ax.add_artist(first)
        handles = [Line2D([], [], marker=marker[s], color="grey", linestyle="none", label=f"mean scale {s:g}")
                   for s in scales]
        ax.legend(handles=handles, fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0), title="nominal scale",
                  title_fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout(rect=(0, 0, 0.8, 1))
        atomic_savefig(fig, out / name)
        plt.close(fig)
    # When adherence saturates (it does on the digits), the guidance scale is the informative x axis.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for ax, (ykey, ylabel) in zip(axes, (("fid", "FID (lower is better)"), ("recall", "recall (k = 3)"))):
        for spec in specs:
            mine = sorted((c for c in cells if c["schedule"] == spec), key=lambda c: c["scale"])
            ax.plot([c.get("mean_scale", c["scale"]) for c in mine], [c[ykey] for c in mine], marker="o", label=spec,
                    linewidth=1.4)
        ax.axhline(floor[ykey], color="black", linestyle=":", linewidth=1, label=f"real vs real (n = {n})")
        ax.set_xlabel("actual mean guidance scale")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, out / "fid_recall_vs_scale.png")
    plt.close(fig)


def _cell(value: float) -> str:
    """A metric in the study table; NaN (undefined, e.g. diversity with one sample per class) is "n/a"."""
    return "n/a" if value is None or np.isnan(value) else f"{value:.3f}"


STUDY_HEADER = ("schedule", "scale", "mean scale", *METRIC_KEYS, "NFE", "s")


def study_rows(result: dict[str, Any]) -> list[list[str]]:
    """The study table as text cells (columns :data:`STUDY_HEADER`): the real-vs-real floor first, then every cell."""
    floor = result["real_vs_real"]
    fid_floor = f"{floor['fid']:.3f} ± {floor['fid_std']:.3f}" if floor.get("fid_std") is not None else _cell(floor["fid"])
    rows = [[f"real vs real (n = {floor.get('n_fake', result['n_fake'])})", "-", "-", fid_floor,
             *(_cell(floor[k]) for k in METRIC_KEYS[1:]), "-", "-"]]
    for c in result["cells"]:
        rows.append([c["schedule"], f"{c['scale']:g}", f"{c.get('mean_scale', c['scale']):.3g}",
                     *(_cell(c[k]) for k in METRIC_KEYS), f"{c['nfe_per_sample']:.0f}", f"{c['seconds']:.1f}"])
    return rows


def print_study(result: dict[str, Any]) -> None:
    """Rich table of every cell (with n, the actual mean scale and the floor's spread) and the schedule ranking."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(150, Console().width))
    table = Table(title=f"schedule study on {result.get('data', 'digits')} ({result['guidance']}, "
                        f"n = {result['n_fake']} samples per cell, FID vs {result['n_real']} test images, "
                        f"{result['steps']} {result.get('sampler', 'ddim').upper()} steps)")
    for col in STUDY_HEADER:
        table.add_column(col, justify="right")
    floor_row, *rows = study_rows(result)
    table.add_row(*floor_row, style="dim")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print("scale = nominal mean scale asked for; mean scale = mean of the per-step scales the schedule applied; "
                  "real vs real FID = mean ± std over class-balanced train subsets of the same n")
    if any(c.get("fid_interval") for c in result["cells"]):
        intervals = Table(title="95 % bootstrap intervals over the generated samples (FID: centred on the full-sample FID)")
        for col in ("schedule", "scale", "FID", "FID 95 %", "adherence", "adherence 95 %"):
            intervals.add_column(col, justify="right")
        for c in result["cells"]:
            (f_lo, f_hi), (a_lo, a_hi) = c["fid_interval"], c["adherence_interval"]
            intervals.add_row(c["schedule"], f"{c['scale']:g}", _cell(c["fid"]), f"{f_lo:.3f} - {f_hi:.3f}",
                              _cell(c["adherence"]), f"{a_lo:.3f} - {a_hi:.3f}")
        console.print(intervals)
    if result.get("fid_warning"):
        console.print(result["fid_warning"])
    best = result["ranking"][0]
    console.print(f"best schedule by mean FID rank on this data: [bold]{best['schedule']}[/bold] "
                  f"(mean rank {best['mean_fid_rank']:.2f}, mean FID {best['mean_fid']:.3f}, "
                  f"mean adherence {best['mean_adherence']:.3f})")
