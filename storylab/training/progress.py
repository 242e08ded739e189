"""Rich progress bars used by every long-running command (training, sampling, evaluation)."""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Bar:
    def __init__(self, progress: Progress | None, task: Any) -> None:
        self._progress, self._task = progress, task

    def update(self, completed: int, **metrics: float) -> None:
        """Move the bar to ``completed`` and show the given metrics beside it."""
        if self._progress is None:
            return
        text = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self._progress.update(self._task, completed=completed, metrics=text)

    def note(self, text: str) -> None:
        """Print one line above the bar (an estimate, a warning); nothing when the bar is disabled."""
        if self._progress is not None:
            self._progress.console.print(text, highlight=False, markup=False)

    def advance(self, n: int = 1) -> None:
        """Advance the bar by ``n``."""
        if self._progress is not None:
            self._progress.advance(self._task, n)


@contextlib.contextmanager
def progress_bar(description: str, total: int, completed: int = 0, enabled: bool = True) -> Iterator[_Bar]:
    """A progress bar on stderr with elapsed/remaining time and live metrics; a no-op when disabled.

    If the block raises (bad input found mid-way, Ctrl-C), the bar is erased so that the command's
    one ``error:`` line stands alone."""
    if not enabled:
        yield _Bar(None, None)
        return
    console = Console(file=sys.stderr)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"),
                        console=console, transient=not console.is_terminal)  # a log or a pipe gets no bar
    with progress:
        task = progress.add_task(description, total=total, completed=completed, metrics="")
        try:
            yield _Bar(progress, task)
        except BaseException:
            # a failed or interrupted command ends with its one error line, not a half-filled bar above it
            progress.live.transient = True
            raise
