"""Tests for dlrecap.train.checkpoint: early stopping driven with fake logs, its resumed state."""

from __future__ import annotations

import numpy as np
import pytest

from dlrecap.train.checkpoint import ResumableEarlyStopping

keras = pytest.importorskip("keras")


def tiny_model() -> keras.Model:
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])


def drive(stopper: ResumableEarlyStopping, values: list[float], monitor: str = "val_loss",
          first_epoch: int = 0) -> int:
    """Feed one monitored value per epoch, as `fit` would; return the epochs that ran."""
    model = tiny_model()
    model.stop_training = False  # `fit` sets it before the first epoch
    stopper.set_model(model)
    stopper.on_train_begin()
    epochs = 0
    for epoch, value in enumerate(values, start=first_epoch):
        stopper.on_epoch_end(epoch, {monitor: value})
        epochs += 1
        if model.stop_training:
            break
    stopper.on_train_end()
    return epochs


def test_a_change_smaller_than_min_delta_is_no_improvement():
    stopper = ResumableEarlyStopping(monitor="val_loss", mode="min", min_delta=0.1, patience=2)
    # 0.95 and 0.80 are better than the best so far, but by less than 0.1
    ran = drive(stopper, [1.0, 0.95, 0.85, 0.80, 0.79, 0.5])
    assert stopper.best == 0.85 and stopper.best_epoch == 2
    assert ran == 5 and stopper.stopped_epoch == 4


def test_min_delta_in_max_mode_needs_a_rise_of_at_least_min_delta():
    stopper = ResumableEarlyStopping(monitor="val_accuracy", mode="max", min_delta=0.1,
                                     patience=2)
    ran = drive(stopper, [0.5, 0.55, 0.65, 0.7, 0.74, 0.9], monitor="val_accuracy")
    assert stopper.best == 0.65 and stopper.best_epoch == 2
    assert ran == 5


def test_max_mode_keeps_the_highest_value():
    stopper = ResumableEarlyStopping(monitor="val_accuracy", mode="max", patience=3)
    drive(stopper, [0.5, 0.8, 0.7, 0.6, 0.55], monitor="val_accuracy")
    assert stopper.best == 0.8 and stopper.best_epoch == 1


def test_state_reports_the_wait_so_far():
    stopper = ResumableEarlyStopping(monitor="val_loss", mode="min", patience=5)
    drive(stopper, [1.0, 1.2, 1.3])
    assert stopper.state() == {"best": 1.0, "best_epoch": 0, "wait": 2, "stopped_epoch": 0}


def test_a_resumed_stopper_keeps_best_best_epoch_and_wait():
    saved = {"best": 0.5, "best_epoch": 3, "wait": 2, "stopped_epoch": 0}
    stopper = ResumableEarlyStopping(monitor="val_loss", mode="min", patience=3,
                                     initial_state=dict(saved))
    stopper.set_model(tiny_model())
    stopper.on_train_begin()
    assert stopper.state() == saved
    # two epochs without improvement were counted before the interruption: one more ends it
    ran = drive(stopper, [0.6, 0.4], first_epoch=5)
    assert ran == 1 and stopper.stopped_epoch == 5
    assert stopper.best == 0.5 and stopper.best_epoch == 3


def test_a_stop_survives_a_resume_and_a_resumed_run_knows_it_had_stopped():
    stopper = ResumableEarlyStopping(monitor="val_loss", mode="min", patience=1)
    drive(stopper, [1.0, 1.2, 0.5])
    saved = stopper.state()
    assert saved == {"best": 1.0, "best_epoch": 0, "wait": 1, "stopped_epoch": 1}
    resumed = ResumableEarlyStopping(monitor="val_loss", mode="min", patience=1,
                                     initial_state=saved)
    assert resumed.stopped_before()
    resumed.set_model(tiny_model())
    resumed.on_train_begin()
    assert resumed.stopped_epoch == 1 and resumed.state() == saved
    # a checkpoint from before stops were saved, or one that had not stopped, trains on
    older = {"best": 1.0, "best_epoch": 0, "wait": 0}
    assert not ResumableEarlyStopping(monitor="val_loss", initial_state=older).stopped_before()
    assert not ResumableEarlyStopping(monitor="val_loss").stopped_before()


def test_a_resumed_stopper_compares_with_the_saved_best():
    stopper = ResumableEarlyStopping(monitor="val_loss", mode="min", patience=10,
                                     initial_state={"best": 0.5, "best_epoch": 3, "wait": 0})
    drive(stopper, [0.6, 0.55], first_epoch=5)
    assert stopper.state() == {"best": 0.5, "best_epoch": 3, "wait": 2, "stopped_epoch": 0}


def test_a_resumed_stopper_restores_the_saved_best_weights():
    model = tiny_model()
    best = [np.full_like(w, 7.0) for w in model.get_weights()]
    stopper = ResumableEarlyStopping(monitor="val_loss", mode="min", patience=1,
                                     restore_best_weights=True, best_weights=best,
                                     initial_state={"best": 0.5, "best_epoch": 3, "wait": 0})
    stopper.set_model(model)
    stopper.on_train_begin()
    stopper.on_epoch_end(5, {"val_loss": 0.9})
    assert model.stop_training
    stopper.on_train_end()
    for got, want in zip(model.get_weights(), best, strict=True):
        np.testing.assert_array_equal(got, want)
