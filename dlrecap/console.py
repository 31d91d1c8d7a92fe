"""All terminal output: results to stdout, progress, warnings and errors to stderr.

User text is printed with `markup=False` so brackets in paths or keys are never eaten.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def _width(stream: TextIO) -> int | None:
    # Piped output is not cut to 80 columns: tables stay one row per line.
    return None if stream.isatty() or "COLUMNS" in os.environ else 160


out = Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_width(sys.stderr))


def error(text: str) -> None:
    err.print(f"error: {text}", markup=False, style="bold red")


def warning(text: str) -> None:
    err.print(f"warning: {text}", markup=False, style="yellow")


def note(text: str) -> None:
    err.print(text, markup=False)


def result(text: str) -> None:
    out.print(text, markup=False)


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table of results to stdout."""
    t = Table(title=title, title_justify="left", header_style="bold")
    cells = [[_fmt(v) for v in row] for row in rows]
    for i, column in enumerate(columns):
        left = column in ("run", "name", "split", "key", "metric", "fold")
        # The first column names things people copy (run directories): never cut it short.
        widest = max((len(row[0]) for row in cells), default=0) if i == 0 else None
        t.add_column(column, justify="left" if left else "right", min_width=widest,
                     no_wrap=i == 0)
    for row in cells:
        t.add_row(*row)
    out.print(t)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return number(value)
    return str(value)


def number(value: float) -> str:
    """Four decimals, or four significant digits when that would be a wall of digits."""
    return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.4g}"


class EpochProgress:
    """Shows training as it happens: a live bar on a terminal, plain lines elsewhere.

    Plain mode prints about twenty lines per run, so logs stay readable at 1000 epochs.
    """

    def __init__(self) -> None:
        self.main_metric: str | None = None
        self.live = err.is_terminal
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.epochs = 0
        self.begin = 0.0

    def start(self, epochs: int, columns: list[str]) -> None:
        self.epochs, self.begin = epochs, time.perf_counter()
        # history columns are epoch, loss, then the metrics: the first metric is the headline
        self.main_metric = columns[2] if len(columns) > 2 and columns[2] != "val_loss" else None
        if not self.live:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("epoch {task.completed:>4.0f}/{task.total:.0f}"),
            BarColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=err,
            transient=False,
        )
        self.task = self.progress.add_task("train", total=epochs, stats="", eta="?")
        self.progress.start()

    def epoch(self, epoch: int, logs: dict[str, float]) -> None:
        stats = self._stats(logs)
        elapsed = time.perf_counter() - self.begin
        eta = elapsed / epoch * (self.epochs - epoch)
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=epoch, stats=stats, eta=f"{eta:.0f}s")
        elif epoch == 1 or epoch == self.epochs or epoch % max(1, self.epochs // 20) == 0:
            note(f"epoch {epoch}/{self.epochs}  {stats}  ({elapsed:.1f}s)")

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _stats(self, logs: dict[str, float]) -> str:
        keys = ["loss", "val_loss"]
        if self.main_metric:
            keys += [self.main_metric, f"val_{self.main_metric}"]
        return "  ".join(f"{k} {number(logs[k])}" for k in keys if k in logs)
