"""``storylab train features``: train the digit feature network used by FID, precision/recall and adherence."""

from __future__ import annotations

from pathlib import Path

import typer

from storylab.cli_groups import train_app


@train_app.command("features")
def train_features(
    out: Path = typer.Option(Path("runs/digit_features.safetensors"),
                             help="Checkpoint to write (safetensors; runs/<data>_features.safetensors for another --data)."),
    steps: int = typer.Option(1500, help="Optimisation steps."),
    batch_size: int = typer.Option(128, help="Images per step."),
    lr: float = typer.Option(2e-3, help="Peak learning rate (AdamW, warm-up then cosine)."),
    max_shift: int = typer.Option(1, help="Augmentation: random shift of up to this many pixels."),
    seed: int = typer.Option(0, help="Random seed (weights, batches, augmentation)."),
    resume: bool = typer.Option(True, help="Resume from / keep a resume state next to OUT."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    data: str = typer.Option("digits", "--data", help="Data set: digits, fashion-mnist, mnist or an IDX folder."),
) -> None:
    """Train the feature/adherence network of the metrics on a data set's train split; report its test accuracy."""
    from storylab.images.networks.feature_training import FeatureTrainingConfig, current_command, train_feature_net

    config = FeatureTrainingConfig(out=str(out), steps=steps, batch_size=batch_size, lr=lr, max_shift=max_shift,
                                   seed=seed, resume=resume, progress=progress, data=data)
    if data != "digits" and out == Path("runs/digit_features.safetensors"):
        out = Path(f"runs/{data.replace('-', '_')}_features.safetensors") if "/" not in data else Path("runs/idx_features.safetensors")
        config.out = str(out)
    _, scores = train_feature_net(config, command=current_command())
    typer.echo(f"wrote {out}: train accuracy {scores['train_accuracy']:.4f}, "
               f"test accuracy {scores['test_accuracy']:.4f}")
    from storylab.io import use_hint

    study = data if data in ("digits", "fashion-mnist", "mnist") else "digits"  # an IDX folder: its model's study
    zoo = "" if data == "digits" else f" --data {data}"
    typer.echo(use_hint("storylab", "evaluate", study, "--features", out) + f"  (or storylab evaluate zoo{zoo} "
               f"--features {out}; without --features the metric commands use the shipped network)")
