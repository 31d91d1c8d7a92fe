"""Score a finished run on a new labelled file: `dlrecap eval RUN --data FILE`.

The file is read as `predict` reads its input (the run's feature columns, by name; other
columns are ignored), plus the target column: the config's `data.target`, or `y` for a
`.npz` file, or `target` for a run on a built-in data set. Its labels must be ones the
run knows. The model is scored as `eval` scores a split, beside the trivial baseline fitted
on the run's own training rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dlrecap import runs
from dlrecap.data.files import category_values, numeric_values, read_table, shown_path
from dlrecap.errors import DataError, RunError, printable
from dlrecap.evaluate import Scores, _model_scores, load_run
from dlrecap.predict import run_inputs

if TYPE_CHECKING:
    from dlrecap.config.schema import DataConfig


def target_column(data: DataConfig) -> str:
    """The column a labelled file holds the run's target in."""
    if data.target:
        return data.target
    return "y" if data.path and str(data.path).lower().endswith(".npz") else "target"


def score_file(run_dir: Path, path: Path,
               on_warning: Callable[[str], None] = lambda _line: None) -> Scores:
    """The run's saved model and the trivial baseline, scored on the labelled rows of `path`.

    Raises:
        DataError: an unreadable file, a missing feature or target column, a missing value,
            a non-number, or a label the run does not know (naming the column and the row).
        RunError: the run has no model or does not name its features.
    """
    path = shown_path(path)
    info = runs.read_metrics(run_dir)
    features = info.get("features")
    if not features:
        raise RunError(f"{run_dir}: metrics.json names no features", fix="train the run again")
    config, splits, head, model = load_run(run_dir)
    target = target_column(config.data)
    frame = read_table(path)
    wanted = run_inputs(run_dir, features)
    absent = [c for c in [*wanted.columns, target] if c not in frame.columns]
    if absent:
        raise DataError(
            f"{path}: no column{'s' if len(absent) > 1 else ''} {', '.join(repr(a) for a in absent)}, "
            f"which scoring run {run_dir.name} needs (columns: {', '.join(frame.columns)})",
            fix=f"the run's features: {', '.join(wanted.columns)}; its target: {target}")
    x = wanted.matrix(frame, model, path, on_warning)
    y = _targets(frame[target], target, splits.label_names, path)
    from dlrecap.baseline import baseline_metrics

    labels = splits.label_names
    baseline = baseline_metrics(splits.task, head.loss, head.metrics, splits.y_train, y, labels)
    return Scores(_model_scores(run_dir, config.seed, model, head, x, y, labels), baseline)


def _targets(column: pd.Series, name: str, labels: list[str] | None, path: Path) -> np.ndarray:
    """Class indices of the run's labels (classification) or float32 targets (regression)."""
    if labels is None:
        values = numeric_values(column, path)
        missing = np.isnan(values)
    else:
        known = set(labels)
        values = np.array([None if v is None else _label(v, known) for v in category_values(column)],
                          dtype=object)
        missing = pd.isna(values)
    if missing.any():
        raise DataError(f"{path}: target column {name!r}, data row {int(np.argmax(missing)) + 1}: "
                        "missing value", fix="fill it in, or drop the row")
    if labels is None:
        return values.astype(np.float32)
    index = {label: i for i, label in enumerate(labels)}
    unknown = [i for i, v in enumerate(values) if v not in index]
    if unknown:
        raise DataError(printable(
            f"{path}: target column {name!r}, data row {unknown[0] + 1}: label "
            f"{values[unknown[0]]!r} is not one the run knows ({', '.join(labels)})"),
            fix="score rows of the run's own classes only")
    return np.array([index[v] for v in values], dtype=np.int64)


def _label(value: object, known: set[str]) -> str:
    """A cell as the run names its classes: text as it is, `1` for a number 1 or 1.0."""
    if str(value) in known or isinstance(value, (bool, np.bool_)):
        return str(value)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else repr(number)
