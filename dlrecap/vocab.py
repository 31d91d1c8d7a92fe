"""Names every part of dlrecap shares: metrics and their direction, split names, defaults.

Plain strings and tiny functions only, so that anything may import this module without
loading NumPy or TensorFlow.
"""

from __future__ import annotations

from typing import Any, Literal

SplitName = Literal["train", "validation", "test"]

# The splits of a run, in the order tables show them.
SPLITS: tuple[SplitName, ...] = ("train", "validation", "test")

# Metrics a config may name (history.csv and metrics.json use these names).
METRICS = ("accuracy", "mae", "mse", "rmse", "auc", "precision", "recall", "f1")
# Metrics where a larger value is better: early stopping's `mode`, sweep ranking, best epoch.
MAXIMIZED = ("accuracy", "auc", "precision", "recall", "f1")
# Metrics that need class labels; a regression task cannot compute them.
CLASSIFICATION_METRICS = ("accuracy", "auc", "precision", "recall", "f1")
# Metrics scored per class too: metrics.json holds `recall_<label>` beside `recall`.
PER_CLASS_METRICS = ("precision", "recall", "f1")

# Rows drawn for a synthetic data set when the config names no `data.samples`.
DEFAULT_SAMPLES = 400

# A sigmoid or tanh unit is saturated when its output stays within SATURATION_MARGIN of a
# bound on at least SATURATED_ROWS of the rows: diagnostics.csv counts such units
# (train/health.py), activations.png marks them (neurons.py).
SATURATION_MARGIN = 0.02
SATURATED_ROWS = 0.95

VALIDATION_PREFIX = "val_"
# history.csv's column of the learning rate at each epoch's last step: no metric.
LEARNING_RATE = "learning_rate"


def default_metrics(task: str) -> tuple[str, ...]:
    """The metrics `training.metrics: auto` means for `task`."""
    return ("mae",) if task == "regression" else ("accuracy",)


def is_maximized(name: str) -> bool:
    """Whether a larger value of the metric `name` (with or without `val_`) is better."""
    return name.removeprefix(VALIDATION_PREFIX) in MAXIMIZED


def direction(name: str) -> Literal["max", "min"]:
    """`max` for metrics where larger is better, else `min` (Keras' `mode` names)."""
    return "max" if is_maximized(name) else "min"


def effective_monitor(monitor: str, has_validation: bool) -> str:
    """The monitor training can watch: `val_x` falls back to `x` when there is no validation split."""
    if monitor.startswith(VALIDATION_PREFIX) and not has_validation:
        return monitor.removeprefix(VALIDATION_PREFIX)
    return monitor


def per_class_key(metric: str, label: str) -> str:
    """The metrics.json key of `metric` for the class named `label`, e.g. `recall_yes`."""
    return f"{metric}_{label}"


def is_per_class(key: str, labels: list[str] | None) -> bool:
    """Whether a metrics.json key is one class's score (`recall_yes`), not a whole-split one."""
    return any(key == per_class_key(m, label) for m in PER_CLASS_METRICS for label in labels or ())


def per_class_rows(run: dict[str, Any],
                   splits: tuple[str, ...] = SPLITS) -> tuple[list[str], list[list[Any]]]:
    """The columns and rows of a run's per-class table: `[split, class, precision, recall, f1]`.

    Args:
        run: the run's metrics.json (its `labels` and per-split scores).
        splits: the splits to show, in order, where the run has them.
    """
    labels = run.get("labels") or []
    scored = [s for s in splits if run.get(s)]
    names = [m for m in PER_CLASS_METRICS
             if any(per_class_key(m, label) in run[s] for s in scored for label in labels)]
    rows = [[s, label, *[run[s].get(per_class_key(m, label)) for m in names]]
            for s in scored for label in labels] if names else []
    return ["split", "class", *names], rows


def split_of(column: str) -> SplitName:
    """The split a history column's value comes from: `val_x` -> validation, else train."""
    return "validation" if column.startswith(VALIDATION_PREFIX) else "train"
