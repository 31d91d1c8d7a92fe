"""All terminal output: results to stdout, progress, warnings and errors to stderr.

User text is printed with `markup=False` so brackets in paths or keys are never eaten.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import BarColumn, Progress, TaskID


def _width(stream: TextIO) -> int | None:
    # Piped output is not cut to 80 columns: tables stay one row per line.
    return None if stream.isatty() or "COLUMNS" in os.environ else 160


# emoji=False: text such as `:fire:` in a path or a key is printed as written.
out = Console(highlight=False, soft_wrap=True, emoji=False, width=_width(sys.stdout))
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False, width=_width(sys.stderr))


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
    from rich.table import Table  # here: most commands that answer at once print no table

    t = Table(title=title, title_justify="left", header_style="bold")
    cells = [[_fmt(v) for v in row] for row in rows]
    for i, column in enumerate(columns):
        left = column in ("run", "name", "split", "key", "metric", "class", "fold")
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


def duration(seconds: float) -> str:
    """A short, whole-second duration: `42s`, `3m05s`, `1h02m`."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class EpochProgress:
    """Shows training as it happens: a live bar on a terminal, plain lines elsewhere.

    The live line fits the terminal's width: the statistics shown shrink before anything
    is cut. Plain mode prints about twenty lines per run, so logs stay readable at 1000
    epochs.

    Args:
        console: where it draws (default: stderr).
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or err
        self.main_metric: str | None = None
        self.live = self.console.is_terminal
        self.progress: Progress | None = None
        self.bar: BarColumn | None = None
        self.task: TaskID | None = None
        self.epochs = self.done = 0
        self.begin = 0.0

    def start(self, epochs: int, columns: list[str], done: int = 0) -> None:
        """Begin at epoch `done` (a resumed run's epochs so far), announced instead of replayed."""
        self.epochs, self.done, self.begin = epochs, done, time.perf_counter()
        # history columns are epoch, loss, then the metrics: the first metric is the headline
        self.main_metric = columns[2] if len(columns) > 2 and columns[2] not in (
            "val_loss", "learning_rate") else None
        if done:
            self.console.print(f"resuming after epoch {done} of {epochs}", markup=False)
        if not self.live:
            return
        from rich.progress import BarColumn, Progress, TextColumn

        self.bar = BarColumn(bar_width=MIN_BAR)  # widened to what the text leaves free
        self.progress = Progress(
            TextColumn("{task.fields[counter]}"),
            self.bar,
            TextColumn("{task.fields[stats]}"),
            TextColumn("{task.fields[times]}"),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task("train", total=epochs, completed=done, stats="",
                                           counter=self._counter(done), times="")
        self.progress.start()

    def epoch(self, epoch: int, logs: dict[str, float]) -> None:
        elapsed = time.perf_counter() - self.begin
        eta = elapsed / max(1, epoch - self.done) * (self.epochs - epoch)
        if self.progress is not None and self.bar is not None and self.task is not None:
            times = f"{duration(elapsed)} ETA {duration(eta)}"
            counter = self._counter(epoch)
            # Four columns, a space between each, one column spare against wrapping.
            room = self.console.width - 1 - len(counter) - len(times) - 3
            stats = fitted(self._stats(logs), room - MIN_BAR)
            bar = max(MIN_BAR, min(MAX_BAR, room - len(stats)))
            self.bar.bar_width = bar
            self.progress.update(self.task, completed=epoch, stats=stats, counter=counter,
                                 times=times)
        elif epoch == 1 or epoch == self.epochs or epoch % max(1, self.epochs // 20) == 0:
            # `out`, not `print`: a plain line, without print's layout (a seventh of its cost).
            self.console.out(f"epoch {epoch}/{self.epochs}  {self._stats(logs)}  ({elapsed:.1f}s)",
                             highlight=False)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _counter(self, epoch: int) -> str:
        return f"epoch {epoch:>{len(str(self.epochs))}}/{self.epochs}"

    def _stats(self, logs: dict[str, float]) -> str:
        keys = ["loss", "val_loss"]
        if self.main_metric:
            keys += [self.main_metric, f"val_{self.main_metric}"]
        return "  ".join(f"{k} {number(logs[k])}" for k in keys if k in logs)


# The live bar's width: at least this much bar, and at most this much (the rest is text).
MIN_BAR, MAX_BAR = 8, 40


def fitted(stats: str, room: int) -> str:
    """`stats` (`name value` pairs two spaces apart), fewer of them until it fits in `room`.

    Validation values go last (they are what early stopping watches, so they stay longest),
    and the training pairs are dropped first.
    """
    pairs = stats.split("  ") if stats else []
    while pairs and len("  ".join(pairs)) > room:
        training = [p for p in pairs if not p.startswith("val_")]
        pairs.remove(training[-1] if training else pairs[-1])
    return "  ".join(pairs)
