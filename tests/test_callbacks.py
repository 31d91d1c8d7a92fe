"""Tests for dlrecap.train.callbacks driven with fake logs: the NaN guard, history.csv."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlrecap.errors import TrainingError
from dlrecap.runs import read_history
from dlrecap.train.callbacks import FiniteLossGuard, HistoryWriter

keras = pytest.importorskip("keras")


def weights_of(value: float, model: keras.Model) -> list[np.ndarray]:
    return [np.full_like(w, value) for w in model.get_weights()]


def assert_weights(model: keras.Model, want: list[np.ndarray]) -> None:
    for got, expected in zip(model.get_weights(), want, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.fixture
def guarded():
    """A tiny model under a FiniteLossGuard that has seen one finite epoch (weights all 1)."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    guard = FiniteLossGuard()
    guard.set_model(model)
    guard.on_train_begin()
    guard.on_epoch_begin(0)
    model.set_weights(weights_of(1.0, model))
    guard.on_epoch_end(0, {"loss": 0.7})
    guard.on_epoch_begin(1)
    return model, guard


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_batch_loss_restores_the_last_finite_epochs_weights(guarded, bad):
    model, guard = guarded
    model.set_weights(weights_of(math.nan, model))  # what the diverging step left behind
    with pytest.raises(TrainingError, match="epoch 2"):
        guard.on_train_batch_end(3, {"loss": bad})
    assert_weights(model, weights_of(1.0, model))


def test_a_non_finite_epoch_loss_restores_the_last_finite_epochs_weights(guarded):
    model, guard = guarded
    guard.on_train_batch_end(0, {"loss": 0.6})
    model.set_weights(weights_of(2.0, model))
    with pytest.raises(TrainingError, match="training diverged"):
        guard.on_epoch_end(1, {"loss": math.nan})
    assert_weights(model, weights_of(1.0, model))


def test_each_finite_epoch_becomes_the_one_to_return_to(guarded):
    model, guard = guarded
    model.set_weights(weights_of(2.0, model))
    guard.on_train_batch_end(0, {"loss": 0.5})
    guard.on_epoch_end(1, {"loss": 0.5})
    guard.on_epoch_begin(2)
    model.set_weights(weights_of(3.0, model))
    with pytest.raises(TrainingError, match="epoch 3"):
        guard.on_train_batch_end(0, {"loss": math.inf})
    assert_weights(model, weights_of(2.0, model))


def test_history_writer_rewrites_the_file_after_every_epoch(tmp_path):
    path = tmp_path / "history.csv"
    writer = HistoryWriter(tmp_path, ["epoch", "loss", "val_loss"])
    writer.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.625})
    assert read_history(tmp_path) == [{"epoch": 1, "loss": 0.5, "val_loss": 0.625}]
    writer.on_epoch_end(1, {"loss": 0.25})
    assert path.read_text() == "epoch,loss,val_loss\n1,0.5,0.625\n2,0.25,\n"


def test_history_writer_waits_for_current_weights_or_half_a_second(tmp_path, monkeypatch):
    """Between epochs whose weights the model does not hold, the file is rewritten at most
    every WRITE_EVERY_S (a live view still moves), and at once at an epoch it does hold."""
    from dlrecap.train import callbacks

    clock = [100.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock[0])
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    writer = HistoryWriter(tmp_path, ["epoch", "loss"])
    writer.set_model(model)
    setattr(model, callbacks.STALE_WEIGHTS, True)
    writer.on_epoch_end(0, {"loss": 0.5})  # never written yet: written
    writer.on_epoch_end(1, {"loss": 0.4})
    assert [r["epoch"] for r in read_history(tmp_path)] == [1]
    clock[0] += HistoryWriter.WRITE_EVERY_S
    writer.on_epoch_end(2, {"loss": 0.3})
    assert [r["epoch"] for r in read_history(tmp_path)] == [1, 2, 3]
    writer.on_epoch_end(3, {"loss": 0.2})
    setattr(model, callbacks.STALE_WEIGHTS, False)
    writer.on_epoch_end(4, {"loss": 0.1})
    assert [r["epoch"] for r in read_history(tmp_path)] == [1, 2, 3, 4, 5]
