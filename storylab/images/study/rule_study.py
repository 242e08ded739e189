"""One study that ranks the guidance rules: every rule x every schedule x every scale on the same seeds.

Each cell draws ``per_class`` samples (the images wing's default sampler) of every class with the same noise (batch k uses seed
``seed + k`` in every cell) and is scored like the schedule study (:mod:`storylab.images.study.study`):
FID against the test split with the real-vs-real floor at the same n, precision/recall,
density/coverage, within-class diversity (Vendi, mean pairwise distance), adherence (the feature
network's accuracy on the requested class), network evaluations per sample and seconds per image.
Writes ``study.json``, ``table.md`` (the ranking table) and ``pareto.png`` (FID against adherence,
every cell, the Pareto front drawn through the cells no other cell beats on both).
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
from storylab.guidance.registry import canonical_rule, parse_rule_options
from storylab.guidance.schedules import parse_schedule
from storylab.io import atomic_path, atomic_savefig, atomic_write_json
from storylab.images.study.sampling import build_rule
from storylab.images.study.study import METRIC_KEYS, actual_mean_scale, real_reference, score_samples
from storylab.metrics.floor import fid_warning
from storylab.training.progress import progress_bar


def parse_rule_list(text: str) -> list[str]:
    """``"cfg,autoguidance,pag"`` (or ';'-separated) -> canonical rule names; an unknown one is one clear line."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise StorylabError("--rules is empty")
    names = [canonical_rule(p) for p in parts]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise StorylabError(f"--rules names '{repeated[0]}' twice")
    return names


def parse_per_rule_options(pairs: Sequence[str] | None, rules: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["pag:cfg_scale=2", "fdg:low_scale=1.5"]`` -> {rule: typed options}; the rule must be in ``rules``."""
    grouped: dict[str, list[str]] = {r: [] for r in rules}
    for pair in pairs or ():
        rule, sep, option = pair.partition(":")
        if not sep or "=" not in option:
            raise StorylabError(f"--rule-option must look like RULE:KEY=VALUE in a rule study, got '{pair}'")
        key = canonical_rule(rule)
        if key not in grouped:
            raise StorylabError(f"--rule-option '{pair}' is for guidance '{key}', which --rules does not name")
        grouped[key].append(option)
    return {rule: parse_rule_options(rule, options) for rule, options in grouped.items()}


def pareto_front(cells: list[dict[str, Any]]) -> list[int]:
    """Indices of the cells no other cell beats on both lower FID and higher adherence (sorted by adherence)."""
    front = [i for i, c in enumerate(cells)
             if not any(o["fid"] <= c["fid"] and o["adherence"] >= c["adherence"]
                        and (o["fid"] < c["fid"] or o["adherence"] > c["adherence"]) for o in cells)]
    return sorted(front, key=lambda i: cells[i]["adherence"])


def sample_rule_cell(model: Any, labels: torch.Tensor, rule: str, options: dict[str, Any], scale: float, spec: str,
                     steps: int, seed: int, batch_size: int, guide: Any = None, uncond_model: Any = None,
                     classifier_path: str | Path | None = None, on_batch: Any = None) -> tuple[torch.Tensor, float, float]:
    """One cell's samples in batches (batch k: seed + k): (images, actual mean scale, evaluations per sample)."""
    from storylab.images.networks.denoiser import sample_digits

    parts, mean_scale, nfe = [], float(scale), 0.0
    for k, start in enumerate(range(0, labels.shape[0], batch_size)):
        chunk = labels[start:start + batch_size]
        made = build_rule(rule, chunk, Path(classifier_path or ""), model.num_classes, data=model.config.data,
                          image_size=model.config.image_size, options=options)
        images, guided = sample_digits(model, chunk, made, scale, spec, DEFAULT_SAMPLER, steps, seed + k, return_model=True,
                                       guide=guide if rule == "autoguidance" else None, uncond_model=uncond_model)
        parts.append(images)
        strengths = np.asarray(guided.strengths(steps), dtype=np.float64)
        if strengths.ndim == 1:
            mean_scale = actual_mean_scale(guided, steps)
        nfe = float(guided.nfe)
        if on_batch is not None:
            on_batch()
    return torch.cat(parts), mean_scale, nfe


def run_rule_study(out: str | Path, checkpoint: str | Path, rules: Sequence[str], specs: Sequence[str],
                   scales: Sequence[float], per_class: int, steps: int, seed: int,
                   rule_options: dict[str, dict[str, Any]] | None = None, guide_checkpoint: str | Path | None = None,
                   uncond_checkpoint: str | Path | None = None, classifier_path: str | Path | None = None,
                   features: str | Path | None = None, floor_repeats: int = 10, batch_size: int = 64) -> dict[str, Any]:
    """Every (rule, schedule, scale) cell on the same seeds; write study.json, table.md and pareto.png into ``out``."""
    from storylab.images.data.datasets import resolve
    from storylab.images.networks.denoiser import load_digit_model
    from storylab.images.networks.feature_training import load_digit_feature_net

    for spec in specs:
        parsed = parse_schedule(spec)  # every SPEC is checked before anything is loaded
        if parsed.absolute:
            parsed.absolute_scales(steps)
    if "autoguidance" in rules and guide_checkpoint is None:
        raise StorylabError("--rules names autoguidance: pass --guide-checkpoint (its weak model)")
    if guide_checkpoint is not None and "autoguidance" not in rules:
        raise StorylabError("--guide-checkpoint is used by autoguidance only, which --rules does not name")
    out = Path(out)
    model = load_digit_model(checkpoint)
    steps = steps or default_steps(DEFAULT_SAMPLER, model.config.prediction, study=True)
    guide = load_digit_model(guide_checkpoint) if guide_checkpoint else None
    uncond_model = load_digit_model(uncond_checkpoint) if uncond_checkpoint else None
    data = model.config.data
    feature_net = load_digit_feature_net(features, data=data)
    labels = torch.arange(model.num_classes).repeat_interleave(per_class)
    n = int(labels.shape[0])
    ref = real_reference(feature_net, n, seed, floor_repeats, data=data, feature_net_path=features)
    warning = fid_warning(n, ref["dim"])
    if warning:
        print(warning)
    options = rule_options or {}
    cells: list[dict[str, Any]] = []
    batches = -(-n // batch_size)
    with progress_bar("rule study", total=len(rules) * len(specs) * len(scales) * batches) as bar:
        for rule in rules:
            for spec in specs:
                for scale in scales:
                    t0 = time.perf_counter()
                    images, mean_scale, nfe = sample_rule_cell(
                        model, labels, rule, options.get(rule, {}), scale, spec, steps, seed, batch_size, guide,
                        uncond_model if rule != "autoguidance" else None, classifier_path, bar.advance)
                    seconds = time.perf_counter() - t0
                    metrics = score_samples(images, labels, feature_net, ref["test_feats"], ref["stats"])
                    cells.append({"rule": rule, "options": options.get(rule, {}), "schedule": spec, "scale": scale,
                                  "mean_scale": mean_scale, **metrics, "nfe_per_sample": nfe, "seconds": seconds,
                                  "seconds_per_image": seconds / n})
    floor = {k: v for k, v in ref["floor"].items() if k != "fid_values"}
    result = {"data": resolve(data).name, "schedule_version": SCHEDULE_VERSION, "steps": steps,
              "sampler": resolve_sampler(DEFAULT_SAMPLER, model.config.prediction),
              "per_class": per_class, "seed": seed, "batch_size": batch_size, "checkpoint": str(checkpoint),
              "guide_checkpoint": None if guide_checkpoint is None else str(guide_checkpoint),
              "uncond_checkpoint": None if uncond_checkpoint is None else str(uncond_checkpoint),
              "n_fake": n, "n_real": ref["n_real"], "feature_dim": ref["dim"], "fid_warning": warning,
              "real_vs_real": floor, "cells": cells, "pareto": pareto_front(cells)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "study.json", result)
    with atomic_path(out / "table.md") as tmp:
        Path(tmp).write_text(markdown_table(result))
    plot_pareto(cells, floor, out / "pareto.png", n)
    return result


def _fmt(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


TABLE_HEADER = ("rule", "schedule", "scale", "FID", "precision", "recall", "adherence", "Vendi", "NFE", "s / image")


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """The ranking table (cells by FID, the real-vs-real floor first) as text cells of :data:`TABLE_HEADER`."""
    floor = result["real_vs_real"]
    fid_floor = _fmt(floor["fid"]) + (f" ± {floor['fid_std']:.3f}" if floor.get("fid_std") is not None else "")
    rows = [[f"real vs real (n = {floor.get('n_fake', result['n_fake'])})", "-", "-", fid_floor, _fmt(floor["precision"]),
             _fmt(floor["recall"]), "-", _fmt(floor["vendi"]), "-", "-"]]
    pareto = set(result.get("pareto", []))
    order = sorted(range(len(result["cells"])), key=lambda i: result["cells"][i]["fid"])
    for i in order:
        c = result["cells"][i]
        rows.append([c["rule"] + (" *" if i in pareto else ""), c["schedule"], f"{c['scale']:g}", _fmt(c["fid"]),
                     _fmt(c["precision"]), _fmt(c["recall"]), _fmt(c["adherence"]), _fmt(c["vendi"]),
                     f"{c['nfe_per_sample']:.0f}", f"{c['seconds_per_image']:.4f}"])
    return rows


def markdown_table(result: dict[str, Any]) -> str:
    """The ranking table in Markdown, with n, the sampler and the floor stated above it; * = on the Pareto front."""
    lines = [f"Rule study on {result['data']}: n = {result['n_fake']} samples per cell, {result['sampler'].upper()} {result['steps']} steps, "
             f"FID against {result['n_real']} test images; * = on the FID/adherence Pareto front.", "",
             "| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    return "\n".join(lines) + "\n"


def plot_pareto(cells: list[dict[str, Any]], floor: dict[str, Any], path: Path, n: int) -> None:
    """FID against adherence, one colour per rule, one marker per schedule, the Pareto front as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    rules = list(dict.fromkeys(c["rule"] for c in cells))
    specs = list(dict.fromkeys(c["schedule"] for c in cells))
    markers = ("o", "s", "^", "D", "v", "P", "X", "*")
    fig, ax = plt.subplots(figsize=(8.8, 5.0), dpi=110)
    for i, rule in enumerate(rules):
        for j, spec in enumerate(specs):
            mine = sorted((c for c in cells if c["rule"] == rule and c["schedule"] == spec), key=lambda c: c["scale"])
            ax.plot([c["adherence"] for c in mine], [c["fid"] for c in mine], color=f"C{i % 10}",
                    marker=markers[j % len(markers)], linewidth=0.8, markersize=5)
    front = [cells[i] for i in pareto_front(cells)]
    ax.plot([c["adherence"] for c in front], [c["fid"] for c in front], color="black", linewidth=1.6, alpha=0.5,
            label="Pareto front")
    ax.axhline(floor["fid"], color="black", linestyle=":", linewidth=1, label=f"real vs real (n = {n})")
    ax.set_xlabel("adherence (feature net's accuracy on the requested class)")
    ax.set_ylabel("FID vs test split (lower is better)")
    ax.set_title(f"every rule, schedule and scale, n = {n} samples per point", fontsize=9)
    first = ax.legend(handles=[Line2D([], [], color=f"C{i % 10}", label=r) for i, r in enumerate(rules)]
                      + ax.get_legend_handles_labels()[0], fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      title="rule", title_fontsize=7)
    ax.add_artist(first)
    ax.legend(handles=[Line2D([], [], marker=markers[j % len(markers)], color="grey", linestyle="none", label=s)
                       for j, s in enumerate(specs)], fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0),
              title="schedule", title_fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    atomic_savefig(fig, path)
    plt.close(fig)


__all__ = ["METRIC_KEYS", "markdown_table", "pareto_front", "parse_per_rule_options", "parse_rule_list",
           "run_rule_study", "sample_rule_cell", "table_rows"]
