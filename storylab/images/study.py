"""The guidance-schedule study of Wang et al. 2024 on the digits: every schedule x every mean scale.

For each cell it samples ``per_class`` digits of every class with the same noise, then measures on
the shipped digit feature network: FID against the test split (with the real-vs-real floor beside
it), precision/recall (k = 3), density/coverage (k = 5), diversity (Vendi score and mean pairwise
feature distance, averaged within each class, since guidance trades diversity *within* a class for
adherence), adherence (accuracy of the feature network's classifier on the requested classes),
network evaluations and wall time. Writes ``study.json`` and the paper-style plots.
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
from storylab.images.sampling import build_rule
from storylab.io import atomic_savefig, atomic_write_json
from storylab.metrics import adherence, distribution_report, extract_features, frechet_distance, mean_pairwise_distance, vendi_score
from storylab.training.progress import progress_bar

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


def score_samples(images: torch.Tensor, labels: torch.Tensor, feature_net: Any, real_feats: torch.Tensor) -> dict[str, float]:
    """All study metrics of one sample set against the real (test split) features."""
    feats = extract_features(feature_net, images)
    report = distribution_report(real_feats, feats)
    vendi, pairwise = within_class_diversity(feats, labels)
    return {**report, "vendi": vendi, "pairwise": pairwise, "adherence": adherence(feature_net, images, labels)}


def real_reference(feature_net: Any, n_fake: int, seed: int = 0, repeats: int = 3) -> dict[str, Any]:
    """Test-split features and the real-vs-real floor: train subsets of the model's sample size vs test."""
    from storylab.images.digits import load_digits_split

    test, train = load_digits_split("test"), load_digits_split("train")
    test_feats = extract_features(feature_net, test.images)
    train_feats = extract_features(feature_net, train.images)
    rng = np.random.default_rng(seed)
    n = min(n_fake, train_feats.shape[0])
    fids = [frechet_distance(test_feats, train_feats[rng.choice(train_feats.shape[0], n, replace=False)]) for _ in range(repeats)]
    idx = torch.as_tensor(rng.choice(train_feats.shape[0], n, replace=False))
    floor = score_samples(train.images[idx], train.labels[idx], feature_net, test_feats)
    floor["fid"] = float(np.mean(fids))
    floor["fid_std"] = float(np.std(fids))
    return {"test_feats": test_feats, "floor": floor, "n_real": int(test_feats.shape[0]), "n_floor": n}


def run_study(out: str | Path, checkpoint: str | Path, specs: Sequence[str], scales: Sequence[float], guidance: str,
              per_class: int, steps: int, seed: int, classifier_path: str | Path,
              features: str | Path | None = None) -> dict[str, Any]:
    """Run every (schedule, scale) cell, write study.json + plots into ``out``, print a table; return the results."""
    from storylab.images.denoiser import load_digit_model, sample_digits
    from storylab.images.feature_training import load_digit_feature_net

    out = Path(out)
    model = load_digit_model(checkpoint)
    feature_net = load_digit_feature_net(features)  # None: the shipped network
    labels = torch.arange(model.num_classes).repeat_interleave(per_class)
    ref = real_reference(feature_net, labels.shape[0], seed)
    cells: list[dict[str, Any]] = []
    with progress_bar("schedule study", total=len(specs) * len(scales)) as bar:
        for spec in specs:
            for scale in scales:
                rule = build_rule(guidance, labels, Path(classifier_path), model.num_classes, 0.0, 0.0, 0.0, 0.0)
                t0 = time.perf_counter()
                images, guided = sample_digits(model, labels, rule, scale, spec, "ddim", steps, seed, return_model=True)
                seconds = time.perf_counter() - t0
                metrics = score_samples(images, labels, feature_net, ref["test_feats"])
                cells.append({"schedule": spec, "scale": scale, **metrics, "nfe_per_sample": guided.nfe,
                              "seconds": seconds})
                bar.advance()
    result = {"guidance": guidance, "schedule_version": SCHEDULE_VERSION, "steps": steps, "per_class": per_class,
              "seed": seed, "checkpoint": str(checkpoint),
              "n_fake": int(labels.shape[0]), "n_real": ref["n_real"], "real_vs_real": ref["floor"], "cells": cells,
              "ranking": rank_schedules(cells)}
    atomic_write_json(out / "study.json", result)
    plot_tradeoffs(cells, ref["floor"], out)
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


def plot_tradeoffs(cells: list[dict[str, Any]], floor: dict[str, float], out: Path) -> None:
    """FID vs adherence and diversity vs adherence, one curve per schedule (points = mean scales)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = list(dict.fromkeys(c["schedule"] for c in cells))
    for ykey, ylabel, name in (("fid", "FID (test split, lower is better)", "fid_vs_adherence.png"),
                               ("vendi", "within-class Vendi score (diversity)", "diversity_vs_adherence.png")):
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
        for spec in specs:
            mine = sorted((c for c in cells if c["schedule"] == spec), key=lambda c: c["scale"])
            ax.plot([c["adherence"] for c in mine], [c[ykey] for c in mine], marker="o", label=spec, linewidth=1.4)
            for c in mine:
                ax.annotate(f"{c['scale']:g}", (c["adherence"], c[ykey]), fontsize=6, alpha=0.7)
        ax.axhline(floor[ykey], color="black", linestyle=":", linewidth=1, label="real vs real")
        ax.set_xlabel("adherence (classifier accuracy on requested class)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        atomic_savefig(fig, out / name)
        plt.close(fig)
    # When adherence saturates (it does on the digits), the guidance scale is the informative x axis.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for ax, (ykey, ylabel) in zip(axes, (("fid", "FID (lower is better)"), ("recall", "recall (k = 3)"))):
        for spec in specs:
            mine = sorted((c for c in cells if c["schedule"] == spec), key=lambda c: c["scale"])
            ax.plot([c["scale"] for c in mine], [c[ykey] for c in mine], marker="o", label=spec, linewidth=1.4)
        ax.axhline(floor[ykey], color="black", linestyle=":", linewidth=1, label="real vs real")
        ax.set_xlabel("mean guidance scale")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, out / "fid_recall_vs_scale.png")
    plt.close(fig)


def _cell(value: float) -> str:
    """A metric in the study table; NaN (undefined, e.g. diversity with one sample per class) is "n/a"."""
    return "n/a" if np.isnan(value) else f"{value:.3f}"


def print_study(result: dict[str, Any]) -> None:
    """Rich table of every cell, the real-vs-real floor and the schedule ranking."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(140, Console().width))
    table = Table(title=f"schedule study ({result['guidance']}, {result['n_fake']} samples vs {result['n_real']} test images, "
                        f"{result['steps']} DDIM steps)")
    for col in ("schedule", "scale", *METRIC_KEYS, "NFE", "s"):
        table.add_column(col, justify="right")
    floor = result["real_vs_real"]
    table.add_row("real vs real", "-", *(_cell(floor[k]) for k in METRIC_KEYS), "-", "-", style="dim")
    for c in result["cells"]:
        table.add_row(c["schedule"], f"{c['scale']:g}", *(_cell(c[k]) for k in METRIC_KEYS),
                      f"{c['nfe_per_sample']:.0f}", f"{c['seconds']:.1f}")
    console.print(table)
    best = result["ranking"][0]
    console.print(f"best schedule by mean FID rank on this data: [bold]{best['schedule']}[/bold] "
                  f"(mean rank {best['mean_fid_rank']:.2f}, mean FID {best['mean_fid']:.3f}, "
                  f"mean adherence {best['mean_adherence']:.3f})")
