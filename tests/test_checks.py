"""Tests for dlrecap.config.checks: loss, output and metrics that cannot serve the task."""

from __future__ import annotations

import pytest
import yaml

from dlrecap.config.load import load_config
from dlrecap.errors import ConfigError


def load(tmp_path, dataset: str, *overrides: str):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": dataset}}), encoding="utf-8")
    return load_config(path, list(overrides))


@pytest.mark.parametrize("dataset, override, message, key, fix", [
    ("sine", "training.loss=binary_crossentropy",
     "binary_crossentropy needs class labels, but this is a regression task",
     "training.loss", "use mse, mae or huber (or auto)"),
    ("iris", "training.loss=binary_crossentropy",
     "binary_crossentropy needs two classes, but this task has more",
     "training.loss", "use categorical_crossentropy (or auto)"),
    ("sine", "model.output_activation=softmax",
     "softmax outputs class probabilities, but this is a regression task",
     "model.output_activation", "use linear (or auto)"),
    ("diabetes", "training.metrics=[mae, accuracy]",
     "accuracy needs class labels, but this is a regression task",
     "training.metrics[1]", "use mae, mse or rmse"),
    ("moons", "training.early_stopping.monitor=val_auc",
     "monitor 'val_auc' is not a computed metric (metrics: accuracy)",
     "training.early_stopping.monitor", "monitor val_loss or add the metric"),
    ("sine", "training.early_stopping.monitor=accuracy",
     "monitor 'accuracy' is not a computed metric (metrics: mae)",
     "training.early_stopping.monitor", "monitor val_loss or add the metric"),
])
def test_what_cannot_serve_the_task_is_refused_at_its_key(tmp_path, dataset, override, message,
                                                          key, fix):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, dataset, override)
    assert (str(info.value), info.value.key, info.value.fix) == (message, key, fix)


@pytest.mark.parametrize("dataset, overrides", [
    ("sine", ["training.loss=huber", "model.output_activation=linear"]),
    ("iris", ["training.loss=categorical_crossentropy", "model.output_activation=softmax"]),
    ("xor", ["training.loss=binary_crossentropy"]),
    ("moons", ["training.metrics=[accuracy, auc]", "training.early_stopping.monitor=val_auc"]),
    ("moons", ["training.early_stopping.monitor=val_loss"]),
    ("sine", ["training.early_stopping.monitor=val_mae"]),
    ("diabetes", ["training.metrics=[mae, rmse]", "training.early_stopping.monitor=rmse"]),
])
def test_what_serves_the_task_is_accepted(tmp_path, dataset, overrides):
    load(tmp_path, dataset, *overrides)


def test_a_file_with_a_stated_task_is_checked_before_it_is_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"path": "absent.csv", "target": "y",
                                             "task": "regression"},
                                    "training": {"loss": "binary_crossentropy"}}))
    with pytest.raises(ConfigError, match="needs class labels"):
        load_config(path)
