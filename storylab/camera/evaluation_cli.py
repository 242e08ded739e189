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
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the resume state beside --out (--no-resume deletes it)."),
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
                extra={"command": command, "seed": seed}, resume=resume)
    print(f"wrote {out}")
    print(use_hint("storylab", "evaluate", "director", "--data", data, "--clatr", out))


def missing_tags_message(missing: list[str], total: int) -> str:
    """One line saying how many test samples lack reference tags."""
    n = len(missing)
    return (f"{n} of {total} test samples have no cam_segments/<id>.npy (first: {missing[0]}); "
            f"C-P/C-R/C-F1 " + ("use the others" if n < total else "are n/a"))


@evaluate_app.command("director")
def evaluate_director_command(
    data: Path = typer.Option(..., "--data", help="E.T.-format folder with a test split."),
    checkpoints: Optional[list[Path]] = typer.Option(None, "--checkpoint", help="DIRECTOR checkpoints to compare (repeatable); default: the four shipped ones (A, B, C, two-stage C)."),
    clatr_path: Optional[Path] = typer.Option(None, "--clatr", help="CLaTr checkpoint; default: the shipped one."),
    subset: str = typer.Option("mixed", "--subset", help="Split subset: pure (simple camera motions) or mixed (all; the paper's evaluation set); full = storylab's older name."),
    protocol: str = typer.Option("storylab", "--protocol", help="storylab: every metric on the test split; paper: the authors' script (mixed subset; FD_CLaTr and P/R/D/C on the train split in 5 chunks, CLaTr-Score and C-metrics on test)."),
    prdc_as_published: bool = typer.Option(False, "--prdc-as-published", help="P/R/D/C as the published code computes them (generated set passed as 'real', its recall indexing); default: the definitions' order."),
    clatr_mean: bool = typer.Option(False, "--clatr-mean", help="Embed with the CLaTr latent mean instead of a latent draw (the paper draws mean + eps * sigma)."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 2) instead of warning when reference tags (cam_segments/) are missing."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate on the first N samples of each split used."),
    guidance_scale: float = typer.Option(1.4, "--guidance-scale", help="CFG scale w."),
    schedule: str = typer.Option("constant", "--schedule", help="Guidance weight schedule SPEC."),
    seed: int = typer.Option(0, "--seed", help="Noise seed (sampling and CLaTr latent draws)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the results as JSON."),
) -> None:
    """Compare DIRECTOR configs with FD_CLaTr, P/R/D/C, CLaTr-Score and C-P/C-R/C-F1 (a Table-2-like table)."""
    import sys

    from rich.console import Console

    from storylab.camera.clatr import load_clatr
    from storylab.camera.data import attach_text, load_samples
    from storylab.camera.evaluation import PAPER_FD, EvalProtocol, evaluate_configs, results_table, retrieval_table
    from storylab.camera.generate import ASSETS, shipped_checkpoint
    from storylab.camera.sampling import SamplingConfig
    from storylab.camera.training import load_director
    from storylab.io import atomic_write_json
    from storylab.text_encoder import SentenceEncoder

    from storylab.guidance.schedules import parse_schedule

    parse_schedule(schedule)  # a bad SPEC is refused before any checkpoint or data is read
    proto = EvalProtocol.build(protocol, prdc_as_published, sample_latent=not clatr_mean)
    if proto.name == "paper" and subset != "mixed":
        raise StorylabError(f"--protocol paper evaluates the mixed subset (got --subset {subset})")
    paths = checkpoints or [shipped_checkpoint(a) for a in ("incontext", "adaln", "crossattn", "twostage")]
    nets = {}
    for p in paths:
        net, _ = load_director(p)
        base = "twostage" if net.cfg.two_stage else net.cfg.arch
        key = base if base not in nets else f"{base}:{p.name}"
        nets[key] = net
    clatr_file = clatr_path or ASSETS / "clatr_tiny.safetensors"
    if not Path(clatr_file).exists():
        raise StorylabError(f"CLaTr checkpoint not found: {clatr_file} (train one with storylab train clatr)")
    clatr = load_clatr(clatr_file)
    encoders = {n.cfg.text_encoder for n in nets.values()}
    if len(encoders) > 1:
        raise StorylabError("the checkpoints were trained with different text encoders; evaluate them separately")
    if strict:  # before any reading, so the error is the only line
        from storylab.camera.et_format import read_split
        ids = read_split(data, subset, "test")[:limit]
        absent = [i for i in ids if not (Path(data) / "cam_segments" / f"{i}.npy").exists()]
        if absent:
            raise StorylabError(missing_tags_message(absent, len(ids)))
    test = load_samples(data, subset, "test", limit)
    train = load_samples(data, subset, "train", limit, sort_ids=True) if proto.name == "paper" else None
    for split in (test,) + ((train,) if train is not None else ()):
        if len(split) <= 3:  # precision/recall/density/coverage use k = 3 nearest neighbours
            raise StorylabError(f"the {split.part} split has {len(split)} samples; the k = 3 metrics need at least 4")
    if proto.name == "paper" and len(train) < 4 * proto.prdc_chunks:
        raise StorylabError(f"the paper protocol averages P/R/D/C over {proto.prdc_chunks} chunks of the train split; "
                            f"it has {len(train)} samples, need at least {4 * proto.prdc_chunks}")
    if test.missing_tags:
        print(f"warning: {missing_tags_message(test.missing_tags, len(test))}", file=sys.stderr)
    encoder = SentenceEncoder(next(iter(encoders)))
    tokens = any(n.cfg.arch == "crossattn" for n in nets.values())
    test = attach_text(test, encoder, data, tokens=tokens)
    if train is not None:
        train = attach_text(train, encoder, data, tokens=tokens)
    results = evaluate_configs(nets, test, clatr, SamplingConfig(guidance_scale=guidance_scale, schedule=schedule), seed,
                               protocol=proto, train=train)
    where = (f"FD_CLaTr, P/R/D/C on {subset} train ({len(train)}, 5 chunks); CLaTr-Score, C-metrics on {subset} test "
             f"({len(test)})" if train is not None else f"{subset} test, {len(test)} samples")
    order = ("P/R/D/C as published (generated set as 'real', published recall indexing)" if prdc_as_published
             else "P/R/D/C with the real set first (the definitions)")
    latent = "CLaTr latent mean" if clatr_mean else "CLaTr latent draws (mean + eps * sigma)"
    Console(width=160).print(results_table(results, f"DIRECTOR on {data} (protocol {proto.name}, w {guidance_scale:g})"))
    Console(width=200).print(retrieval_table(results, f"CLaTr retrieval, captions vs trajectories ({subset} test, "
                                                      f"{len(test)} samples; caption self-similarity > 0.9 counts as a match)"))
    n_still = sum(1 for t in test.cam_segments if (t >= 0).any() and (t[t >= 0] == 0).all())
    print(f"frames re-tagged static on the {n_still} all-static test captions: "
          + ", ".join(f"{r.name} {r.metrics['static on all-static']:.1%}" for r in results))
    print(f"protocol {proto.name}: {where}; {order}; {latent}")
    fd = {r.name: r.metrics["FD_CLaTr"] for r in results if r.name != "real data"}
    if fd:
        print(f"FD_CLaTr order here: {' < '.join(sorted(fd, key=fd.get))}; paper: C 3.76 < A 3.88 < B 6.10 "
              f"({', '.join(f'{k} {v}' for k, v in PAPER_FD.items())})")
    if out is not None:
        atomic_write_json(out, {"results": [{"method": r.name, **r.metrics} for r in results],
                                "data": str(data), "subset": subset, "protocol": proto.name,
                                "prdc_as_published": prdc_as_published, "clatr_latent": "mean" if clatr_mean else "draw",
                                "test_samples": len(test), "train_samples": len(train) if train is not None else None,
                                "missing_tags": len(test.missing_tags or []), "guidance_scale": guidance_scale})


@evaluate_app.command("clatr")
def evaluate_clatr_command(
    data: Path = typer.Option(..., "--data", help="E.T.-format folder with a test split."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="CLaTr checkpoint; default: the shipped one."),
    subset: str = typer.Option("mixed", "--subset", help="Split subset: pure or mixed (the paper's evaluation set)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate on the first N test samples."),
    threshold: float = typer.Option(0.95, "--threshold", help="Caption self-similarity score (0..1) above which another caption's trajectory also counts as a match (the authors' 0.95)."),
    clatr_mean: bool = typer.Option(False, "--clatr-mean", help="Embed with the latent mean instead of a latent draw."),
    seed: int = typer.Option(0, "--seed", help="Seed of the latent draws."),
    text_encoder: Optional[Path] = typer.Option(None, "--text-encoder", help="The text model the CLaTr was trained with; default all-MiniLM-L6-v2."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the metrics as JSON."),
) -> None:
    """Text <-> trajectory retrieval of a CLaTr embedding on real test trajectories: R@1/2/3/5/10 and median rank."""
    from rich.console import Console

    from storylab.camera.clatr import embed_texts, embed_trajectories, load_clatr
    from storylab.camera.data import attach_text, load_samples
    from storylab.camera.evaluation import ConfigResult, retrieval_table
    from storylab.camera.generate import ASSETS
    from storylab.camera.retrieval import retrieval_metrics
    from storylab.camera.tag_metrics import split_valid
    from storylab.io import atomic_write_json
    from storylab.text_encoder import SentenceEncoder

    path = checkpoint or ASSETS / "clatr_tiny.safetensors"
    if not Path(path).exists():
        raise StorylabError(f"CLaTr checkpoint not found: {path} (train one with storylab train clatr)")
    clatr = load_clatr(path)
    test = load_samples(data, subset, "test", limit)
    if len(test) < 2:
        raise StorylabError(f"the test split has {len(test)} sample; retrieval needs at least 2")
    test = attach_text(test, SentenceEncoder(text_encoder), data, tokens=False)
    traj = embed_trajectories(clatr, split_valid(test.x, test.mask), sample=not clatr_mean, seed=seed).numpy()
    text = embed_texts(clatr, test.text, sample=not clatr_mean, seed=seed + 1).numpy()
    metrics = retrieval_metrics(text, traj, test.text.float().numpy(), threshold)
    Console(width=200).print(retrieval_table([ConfigResult("CLaTr", metrics)],
                                             f"CLaTr retrieval on {data} ({subset} test, {len(test)} samples)"))
    if out is not None:
        atomic_write_json(out, {"metrics": metrics, "data": str(data), "subset": subset, "test_samples": len(test),
                                "threshold": threshold, "clatr_latent": "mean" if clatr_mean else "draw"})
