"""The lectures' SFD results table: rows = method x data set x prompt style, columns = MCQA V/L/VL and OEQA V/L/VL, n per cell."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TableRow:
    """One run in the table: method, data set, task, mode, prompt style, n and the % figure."""

    method: str
    dataset: str
    task: str
    mode: str
    n: int | None
    percent: float
    prompt_style: str = "storylab"


def table_rows(summaries: Sequence[dict[str, Any]], with_paper: bool = False) -> list[TableRow]:
    """One row per run (a later run of the same method, data set, style, task and mode wins), paper rows first."""
    rows: dict[tuple, TableRow] = {}
    if with_paper:
        for name, values in PAPER_ROWS.items():
            for (task, mode), v in zip(COLUMNS, values):
                if v is not None:
                    rows[(name, "SFD (paper)", "paper", task, mode)] = TableRow(f"{name} (paper)", "SFD (paper)", task,
                                                                             mode, None, v, "paper")
    for s in summaries:
        row = TableRow(str(s["method"]), str(s.get("dataset", "?")), s["task"], s["mode"],
                       int(s["n"]) if s.get("n") is not None else None, 100.0 * float(s["accuracy"]),
                       str(s.get("prompt_style", "storylab")))
        rows[(row.method, row.dataset, row.prompt_style, row.task, row.mode)] = row
    return list(rows.values())


def results_table(summaries: Sequence[dict[str, Any]], with_paper: bool = False
                  ) -> tuple[list[tuple[str, str, str]], list[list[tuple[float, int | None] | None]]]:
    """The lectures' grid: keys (method, data set, prompt style) and per column (% figure, n) or None.

    Runs on different data sets (our 12-question sample, a 538-question release) are never one row.
    """
    grid: dict[tuple[str, str, str], list] = {}
    for r in table_rows(summaries, with_paper):
        grid.setdefault((r.method, r.dataset, r.prompt_style), [None] * len(COLUMNS))[COLUMNS.index((r.task, r.mode))] = (r.percent, r.n)
    return list(grid), list(grid.values())


def render_table(keys: Sequence[tuple[str, str, str]], grid: Sequence[Sequence[tuple[float, int | None] | None]],
                 title: str = "SFD results (% accuracy; OEQA: judge yes-rate), n = questions scored"):
    """A rich table in the lectures' layout, with the data set and prompt style of every row and n in every cell."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("Method", style="bold")
    table.add_column("Data set")
    table.add_column("Prompt")
    for task, mode in COLUMNS:
        table.add_column(f"{'MCQA' if task == 'mcqa' else 'OEQA'} {mode}", justify="right")
    for (method, dataset, style), row in zip(keys, grid):
        cells = ["-" if c is None else (f"{c[0]:.1f}" if c[1] is None else f"{c[0]:.1f} (n={c[1]})") for c in row]
        table.add_row(method, dataset, style, *cells)
    return table
