"""``storylab guidance weights``: print the per-step guidance scales of a schedule."""

from __future__ import annotations

import json
import sys

import typer

from storylab.cli_groups import guidance_app
from storylab.guidance.names import GRIDS, SPEC_HELP


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
    from storylab.guidance.schedules import parse_schedule, sampling_progress

    parsed = parse_schedule(schedule, grid=grid)
    if parsed.needs_sigma:
        from storylab.errors import StorylabError

        raise StorylabError(f"schedule '{schedule}' depends on each step's noise level, which the sampler sets; "
                            "'guidance weights' prints step-based schedules only")
    values = parsed.scales(steps, scale).tolist()
    progress = sampling_progress(steps, parsed.grid).tolist()
    below_one = [i for i, v in enumerate(values) if v < 1.0 - 1e-12]
    note = (f"note: {len(below_one)} step(s) below scale 1: classic diffusers pipelines guide only above 1, so "
            "ScheduledGuidance rejects this schedule there; storylab's samplers and ScheduledCFG apply it")
    if as_json:
        print(json.dumps([round(v, 10) for v in values]))
        if below_one:
            print(note, file=sys.stderr)
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
    if below_one:
        print(note)
