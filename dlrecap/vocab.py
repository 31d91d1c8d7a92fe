"""Names every part of dlrecap shares: metrics and their direction, split names, defaults.

Plain strings and tiny functions only, so that anything may import this module without
loading NumPy or TensorFlow.
"""

from __future__ import annotations

from typing import Literal

SplitName = Literal["train", "validation", "test"]

# The splits of a run, in the order tables show them.
SPLITS: tuple[SplitName, ...] = ("train", "validation", "test")

# Metrics a config may name (history.csv and metrics.json use these names).
METRICS = ("accuracy", "mae", "mse", "rmse", "auc", "precision", "recall")
# Metrics where a larger value is better: early stopping's `mode`, sweep ranking, best epoch.
MAXIMIZED = ("accuracy", "auc", "precision", "recall")
# Metrics that need class labels; a regression task cannot compute them.
CLASSIFICATION_METRICS = ("accuracy", "auc", "precision", "recall")

# Rows drawn for a synthetic data set when the config names no `data.samples`.
DEFAULT_SAMPLES = 400

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


def split_of(column: str) -> SplitName:
    """The split a history column's value comes from: `val_x` -> validation, else train."""
    return "validation" if column.startswith(VALIDATION_PREFIX) else "train"
