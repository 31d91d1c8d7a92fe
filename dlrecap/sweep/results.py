"""A sweep's results: one row per trial, ranked, written as sweep.csv and best.yaml.

The worker that trains a trial reads its row from the run directory (metrics.json,
config.yaml, history.csv) and stores it in the study, so that the rows can be gathered
from the database on any machine, whichever machine made the run directories.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dlrecap import runs
from dlrecap.errors import RunError
from dlrecap.sweep.plan import SweepPlan, Trial
from dlrecap.vocab import SPLITS

CSV_FILE = "sweep.csv"
BEST_FILE = "best.yaml"


@dataclass
class Row:
    """One trial as the tables and files show it.

    Args:
        trial: the trial (index, name, swept values).
        status: `completed`, `failed`, `interrupted` or `pending`.
        run: its run directory, when one was made.
        metrics: final metrics flattened as `<split>_<metric>`, e.g. `validation_accuracy`.
        score: the value of the sweep's metric, None when the trial did not complete.
    """

    trial: Trial
    status: str
    run: Path | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    duration_s: float | None = None
    error: str | None = None
    config_text: str | None = None
    curve: tuple[list[int], list[float]] | None = None
    warnings: list[str] = field(default_factory=list)
    worker: str | None = None  # `host:pid` of the process that took it


def score_of(metrics: dict[str, Any], metric: str) -> float | None:
    """The final value of `metric` (`val_loss`, `accuracy`, ...) in a metrics.json dict."""
    split = "validation" if metric.startswith("val_") else "train"
    values = metrics.get(split) or {}
    if not values and split == "validation":  # no validation rows: the trainer watched train
        values = metrics.get("train") or {}
    value = values.get(metric.removeprefix("val_"))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def make_row(sweep_dir: Path, trial: Trial, record: dict[str, Any], metric: str) -> Row:
    """A row from a trial's record, filled from its run directory when there is one."""
    row = Row(trial, record.get("status", "pending"), error=record.get("error"),
              duration_s=record.get("duration_s"))
    if not record.get("run"):
        return row
    row.run = sweep_dir / record["run"]
    try:
        info = runs.read_metrics(row.run)
    except RunError:
        return row
    row.epochs, row.best_epoch = info.get("epochs_run"), info.get("best_epoch")
    row.duration_s = info.get("duration_s", row.duration_s)
    row.metrics = {f"{split}_{name}": value for split in SPLITS
                   for name, value in (info.get(split) or {}).items()}
    if row.status == "completed":
        row.score = score_of(info, metric)
    return row


def result_attrs(row: Row, outcome: dict[str, Any], metric: str) -> dict[str, Any]:
    """What the study keeps of a finished trial: enough to rebuild its row anywhere."""
    from dlrecap.sweep.plot import curve_of

    config = None
    if row.run is not None and (row.run / runs.CONFIG_FILE).is_file():
        config = (row.run / runs.CONFIG_FILE).read_text(encoding="utf-8")
    return {"status": row.status, "error": row.error, "duration_s": row.duration_s,
            "run": str(row.run.resolve()) if row.run else None, "epochs": row.epochs,
            "best_epoch": row.best_epoch, "metrics": row.metrics, "score": row.score,
            "config": config, "curve": list(curve_of(row, metric)),
            "warnings": outcome.get("warnings") or [], "unmet": outcome.get("unmet") or []}


def study_row(trial: Trial, frozen: Any) -> Row:
    """A row from the study's trial: its stored result, or pending/running."""
    attrs = frozen.user_attrs
    state = frozen.state.name
    if state in ("WAITING", "RUNNING"):
        start = frozen.datetime_start.timestamp() if frozen.datetime_start else None
        return Row(trial, "pending" if state == "WAITING" else "running", duration_s=start,
                   worker=attrs.get("worker"))
    status = attrs.get("status") or "failed"
    error = attrs.get("error")
    if "status" not in attrs:
        error = "its worker stopped (no heartbeat); retried too often, or not yet"
    curve = attrs.get("curve")
    return Row(trial, status, run=Path(attrs["run"]) if attrs.get("run") else None,
               epochs=attrs.get("epochs"), best_epoch=attrs.get("best_epoch"),
               metrics=attrs.get("metrics") or {}, score=attrs.get("score"),
               duration_s=attrs.get("duration_s"), error=error, config_text=attrs.get("config"),
               curve=(curve[0], curve[1]) if curve else None,
               warnings=attrs.get("warnings") or [], worker=attrs.get("worker"))


def ranked(rows: list[Row], direction: str) -> list[Row]:
    """Best first by score; trials without a score after, in trial order."""
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(rows, key=lambda r: (r.score is None, sign * r.score if r.score is not None
                                       else 0.0, r.trial.index))


def best_row(rows: list[Row], direction: str) -> Row | None:
    top = ranked(rows, direction)
    return top[0] if top and top[0].score is not None else None


def write_csv(path: Path, rows: list[Row], plan: SweepPlan) -> None:
    """sweep.csv: the swept values, status, epochs, every final metric and the duration."""
    metric_names = sorted({k for r in rows for k in r.metrics},
                          key=lambda k: (SPLITS.index(k.split("_")[0]), k))
    columns = ["trial", "name", *plan.keys, "status", "epochs", "best_epoch", plan.metric,
               *metric_names, "duration_s", "run", "error"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        values = [_cell(r.trial.params.get(k)) for k in plan.keys]
        writer.writerow([r.trial.index, r.trial.name, *values, r.status, r.epochs, r.best_epoch,
                         r.score, *[r.metrics.get(k) for k in metric_names], r.duration_s,
                         r.run.name if r.run else None, r.error])
    runs.write_text(path, buffer.getvalue())


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def write_best(path: Path, row: Row, plan: SweepPlan) -> None:
    """best.yaml: the winning trial's resolved config, named after the base config."""
    assert row.run is not None
    text = row.config_text or (row.run / runs.CONFIG_FILE).read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    config["name"] = plan.name
    swept = ", ".join(f"{k}={format_value(v)}" for k, v in row.trial.params.items())
    header = (f"# Best trial of the sweep in {path.parent.name}: #{row.trial.index} ({swept})\n"
              f"# {plan.metric} = {row.score:.6g}; its run: {row.run.name}\n"
              f"# Train it on its own: dlrecap train {path}\n")
    runs.write_text(path, header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def format_value(value: Any) -> str:
    """A swept value as the tables show it: short floats, YAML-like lists."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def trial_warnings(rows: list[Row]) -> list[str]:
    """Each trial's warning once, after the trials that gave it: `#2, #5: ...`, or
    `every trial: ...` (a warning about the data comes from each of them)."""
    trials: dict[str, list[int]] = {}
    for row in sorted(rows, key=lambda r: r.trial.index):
        for line in dict.fromkeys(row.warnings):
            trials.setdefault(line, []).append(row.trial.index)
    return [("every trial" if len(rows) > 1 and len(indices) == len(rows)
             else ", ".join(f"#{i}" for i in indices)) + f": {line}"
            for line, indices in trials.items()]
