"""How a sweep looks in the terminal: a live table while it runs, the ranked table at the end.

The live table goes to stderr (progress); when stderr is not a terminal, one plain line per
finished trial is printed instead, so logs stay readable.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dlrecap import console
from dlrecap.sweep.plan import SweepPlan, Trial
from dlrecap.sweep.results import Row, format_value
from dlrecap.sweep.seeds import print_sweep_settings


def table_columns(rows: list[Row], plan: SweepPlan) -> list[str]:
    """`#`, the swept keys, status, epochs, the ranking metric, other validation metrics, a test metric."""
    val = []
    for row in rows:
        val += [f"val_{k.removeprefix('validation_')}" for k in row.metrics
                if k.startswith("validation_") and f"val_{k.removeprefix('validation_')}" not in val]
    test = [k for row in rows for k in row.metrics if k.startswith("test_")]
    headline = next((k for k in test if k != "test_loss"), test[0] if test else None)
    others = [k for k in val if k != plan.metric]
    return ["#", *plan.keys, "status", "epochs", plan.metric, *others,
            *([headline] if headline else []), "time"]


def table_values(row: Row, columns: list[str], plan: SweepPlan, now: float | None = None) -> list[Any]:
    """One table row; a running trial shows its elapsed time when `now` is given."""
    values: list[Any] = [row.trial.index, *[format_value(row.trial.params.get(k)) for k in plan.keys],
                         row.status, row.epochs, row.score]
    for column in columns[len(values):-1]:
        key = "validation_" + column.removeprefix("val_") if column.startswith("val_") else column
        values.append(row.metrics.get(key))
    if row.status == "running" and now is not None and row.duration_s is not None:
        values.append(f"{now - row.duration_s:.0f}s")
    else:
        values.append(f"{row.duration_s:.1f}s" if row.duration_s is not None and
                      row.status != "running" else None)
    return values


class SweepDisplay:
    """Draws the sweep while it runs (the `SweepProgress` the CLI passes to `run_sweep`)."""

    def __init__(self) -> None:
        self.live_mode = console.err.is_terminal
        self.live: Any = None
        self.rows: dict[int, Row] = {}
        self.plan: SweepPlan | None = None
        self.total = 0
        self.finished = 0

    def start(self, plan: SweepPlan, rows: list[Row], sweep_dir: Path) -> None:
        self.plan, self.rows = plan, {r.trial.index: r for r in rows}
        self.total = len(rows) if plan.settings["search"] != "tpe" else plan.settings["trials"]
        self.finished = sum(r.status == "completed" for r in rows)
        before = f", {self.finished} done before" if self.finished else ""
        console.note(f"sweep {sweep_dir}: {self.total} trials{before}, "
                     f"{'up to ' if plan.jobs > 1 else ''}{plan.jobs} at a time, ranked by {plan.metric}")
        if self.live_mode:
            from rich.live import Live

            self.live = Live(console=console.err, get_renderable=self._render,
                             refresh_per_second=2, redirect_stdout=False, redirect_stderr=False)
            self.live.start()

    def trial_started(self, trial: Trial) -> None:
        # duration_s holds the start time while running; the finished row replaces it
        self.rows[trial.index] = Row(trial, "running", duration_s=time.time())

    def trial_finished(self, row: Row) -> None:
        self.rows[row.trial.index] = row
        self.finished += 1
        if self.live is None:
            console.note(self.line(row))

    def finish(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def line(self, row: Row) -> str:
        """A plain progress line for one finished trial."""
        assert self.plan is not None
        values = " ".join(f"{k}={format_value(v)}" for k, v in row.trial.params.items())
        head = f"[{self.finished}/{self.total}] #{row.trial.index} {values}: {row.status}"
        if row.status != "completed":
            return f"{head}: {row.error}" if row.error else head
        score = "-" if row.score is None else f"{row.score:.4f}"
        return f"{head}  {self.plan.metric} {score}  ({row.epochs} epochs, {row.duration_s or 0:.1f}s)"

    def _render(self) -> Any:
        from rich.table import Table

        assert self.plan is not None
        rows = [self.rows[i] for i in sorted(self.rows)]
        columns = table_columns(rows, self.plan)
        table = Table(title=f"sweep {self.plan.name}: {self.finished}/{self.total} done",
                      title_justify="left", header_style="bold")
        for column in columns:
            table.add_column(column, justify="right")  # as in the final table
        now = time.time()
        for row in rows:
            table.add_row(*[_fmt(v) for v in table_values(row, columns, self.plan, now)])
        return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def print_result(result: Any) -> None:
    """The ranked table on stdout; the winner, failures and files on stderr."""
    plan, rows = result.plan, result.rows
    columns = table_columns(rows, plan)
    title = f"{plan.name} sweep, best {plan.metric} first"
    console.table(title, columns, [table_values(r, columns, plan) for r in rows])
    print_sweep_settings(result)  # several seeds: mean ± std per setting, seed noise marked
    for row in rows:
        if row.status != "completed":
            console.note(f"#{row.trial.index} {row.status}" + (f": {row.error}" if row.error else ""))
    for line in result.warnings:
        console.warning(line)
    if result.reused:
        console.note(f"{result.reused} trial(s) were already done and were not trained again")
    if result.best is not None:
        best = result.best
        values = " ".join(f"{k}={format_value(v)}" for k, v in best.trial.params.items())
        console.note(f"best: #{best.trial.index} {values} ({plan.metric} {best.score:.4f}); "
                     f"wrote sweep.csv, best.yaml, sweep.png")


def print_status(result: Any) -> None:
    """`sweep --status`: the study's trials now, best first, and how many are in each state."""
    plan, rows = result.plan, result.rows
    columns = table_columns(rows, plan)
    console.table(f"{plan.name} sweep, best {plan.metric} first", columns,
                  [table_values(r, columns, plan) for r in rows])
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    total = plan.total_trials
    done = counts.get("completed", 0) + counts.get("failed", 0)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.note(f"{done} of {total} trials finished ({parts or 'none started'})")
    for row in rows:
        if row.status == "failed" and row.error:
            console.note(f"#{row.trial.index} failed: {row.error}")
