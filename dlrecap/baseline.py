"""The trivial baseline beside every result: what a model learns nothing still scores.

For classification the trivial predictor answers the majority class of the training rows
(its loss: the training rows' class shares as probabilities, the best a constant can do);
for regression it answers the mean of the training targets. A learner whose network scores
about the same has trained nothing, and is told so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

# "Clearly better" than the baseline: more than this much accuracy, or this share less error.
ACCURACY_MARGIN = 0.02
ERROR_MARGIN = 0.05
# Probabilities are clipped as Keras' cross-entropy clips them.
_EPSILON = 1e-7


def baseline_metrics(task: str, loss: str, metrics: tuple[str, ...], y_train: np.ndarray,
                     y: np.ndarray, labels: list[str] | None = None) -> dict[str, float]:
    """The metrics (`loss` first) of the trivial predictor fitted on `y_train`, scored on `y`.

    Args:
        task: `binary`, `multiclass` or `regression`.
        loss: the Keras loss name the model trains with.
        metrics: the metric names the run reports.
        y_train: training targets (class indices, or numbers in original units).
        y: the split's targets, the same kind.
        labels: the class names, for per-class scores (`recall_<label>`).
    """
    if task == "regression":
        return _regression(loss, metrics, float(np.mean(y_train)), np.asarray(y, dtype=np.float64))
    return _classification(metrics, np.asarray(y_train, dtype=np.int64),
                           np.asarray(y, dtype=np.int64), labels, binary=task == "binary")


def _classification(metrics: tuple[str, ...], y_train: np.ndarray, y: np.ndarray,
                    labels: list[str] | None, binary: bool) -> dict[str, float]:
    from dlrecap.scoring import class_scores

    classes = max(int(max(y_train.max(initial=0), y.max(initial=0))) + 1, len(labels or ()), 2)
    shares = np.bincount(y_train, minlength=classes) / len(y_train)
    probability = np.clip(shares[y], _EPSILON, 1 - _EPSILON)
    majority = int(np.argmax(shares))
    out = {"loss": float(-np.mean(np.log(probability)))}
    # The same constant output for every row, as the model's head would give it: class 1's
    # share (one sigmoid), or every class's share (softmax).
    constant = np.full((len(y), 1), shares[1]) if binary else np.tile(shares, (len(y), 1))
    counted = class_scores(metrics, constant, y, labels)
    for name in metrics:
        if name == "accuracy":
            out[name] = float(np.mean(y == majority))
        elif name in counted:
            out[name] = counted[name]
    return {**out, **counted}


def _regression(loss: str, metrics: tuple[str, ...], mean: float, y: np.ndarray) -> dict[str, float]:
    error = y - mean
    values = {"mse": float(np.mean(error**2)), "mae": float(np.mean(np.abs(error)))}
    values["rmse"] = math.sqrt(values["mse"])
    absolute = np.abs(error)
    values["huber"] = float(np.mean(np.where(absolute <= 1, 0.5 * error**2, absolute - 0.5)))
    out = {"loss": values.get(loss, values["mse"])}
    out.update({name: values[name] for name in metrics if name in values})
    return out


def no_better(model: dict[str, float], baseline: dict[str, float]) -> str | None:
    """Words for a model that does not clearly beat its baseline on a split, else None.

    A run that reports F1 is judged on it rather than on accuracy: with a rare class, always
    answering the majority is accurate, and a model that finds the rare class may be less so.
    """
    for name in ("f1", "accuracy"):
        if name in model and name in baseline:
            if model[name] < baseline[name] + ACCURACY_MARGIN:
                return (f"{name} {model[name]:.4f} is no better than always predicting the "
                        f"majority class ({baseline[name]:.4f})")
            return None
    for name in ("mae", "mse", "rmse"):
        if name in model and name in baseline and baseline[name] > 0:
            if model[name] > baseline[name] * (1 - ERROR_MARGIN):
                return (f"{name} {model[name]:.4g} is no better than always predicting the mean "
                        f"of the training targets ({baseline[name]:.4g})")
            return None
    return None


def judged_split(run: Mapping[str, Any]) -> str | None:
    """The split a run is judged on: test, else validation when it has no test rows."""
    baseline = run.get("baseline") or {}
    return next((s for s in ("test", "validation") if run.get(s) and baseline.get(s)), None)


def run_verdict(run: Mapping[str, Any]) -> str | None:
    """Words for a run (its metrics.json) whose model does not clearly beat its baseline.

    It is judged on the test split, or the validation split when there is no test split.

    Example:

    >>> run_verdict({"test": {"accuracy": 0.5}, "baseline": {"test": {"accuracy": 0.5}}})
    'test accuracy 0.5000 is no better than always predicting the majority class (0.5000)'
    """
    split = judged_split(run)
    if split is None:
        return None
    words = no_better(run[split], run["baseline"][split])
    return f"{split} {words}" if words else None


def baseline_row(run: Mapping[str, Any], names: list[str]) -> list[Any] | None:
    """The table row `baseline (<split>)` under a run's metrics, or None without a baseline.

    Args:
        run: the run's metrics.json.
        names: the metric names of the table's columns.
    """
    split = judged_split(run)
    if split is None:
        return None
    return [f"baseline ({split})", *[run["baseline"][split].get(n) for n in names]]
