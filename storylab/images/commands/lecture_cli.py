"""``storylab evaluate guidance-removal`` and ``evaluate code-slide-loops``: two guidance experiments of Wang et al. 2024."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from storylab.cli_groups import evaluate_app
from storylab.guidance.names import parse_scales
from storylab.images.assets import shipped

_CHECKPOINT = shipped("fashion-mnist", "denoiser")


@evaluate_app.command("guidance-removal")
def guidance_removal(out: Path = typer.Option(Path("runs/guidance_removal"), "--out", help="Folder for study.json, table.md and removal.png."),
                     checkpoint: Path = typer.Option(_CHECKPOINT, "--checkpoint", help="Denoiser checkpoint (default: the shipped Fashion-MNIST one)."),
                     scales: str = typer.Option("2,4", "--scales", help="Comma-separated CFG scales (diffusers convention)."),
                     points: int = typer.Option(9, "--points", help="Window positions k / (points + 1), k = 1..points."),
                     window: float = typer.Option(0.2, "--window", help="Width of the sliding removed window (progress)."),
                     per_class: int = typer.Option(100, "--per-class", help="Samples per class in each cell."),
                     steps: Optional[int] = typer.Option(None, "--steps", show_default="10 for edm-heun, 20 for ddpm/ddim",
                                                     help="Sampling steps (the images wing's default sampler)."),
                     seed: int = typer.Option(0, "--seed", help="Random seed (the same noise in every cell)."),
                     batch_size: int = typer.Option(64, "--batch-size", help="Images per sampling batch (batch k: seed + k)."),
                     features: Optional[Path] = typer.Option(None, "--features", help="Feature network for FID/adherence; default: the shipped one."),
                     ) -> None:
    """Remove CFG from [0, a], [b, 1] or a sliding window (Wang et al. 2024, Sec. 3): FID and adherence against the window."""
    from storylab.images.study.lecture_guidance import run_removal_sweep

    result = run_removal_sweep(out, checkpoint, parse_scales(scales), per_class, steps, seed, points, window, features,
                               batch_size=batch_size)
    print((out / "table.md").read_text(), end="")
    print(f"wrote {out / 'study.json'} and {out / 'removal.png'} ({len(result['cells'])} cells)")


@evaluate_app.command("code-slide-loops")
def code_slide_loops_cmd(out: Path = typer.Option(Path("runs/code_slide_loops"), "--out", help="Folder for study.json, table.md and loops.png."),
                         checkpoint: Path = typer.Option(_CHECKPOINT, "--checkpoint", help="Denoiser checkpoint (default: the shipped Fashion-MNIST one)."),
                         w0: float = typer.Option(2.0, "--w0", help="w0 of the clamp-linear loop w = max(1, w0 * 2 t / T) (Ho's w)."),
                         per_class: int = typer.Option(100, "--per-class", help="Samples per class in each loop."),
                         steps: Optional[int] = typer.Option(None, "--steps", show_default="10 for edm-heun, 20 for ddpm/ddim",
                                                     help="Sampling steps (the images wing's default sampler)."),
                         seed: int = typer.Option(0, "--seed", help="Random seed (the same noise in every loop)."),
                         batch_size: int = typer.Option(64, "--batch-size", help="Images per sampling batch (batch k: seed + k)."),
                         show: int = typer.Option(8, "--show", help="Samples per class drawn in loops.png."),
                         features: Optional[Path] = typer.Option(None, "--features", help="Feature network for FID/adherence; default: the shipped one."),
                         ) -> None:
    """Figure 1's loops literally (w = 2, w = 14, clamp-linear), same seeds: one figure, FID / adherence / diversity."""
    from storylab.images.study.lecture_guidance import run_code_slide_loops

    run_code_slide_loops(out, checkpoint, per_class, steps, seed, w0, features, batch_size=batch_size, show=show)
    print((out / "table.md").read_text(), end="")
    print(f"wrote {out / 'study.json'} and {out / 'loops.png'}")
