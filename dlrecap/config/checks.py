"""Checks of a config against the task of its data, known once the data set is known."""

from __future__ import annotations

from dlrecap.config.choices import CLASSIFICATION_LOSSES
from dlrecap.config.schema import Config
from dlrecap.errors import ConfigError
from dlrecap.vocab import (
    CLASSIFICATION_METRICS,
    PER_CLASS_METRICS,
    VALIDATION_PREFIX,
    default_metrics,
    per_class_key,
)


def check_task(config: Config, task: str, labels: list[str] | None = None) -> None:
    """Raise ConfigError (with the key) when loss, output or metrics cannot serve `task`.

    With the data's class `labels`, the labels `training.class_weight` names are checked too.
    """
    training, model = config.training, config.model
    _check_class_weight(config, task, labels)
    _check_class_expectations(config, task, labels)
    regression = task == "regression"
    if regression and training.loss in CLASSIFICATION_LOSSES:
        raise ConfigError(
            f"{training.loss} needs class labels, but this is a regression task",
            key="training.loss", fix="use mse, mae or huber (or auto)",
        )
    if task == "multiclass" and training.loss == "binary_crossentropy":
        raise ConfigError(
            "binary_crossentropy needs two classes, but this task has more",
            key="training.loss", fix="use categorical_crossentropy (or auto)",
        )
    if regression and model.output_activation == "softmax":
        raise ConfigError(
            "softmax outputs class probabilities, but this is a regression task",
            key="model.output_activation", fix="use linear (or auto)",
        )
    if isinstance(training.metrics, list):
        for i, metric in enumerate(training.metrics):
            if regression and metric in CLASSIFICATION_METRICS:
                raise ConfigError(
                    f"{metric} needs class labels, but this is a regression task",
                    key=f"training.metrics[{i}]", fix="use mae, mse or rmse",
                )
    monitors = {"training.early_stopping.monitor":
                training.early_stopping.monitor if training.early_stopping else None,
                "training.lr_schedule.monitor": training.lr_schedule.monitor}
    metrics = _computed_metrics(config, task)
    for key, monitor in monitors.items():
        if monitor and monitor.removeprefix(VALIDATION_PREFIX) not in ("loss", *metrics):
            raise ConfigError(
                f"monitor {monitor!r} is not a computed metric (metrics: {', '.join(metrics)})",
                key=key, fix="monitor val_loss or add the metric",
            )


def _check_class_weight(config: Config, task: str, labels: list[str] | None) -> None:
    weights = config.training.class_weight
    if weights is None:
        return
    if task == "regression":
        raise ConfigError(
            "class_weight weighs rows by class, but this is a regression task",
            key="training.class_weight", fix="remove it",
        )
    if not isinstance(weights, dict) or labels is None:
        return
    for key in weights:
        if label_index(key, labels) is None:
            shown = ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
            raise ConfigError(
                f"no class is labelled {key!r}", key=f"training.class_weight.{key}",
                fix=f"the labels are: {shown}",
            )


def _check_class_expectations(config: Config, task: str, labels: list[str] | None) -> None:
    """`expect:` keys of one class's score (`test_recall_yes`) name a per-class metric the run
    computes and, once the data's class `labels` are known, one of its classes."""
    computed = _computed_metrics(config, task)
    for key in config.expect:
        split, _, name = key.partition("_")
        metric, _, label = name.partition("_")
        if not label:
            continue  # a whole split's score, such as test_accuracy
        where = f"expect.{key}"
        if task == "regression":
            raise ConfigError(f"unknown expectation {key!r}: a regression task has no per-class "
                              "scores", key=where, fix=f"use a whole split's score, e.g. {split}_mae")
        if metric not in computed:
            raise ConfigError(f"unknown expectation {key!r}: the run does not compute {metric} "
                              f"(training.metrics: {', '.join(computed)})", key=where,
                              fix=f"add {metric} to training.metrics")
        if labels is not None and label not in labels:
            keys = [f"{split}_{per_class_key(m, lab)}" for m in PER_CLASS_METRICS if m in computed
                    for lab in labels]
            shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
            raise ConfigError(f"unknown expectation {key!r}: no class is labelled {label!r}",
                              key=where, fix=f"this run's per-class keys are: {shown}")


def _computed_metrics(config: Config, task: str) -> list[str]:
    """The metrics the run computes: `training.metrics`, or the task's default for `auto`."""
    metrics = config.training.metrics
    return metrics if isinstance(metrics, list) else list(default_metrics(task))


def label_index(key: str, labels: list[str]) -> int | None:
    """The class index the label text `key` names, or None: `1.0` names the numeric label `1`."""
    if key in labels:
        return labels.index(key)
    try:
        number = float(key)
    except ValueError:
        return None
    text = str(int(number)) if number.is_integer() else repr(number)
    return labels.index(text) if text in labels else None
