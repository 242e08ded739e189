"""``storylab guidance weights``: print the per-step guidance scales of a schedule."""

from __future__ import annotations

import json

import typer

from storylab.cli_groups import guidance_app
from storylab.guidance.names import SPEC_HELP


@guidance_app.command("weights")
def weights(schedule: str = typer.Option("constant", "--schedule", help=f"Schedule SPEC: {SPEC_HELP}."),
            scale: float = typer.Option(3.0, "--scale", help="Mean guidance scale (diffusers convention: 1 = conditional)."),
            steps: int = typer.Option(50, "--steps", help="Number of sampling steps."),
            as_json: bool = typer.Option(False, "--json", help="Print a JSON list of numbers (first = noisiest step)."),
            ) -> None:
    """Per-step guidance scales s_i = 1 + w_i in sampling order (first = noisiest)."""
    from storylab.guidance.schedules import parse_schedule

    values = parse_schedule(schedule).scale_list(steps, scale)
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
        table.add_row(str(i), f"{i / max(1, steps - 1):.3f}", f"{v:.4f}")
    Console().print(table)
