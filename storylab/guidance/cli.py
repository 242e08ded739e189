"""``storylab guidance weights``: print the per-step guidance scales of a schedule."""

from __future__ import annotations

import json

import typer

from pathlib import Path

from storylab.cli_groups import evaluate_app, guidance_app
from storylab.guidance.names import GRIDS, SPEC_HELP, parse_scales


@guidance_app.command("weights")
def weights(schedule: str = typer.Option("constant", "--schedule", help=f"Schedule SPEC: {SPEC_HELP}."),
            scale: float = typer.Option(3.0, "--scale", help="Guidance scale (diffusers convention: 1 = conditional): the mean of a normalised shape, the last-step value of pcs."),
            steps: int = typer.Option(50, "--steps", help="Number of sampling steps."),
            grid: str = typer.Option("endpoints", "--grid",
                                     help=f"Step grid ({', '.join(GRIDS)}): endpoints (the default) puts step i at progress "
                                          "i/(N-1); paper uses Figure 1's t/T, t = 1..N. A SPEC suffix @paper overrides it."),
            as_json: bool = typer.Option(False, "--json", help="Print a JSON list of numbers (first = noisiest step)."),
            ) -> None:
    """Per-step guidance scales s_i = 1 + w_i in sampling order (first = noisiest)."""
    from storylab.guidance.schedules import parse_schedule, progress_array  # numpy only: answers without torch

    parsed = parse_schedule(schedule, grid=grid)
    if parsed.needs_sigma:
        from storylab.errors import StorylabError

        raise StorylabError(f"schedule '{schedule}' depends on each step's noise level, which the sampler sets; "
                            "'guidance weights' prints step-based schedules only")
    values = parsed.scales_array(steps, scale).tolist()
    progress = progress_array(steps, parsed.grid).tolist()
    if as_json:
        print(json.dumps([round(v, 10) for v in values]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{schedule}  (mean scale {sum(values) / len(values):.4g}, {steps} steps)")
    table.add_column("step", justify="right")
    table.add_column("progress", justify="right")
    table.add_column("scale", justify="right")
    for i, v in enumerate(values):
        table.add_row(str(i), f"{progress[i]:.3f}", f"{v:.4f}")
    Console().print(table)


def _split_schedules(text: str) -> list[str]:
    specs = [s.strip() for s in text.split(";") if s.strip()]
    if not specs:
        from storylab.errors import StorylabError

        raise StorylabError("--schedules is empty (separate SPECs with ';')")
    return specs


@evaluate_app.command("pipeline")
def evaluate_pipeline(
    model: Path = typer.Option(..., "--model", help="A diffusers text-to-image pipeline saved on disk (SD 1.5, SDXL, ...)."),
    prompts: Path = typer.Option(..., "--prompts", help="Text file, one prompt per line ('#' lines skipped)."),
    schedules: str = typer.Option("constant;linear;cosine;clamp:linear:c=2;pcs:s=1", "--schedules",
                                  help=f"Schedule SPECs separated by ';' ({SPEC_HELP})."),
    scales: str = typer.Option("3,5,7.5", "--scales", help="Comma-separated guidance scales (diffusers convention, >= 1)."),
    n: int = typer.Option(4, "--n", help="Images per prompt and cell (the same seeds in every cell)."),
    steps: int = typer.Option(30, "--steps", help="Sampling steps (the pipeline's own scheduler)."),
    seed: int = typer.Option(0, "--seed", help="Base seed: image j of prompt p uses seed + 1000 p + j."),
    negative_prompt: str = typer.Option("", "--negative-prompt", help="Negative prompt of the unconditional branch (default: empty).",
                                       show_default=False),
    clip: Path | None = typer.Option(None, "--clip", help="Local CLIP folder (CLIPModel + processor) for CLIP score and features (default: none, images only)."),
    reference: Path | None = typer.Option(None, "--reference", help="Folder of reference images for FID / PRDC on CLIP image features (default: none, no FID/PRDC)."),
    control_image: list[Path] = typer.Option([], "--control-image",
                                              help="ControlNet pipelines: a condition image per ControlNet, in order "
                                                   "(extract one with 'storylab control extract canny photo.png --size 512'; default: none)."),
    out: Path = typer.Option(Path("runs/pipeline_study"), "--out", help="Output folder (resumes a killed run with the same settings)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """The Wang et al. schedule study on a local text-to-image pipeline: every schedule x scale, same seeds, scored."""
    from rich.console import Console
    from rich.table import Table

    from storylab.guidance.pipeline_study import PipelineStudyConfig, run_pipeline_study, summary_rows

    cfg = PipelineStudyConfig(model=model, prompts=prompts, schedules=_split_schedules(schedules),
                              scales=parse_scales(scales), out=out, n=n, steps=steps, seed=seed,
                              negative_prompt=negative_prompt, clip=clip, reference=reference,
                              control_images=list(control_image) or None, progress=progress)
    result = run_pipeline_study(cfg)
    table = Table(title=f"pipeline study: {len(result['prompts'])} prompts x {n} images, {steps} steps"
                        f" (features: {'CLIP image embeddings' if result['features'] else 'none'})")
    for col in ("schedule", "scale", "CLIP", "FID", "prec", "recall", "dens", "cov", "Vendi", "NFE", "s/img"):
        table.add_column(col, justify="left" if col == "schedule" else "right")
    for row in summary_rows(result):
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(f"wrote {out / 'study.json'}" + ("" if not result["features"] else " and the trade-off plots"))
