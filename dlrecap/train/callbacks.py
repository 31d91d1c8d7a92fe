"""Keras callbacks that keep the run directory current while training runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from dlrecap import runs
from dlrecap.errors import TrainingError
from dlrecap.vocab import LEARNING_RATE, VALIDATION_PREFIX


class Progress(Protocol):
    """Where per-epoch progress goes (the CLI draws it; tests may collect it)."""

    def start(self, epochs: int, columns: list[str], done: int = 0) -> None:
        """Training of `epochs` epochs begins, after `done` of them (a resumed run)."""

    def epoch(self, epoch: int, logs: dict[str, float]) -> None: ...

    def finish(self) -> None: ...


def history_columns(metrics: tuple[str, ...], validation: bool) -> list[str]:
    """history.csv's columns: epoch, loss, metrics, their val_ counterparts, learning_rate."""
    columns = ["loss", *metrics]
    return ["epoch", *columns, *([VALIDATION_PREFIX + c for c in columns] if validation else []),
            LEARNING_RATE]


def learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The rate of the optimizer's last step (its first, before any), schedules included.

    A schedule is a function of the step count, which the step that used it has moved on.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # mixed_float16's loss scaling
    rate = getattr(inner, "_learning_rate", None)
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return float(rate(max(int(inner.iterations) - 1, 0)))
    return float(np.asarray(inner.learning_rate))


class LearningRateLog(keras.callbacks.Callback):
    """Adds `learning_rate` (the rate at the epoch's last step) to each epoch's logs.

    Placed before the history writer, and before any callback that changes the rate.
    """

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            logs[LEARNING_RATE] = learning_rate(self.model.optimizer)


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras' ReduceLROnPlateau whose best value, patience count and cooldown survive a resume.

    The rate itself is an optimizer variable, saved with the checkpoint's optimizer state;
    Keras resets the rest in `on_train_begin`, and a resumed run puts it back right after.

    Args:
        initial_state: a resumed run's `state()`, or None.
        **kwargs: as for `keras.callbacks.ReduceLROnPlateau`.
    """

    def __init__(self, *, initial_state: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.initial_state = initial_state

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self.initial_state:
            self.best = self.initial_state["best"]
            self.wait = self.initial_state["wait"]
            self.cooldown_counter = self.initial_state["cooldown_counter"]

    def state(self) -> dict[str, Any]:
        best = None if self.best is None else float(self.best)
        return {"best": best, "wait": int(self.wait), "cooldown_counter": int(self.cooldown_counter)}


class HistoryWriter(keras.callbacks.Callback):
    """Rewrites history.csv (atomically) after every epoch, so it is current at any crash.

    Args:
        run_dir: the run directory.
        columns: history.csv's columns (`history_columns`).
        progress: where each epoch's row goes as well, or None.
    """

    def __init__(self, run_dir: Path, columns: list[str], progress: Progress | None = None):
        super().__init__()
        self.run_dir, self.columns, self.progress = run_dir, columns, progress
        # Rows may be replaced before training (a resume); the lines follow them lazily.
        self.rows: list[dict[str, float]] = []
        self._lines: list[str] = []  # formatted once: rewriting stays linear per epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        self.rows.append(row)
        self._lines += [runs.history_line(r, self.columns) for r in self.rows[len(self._lines):]]
        runs.write_history(self.run_dir, self.columns, self._lines)
        if self.progress:
            self.progress.epoch(epoch + 1, row)


class TargetUnits(keras.callbacks.Callback):
    """Puts each epoch's error metrics back in the target's own units, for every later callback.

    A network trained on standardized targets measures its errors in standard deviations
    of the training targets; history.csv, progress and early stopping should read them in
    the target's units: `mae` and `rmse` times `std`, `mse` times `std` squared. `loss` is
    left as trained. Keras hands one logs dict to each callback in turn, so this callback,
    placed first, rewrites it for all that follow.

    Args:
        std: the training targets' standard deviation.
    """

    POWERS = {"mae": 1, "rmse": 1, "mse": 2}

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key in list(logs or {}):
            power = self.POWERS.get(key.removeprefix(VALIDATION_PREFIX))
            if logs is not None and power is not None:
                logs[key] = float(logs[key]) * self.std**power


class FiniteLossGuard(keras.callbacks.Callback):
    """Stops training when the loss turns NaN or infinite, keeping the last finite weights."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.last_good: list[np.ndarray] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.last_good = self.model.get_weights()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._check((logs or {}).get("loss"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._check((logs or {}).get("loss"))
        self.last_good = self.model.get_weights()

    def _check(self, loss: Any) -> None:
        if loss is not None and not math.isfinite(float(loss)):
            if self.last_good is not None:
                self.model.set_weights(self.last_good)
            raise TrainingError(
                f"the loss became {float(loss)} in epoch {self.epoch}; training diverged",
                fix="lower training.learning_rate (e.g. by 10x) or standardize the data",
            )
