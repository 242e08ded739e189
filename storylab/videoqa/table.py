"""The lectures' SFD results table: rows = methods, columns = MCQA V/L/VL and OEQA V/L/VL (% accuracy)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from storylab.errors import StorylabError

COLUMNS = tuple((task, mode) for task in ("mcqa", "oeqa") for mode in ("V", "L", "VL"))

# SFD paper / lecture slides (Ghermi et al. 2024), % accuracy; None = not reported.
PAPER_ROWS: dict[str, tuple[float | None, ...]] = {
    "Random": (20.0, 20.0, 20.0, None, None, None),
    "FrozenBiLM": (23.4, 38.2, 38.6, None, None, None),
    "mPLUG-Owl2": (38.3, 20.7, 21.3, 22.1, 1.8, 1.6),
    "Video-LLaVA": (34.2, 21.3, 24.7, 19.2, 6.4, 8.0),
    "LLoVi": (30.8, 64.2, 55.6, 16.2, 40.3, 24.7),
    "LangRepo": (29.0, 32.1, 31.0, 3.5, 10.4, 9.5),
    "MovieChat": (8.4, 6.4, 8.0, 14.0, 15.7, 11.8),
    "TimeChat": (25.5, 6.4, 31.8, 26.4, 9.4, 5.9),
    "Human": (59.0, 70.9, 89.8, None, None, None),
}


def find_summaries(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """``summary.json`` files of the given run folders (searched recursively) or given directly."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file() and p.name.endswith(".json"):
            found.append(p)
        elif p.is_dir():
            hits = sorted(p.rglob("summary.json"))
            if not hits:
                raise StorylabError(f"no summary.json under {p} (is it an eval --out folder?)")
            found.extend(hits)
        else:
            raise StorylabError(f"run folder not found: {p}")
    return list(dict.fromkeys(found))


def load_summary(path: Path) -> dict[str, Any]:
    """One run summary, checked for the fields the table needs."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise StorylabError(f"{path} is not a readable JSON summary") from None
    missing = [k for k in ("method", "task", "mode", "accuracy") if k not in data] if isinstance(data, dict) else ["all"]
    if missing:
        raise StorylabError(f"{path} is not an eval summary (lacks {', '.join(missing)})")
    if (data["task"], data["mode"]) not in COLUMNS:
        raise StorylabError(f"{path}: unknown task/mode {data['task']}/{data['mode']}")
    return data


def results_table(summaries: Sequence[dict[str, Any]], with_paper: bool = False) -> tuple[list[str], list[list[float | None]]]:
    """Row names and a (rows x 6) grid of % accuracy; a later run of the same method and column wins."""
    rows: dict[str, list[float | None]] = {}
    if with_paper:
        rows.update({f"{k} (paper)": list(v) for k, v in PAPER_ROWS.items()})
    for s in summaries:
        row = rows.setdefault(str(s["method"]), [None] * len(COLUMNS))
        row[COLUMNS.index((s["task"], s["mode"]))] = 100.0 * float(s["accuracy"])
    return list(rows), list(rows.values())


def render_table(names: Sequence[str], grid: Sequence[Sequence[float | None]], title: str = "SFD results (% accuracy)"):
    """A rich table in the lectures' layout."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("Method", style="bold")
    for task, mode in COLUMNS:
        table.add_column(f"{'MCQA' if task == 'mcqa' else 'OEQA'} {mode}", justify="right")
    for name, row in zip(names, grid):
        table.add_row(name, *["-" if v is None else f"{v:.1f}" for v in row])
    return table
