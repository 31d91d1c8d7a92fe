"""Keras callbacks that keep the run directory current while training runs."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from dlrecap.errors import TrainingError
from dlrecap.runs import write_text


class Progress(Protocol):
    """Where per-epoch progress goes (the CLI draws it; tests may collect it)."""

    def start(self, epochs: int, columns: list[str]) -> None: ...

    def epoch(self, epoch: int, logs: dict[str, float]) -> None: ...

    def finish(self) -> None: ...


def history_columns(metrics: tuple[str, ...], validation: bool) -> list[str]:
    """history.csv's columns: epoch, loss, metrics, then their val_ counterparts."""
    columns = ["loss", *metrics]
    return ["epoch", *columns, *([f"val_{c}" for c in columns] if validation else [])]


class HistoryWriter(keras.callbacks.Callback):
    """Rewrites history.csv (atomically) after every epoch, so it is current at any crash."""

    def __init__(self, path: Path, columns: list[str], progress: Progress | None = None):
        super().__init__()
        self.path, self.columns, self.progress = path, columns, progress
        self.rows: list[dict[str, float]] = []
        self._lines = [",".join(columns)]  # formatted once: rewriting stays linear per epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        self.rows.append(row)
        for r in self.rows[len(self._lines) - 1:]:
            self._lines.append(",".join(_cell(r.get(c)) for c in self.columns))
        write_text(self.path, "\n".join(self._lines) + "\n")
        if self.progress:
            self.progress.epoch(epoch + 1, row)


def read_history(path: Path) -> list[dict[str, float]]:
    """The rows of an existing history.csv (empty when there is none), epoch as int."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""}
                for row in csv.DictReader(f)]


def _cell(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.6g}"


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
