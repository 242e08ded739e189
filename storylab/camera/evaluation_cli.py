"""``storylab train clatr`` and ``storylab evaluate director`` (registered from :mod:`storylab.camera.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from storylab.cli_groups import evaluate_app, train_app
from storylab.errors import StorylabError
from storylab.io import run_path, use_hint


@train_app.command("clatr")
def train_clatr_command(
    data: Path = typer.Option(..., "--data", help="E.T.-format folder with a train split."),
    out: Path = typer.Option(run_path("clatr.safetensors"), "--out", help="Checkpoint path (use it with evaluate director --clatr)."),
    size: str = typer.Option("tiny", "--size", help="tiny (d 64, latent 32) or paper (d 256, latent 256)."),
    subset: str = typer.Option("mixed", "--subset", help="Split subset: pure (simple camera motions) or mixed (all; the paper's evaluation set); full = storylab's older name."),
    steps: int = typer.Option(800, "--steps", help="Training steps."),
    batch_size: int = typer.Option(64, "--batch-size", help="Batch size (InfoNCE negatives come from the batch)."),
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    text_encoder: Optional[Path] = typer.Option(None, "--text-encoder", help="Local text model folder; default all-MiniLM-L6-v2."),
) -> None:
    """Train the CLaTr-like joint text/trajectory embedding (reconstruction + KL + InfoNCE, temperature 0.1)."""
    from storylab.camera.clatr import ClatrConfig, train_clatr
    from storylab.camera.data import attach_text, load_samples
    from storylab.text_encoder import SentenceEncoder

    train = load_samples(data, subset, "train")
    encoder = SentenceEncoder(text_encoder)
    train = attach_text(train, encoder, data, tokens=False)
    command = f"storylab train clatr --data {data} --size {size} --steps {steps} --batch-size {batch_size} --seed {seed}"
    train_clatr(train, ClatrConfig.build(size, text_dim=encoder.dim), steps, out, batch_size, lr, seed,
                extra={"command": command, "seed": seed})
    print(f"wrote {out}")
    print(use_hint("storylab", "evaluate", "director", "--data", data, "--clatr", out))


@evaluate_app.command("director")
def evaluate_director_command(
    data: Path = typer.Option(..., "--data", help="E.T.-format folder with a test split."),
    checkpoints: Optional[list[Path]] = typer.Option(None, "--checkpoint", help="DIRECTOR checkpoints to compare (repeatable); default: the three shipped ones."),
    clatr_path: Optional[Path] = typer.Option(None, "--clatr", help="CLaTr checkpoint; default: the shipped one."),
    subset: str = typer.Option("mixed", "--subset", help="Split subset: pure (simple camera motions) or mixed (all; the paper's evaluation set); full = storylab's older name."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate on the first N test samples."),
    guidance_scale: float = typer.Option(1.4, "--guidance-scale", help="CFG scale w."),
    schedule: str = typer.Option("constant", "--schedule", help="Guidance weight schedule SPEC."),
    seed: int = typer.Option(0, "--seed", help="Noise seed."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the results as JSON."),
) -> None:
    """Compare DIRECTOR configs with FD_CLaTr, P/R/D/C, CLaTr-Score and C-P/C-R/C-F1 (a Table-2-like table)."""
    from rich.console import Console

    from storylab.camera.clatr import load_clatr
    from storylab.camera.data import attach_text, load_samples
    from storylab.camera.evaluation import PAPER_FD, evaluate_configs, results_table
    from storylab.camera.generate import ASSETS, shipped_checkpoint
    from storylab.camera.sampling import SamplingConfig
    from storylab.camera.training import load_director
    from storylab.io import atomic_write_json
    from storylab.text_encoder import SentenceEncoder

    paths = checkpoints or [shipped_checkpoint(a) for a in ("incontext", "adaln", "crossattn")]
    nets = {}
    for p in paths:
        net, _ = load_director(p)
        key = net.cfg.arch if net.cfg.arch not in nets else f"{net.cfg.arch}:{p.name}"
        nets[key] = net
    clatr_file = clatr_path or ASSETS / "clatr_tiny.safetensors"
    if not Path(clatr_file).exists():
        raise StorylabError(f"CLaTr checkpoint not found: {clatr_file} (train one with storylab train clatr)")
    clatr = load_clatr(clatr_file)
    encoders = {n.cfg.text_encoder for n in nets.values()}
    if len(encoders) > 1:
        raise StorylabError("the checkpoints were trained with different text encoders; evaluate them separately")
    test = load_samples(data, subset, "test", limit)
    if len(test) <= 3:  # precision/recall/density/coverage use k = 3 nearest neighbours
        raise StorylabError(f"the test split has {len(test)} samples; the k = 3 metrics need at least 4")
    encoder = SentenceEncoder(next(iter(encoders)))
    test = attach_text(test, encoder, data, tokens=any(n.cfg.arch == "crossattn" for n in nets.values()))
    results = evaluate_configs(nets, test, clatr, SamplingConfig(guidance_scale=guidance_scale, schedule=schedule), seed)
    Console(width=160).print(results_table(results, f"DIRECTOR on {data} ({subset} test, {len(test)} samples, w {guidance_scale:g})"))
    fd = {r.name: r.metrics["FD_CLaTr"] for r in results if r.name != "real test set"}
    if fd:
        print(f"FD_CLaTr order here: {' < '.join(sorted(fd, key=fd.get))}; paper: C 3.76 < A 3.88 < B 6.10 "
              f"({', '.join(f'{k} {v}' for k, v in PAPER_FD.items())})")
    if out is not None:
        atomic_write_json(out, {"results": [{"method": r.name, **r.metrics} for r in results],
                                "data": str(data), "samples": len(test), "guidance_scale": guidance_scale})
