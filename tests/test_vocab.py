"""Tests for dlrecap.vocab: which way each metric improves, and the monitor's fallback."""

from __future__ import annotations

import pytest

from dlrecap import vocab

LARGER_IS_BETTER = ["accuracy", "auc", "precision", "recall", "f1"]
SMALLER_IS_BETTER = ["loss", "mae", "mse", "rmse"]


@pytest.mark.parametrize("name", LARGER_IS_BETTER + [f"val_{m}" for m in LARGER_IS_BETTER])
def test_scores_are_maximized(name):
    assert vocab.is_maximized(name)
    assert vocab.direction(name) == "max"


@pytest.mark.parametrize("name", SMALLER_IS_BETTER + [f"val_{m}" for m in SMALLER_IS_BETTER])
def test_losses_and_errors_are_minimized(name):
    assert not vocab.is_maximized(name)
    assert vocab.direction(name) == "min"


def test_every_metric_has_a_known_direction():
    assert sorted(vocab.METRICS) == sorted(set(LARGER_IS_BETTER + SMALLER_IS_BETTER) - {"loss"})


def test_the_validation_monitor_falls_back_to_the_training_value():
    assert vocab.effective_monitor("val_accuracy", has_validation=False) == "accuracy"
    assert vocab.effective_monitor("val_accuracy", has_validation=True) == "val_accuracy"
    assert vocab.effective_monitor("loss", has_validation=False) == "loss"


def test_auto_metrics_follow_the_task():
    assert vocab.default_metrics("regression") == ("mae",)
    assert vocab.default_metrics("binary") == vocab.default_metrics("multiclass") == ("accuracy",)


@pytest.mark.parametrize("column, split", [("val_loss", "validation"), ("loss", "train"),
                                           ("accuracy", "train"), ("val_auc", "validation")])
def test_a_history_column_names_its_split(column, split):
    assert vocab.split_of(column) == split
