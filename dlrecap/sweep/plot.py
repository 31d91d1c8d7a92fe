"""sweep.png: the sweep's metric per trial, and the trials' validation curves overlaid.

Trials that differ only in `seed` share a group (one column, one colour), so the spread
between seeds is visible next to the difference between settings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlrecap import runs
from dlrecap.sweep.plan import SweepPlan
from dlrecap.sweep.results import Row, format_value

PLOT_FILE = "sweep.png"


def group_label(row: Row) -> str:
    """The trial's swept values other than the seed, e.g. `model.activation=tanh`."""
    parts = [f"{k.split('.')[-1]}={format_value(v)}" for k, v in row.trial.params.items() if k != "seed"]
    return ", ".join(parts) or "all"


def plot_sweep(path: Path, rows: list[Row], plan: SweepPlan) -> None:
    """Draw sweep.png (matplotlib's Agg backend: no display needed).

    Args:
        path: the PNG to write (atomically).
        rows: every trial, in trial order.
        plan: the sweep (its metric names the curves and the score).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[Row]] = {}
    for row in sorted(rows, key=lambda r: r.trial.index):
        groups.setdefault(group_label(row), []).append(row)
    colors = plt.get_cmap("tab10")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    kept: list[float] = []  # the values of completed trials set the axes' range
    failed_values: list[float] = []
    for x, (label, members) in enumerate(groups.items()):
        color = colors(x % 10)
        scores = [r.score for r in members if r.score is not None]
        spread = [x + (i - (len(scores) - 1) / 2) * 0.08 for i in range(len(scores))]
        left.scatter(spread, scores, color=color, zorder=3)
        if scores:
            left.hlines(sum(scores) / len(scores), x - 0.3, x + 0.3, color=color, linewidth=2)
        failed = len(members) - len(scores)
        if failed:
            left.annotate(f"{failed} failed", (x, 0.02), xycoords=("data", "axes fraction"),
                          ha="center", color="crimson")
        for i, row in enumerate(members):
            epochs, values = curve_of(row, plan.metric)
            done = row.status == "completed"
            (kept if done else failed_values).extend(values)
            if values:  # a failed trial's curve is dashed and may leave the plot upwards
                right.plot(epochs, values, color=color, alpha=0.75, linewidth=1.2,
                           linestyle="-" if done else "--", label=label if i == 0 else None)
    left.set_xlim(-0.5, len(groups) - 0.5)
    left.set_xticks(range(len(groups)), list(groups), rotation=20, ha="right")
    _scale(left, [r.score for r in rows if r.score is not None])
    _scale(right, kept, failed_values)
    left.set_ylabel(plan.metric)
    left.set_title(f"{plan.name}: final {plan.metric} per trial (bar: mean)")
    left.grid(axis="y", alpha=0.3)
    right.set_xlabel("epoch")
    right.set_ylabel(plan.metric)
    right.set_title(f"{plan.metric} per epoch (dashed: failed)")
    right.grid(alpha=0.3)
    if groups:
        right.legend(fontsize="small")
    fig.tight_layout()
    with runs.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def _scale(axes: Any, values: list[float], diverged: Sequence[float] = ()) -> None:
    """Fit the y-axis to `values`; a log scale when they span more than two decades.

    On a log scale the axis also takes diverged values up to three decades higher, so a
    climb shows without squashing the others; beyond that a curve leaves the plot.
    """
    if not values:
        return
    low, high = min(values), max(values)
    if low > 0 and high / low > 100:
        axes.set_yscale("log")
        top = max([high, *[v for v in diverged if v <= high * 1000]])
        axes.set_ylim(low / 2, top * 2)
    else:
        pad = (high - low) * 0.08 or abs(high) * 0.1 or 0.1
        axes.set_ylim(low - pad, high + pad)


def curve_of(row: Row, metric: str) -> tuple[list[int], list[float]]:
    """The metric's per-epoch values: kept in the study, else from the trial's history.csv."""
    if row.curve is not None:
        return list(row.curve[0]), list(row.curve[1])
    if row.run is None or not row.run.is_dir():  # a run another machine made
        return [], []
    try:
        history = runs.read_history(row.run)
    except ValueError:  # a cell that is not a number: the file was not written by dlrecap
        return [], []
    epochs, values = [], []
    for record in history:
        value = record.get(metric, record.get(metric.removeprefix("val_")))
        # a missing value, or a diverged epoch that would flatten every other curve
        if value is None or not math.isfinite(value):
            continue
        epochs.append(int(record["epoch"]))
        values.append(value)
    return epochs, values
