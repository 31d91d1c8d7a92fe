"""Checkpoints that let an interrupted or killed run continue where it stopped.

A checkpoint is a folder `checkpoint/` in the run directory holding the weights and the
optimizer's state (`weights.npz`), the state of the model's random generators (`random.npz`:
dropout continues with the masks it would have drawn), the early-stopping state and, when
early stopping keeps them, the best weights so far. It is written as `checkpoint.new/` and
swapped in by renames, so a kill at any moment leaves one complete checkpoint
(`checkpoint/` or `checkpoint.old/`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np

from dlrecap import runs, signals
from dlrecap.errors import RunError
from dlrecap.train.callbacks import weights_current

CHECKPOINT_DIR = runs.CHECKPOINT_DIR
# Checkpoint at most this often: saving a model costs tens of milliseconds, far more
# than one epoch of the fast engine on small data.
MIN_SECONDS_BETWEEN = 2.0


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint folder of a run, if it has one."""
    return runs.complete_folder(run_dir / CHECKPOINT_DIR, "state.json")


def read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: unreadable checkpoint ({exc})") from None


def restore(model: keras.Model, path: Path) -> tuple[dict[str, Any], list[np.ndarray] | None]:
    """Load a checkpoint's weights, optimizer and random state into a freshly compiled `model`.

    Returns:
        The saved state (`epochs_done`, `early_stopping`, `lr_schedule`: reduce_on_plateau's
        counters) and the best weights, if saved.
    """
    state = read_state(path)
    try:
        arrays = _arrays(path / "weights.npz")
        n_weights = len(model.get_weights())
        model.set_weights(arrays[:n_weights])
        model.optimizer.build(model.trainable_variables)
        for variable, value in zip(model.optimizer.variables, arrays[n_weights:], strict=True):
            variable.assign(value)
        if (path / "random.npz").is_file():  # checkpoints from before it was saved lack it
            for variable, value in zip(random_state(model), _arrays(path / "random.npz"), strict=True):
                variable.assign(value)
    except (OSError, ValueError, KeyError) as exc:  # damaged, or a different model: say which
        raise RunError(f"{path / 'weights.npz'}: cannot restore the checkpoint ({exc})") from None
    best = _arrays(path / "best_weights.npz") if (path / "best_weights.npz").is_file() else None
    return state, best


def _arrays(file: Path) -> list[np.ndarray]:
    """The arrays `np.savez` wrote to `file`, in order."""
    with np.load(file) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def random_state(model: keras.Model) -> list[Any]:
    """The model's random-generator states (dropout's seeds), which `get_weights` leaves out."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras EarlyStopping whose best value, best epoch and patience count survive a resume.

    Keras resets that state in `on_train_begin`; a resumed run puts it back right after.
    When the fast engine trains several epochs per call, it applies the same rule inside
    the call and keeps the best weights itself: an epoch whose weights the model no longer
    holds (`weights_current`) updates the counters only, and the engine sets `best_weights`.
    """

    chunk_safe = True
    restore_best_weights: bool

    def __init__(self, *args: Any, initial_state: dict[str, Any] | None = None,
                 best_weights: list[Any] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.initial_state = initial_state
        self.initial_best_weights = best_weights

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        if self.initial_state:
            self.best = self.initial_state["best"]
            self.best_epoch = self.initial_state["best_epoch"]
            self.wait = self.initial_state["wait"]
            self.stopped_epoch = self.initial_state.get("stopped_epoch", 0)
            self.best_weights = self.initial_best_weights

    def stopped_before(self) -> bool:
        """Whether the resumed run had stopped early at its checkpoint: nothing is left to train."""
        return bool(self.initial_state and self.initial_state.get("stopped_epoch"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if weights_current(self.model):
            super().on_epoch_end(epoch, logs)
            return
        keep, self.restore_best_weights = self.restore_best_weights, False
        try:
            super().on_epoch_end(epoch, logs)
        finally:
            self.restore_best_weights = keep

    def state(self) -> dict[str, Any]:
        best = None if self.best is None else float(self.best)
        return {"best": best, "best_epoch": int(self.best_epoch), "wait": int(self.wait),
                "stopped_epoch": int(self.stopped_epoch)}


class KeepBest(ResumableEarlyStopping):
    """Keeps the best epoch's weights in memory and puts them back when training ends.

    Keras' `ModelCheckpoint(save_best_only=True)` without the file, for `training.keep: best`
    without early stopping. Written as early stopping that never stops: Keras' early
    stopping already keeps and restores the best weights, and as a `ResumableEarlyStopping`
    the best value, its epoch and its weights go into checkpoints and survive a resume.

    Args:
        monitor: what decides the best epoch, e.g. `val_loss`.
        mode: `min` or `max`.
        initial_state: a resumed run's saved state, or None.
        best_weights: a resumed run's saved best weights, or None.
    """

    def __init__(self, monitor: str, mode: str, *, initial_state: dict[str, Any] | None = None,
                 best_weights: list[Any] | None = None):
        super().__init__(monitor=monitor, mode=mode, patience=sys.maxsize,
                         restore_best_weights=True, initial_state=initial_state,
                         best_weights=best_weights)


class Checkpointer(keras.callbacks.Callback):
    """Saves a checkpoint after an epoch, at most every few seconds and always when asked.

    Only after an epoch whose weights the model holds (`weights_current`): with the fast
    engine's several epochs per call, at a call's last epoch, where a stop is honoured too.

    Args:
        run_dir: the run directory.
        stopper: the early-stopping (or `KeepBest`) callback, whose state is saved too (or None).
        stop: the `StopRequest` that, once set, forces a checkpoint and ends training.
        saved_epoch: the epochs the run's checkpoint holds already (a resumed run's).
        plateau: the `ResumableReduceLROnPlateau` callback, whose state is saved too (or None).
    """

    def __init__(self, run_dir: Path, stopper: ResumableEarlyStopping | None, stop: StopRequest,
                 *, saved_epoch: int = 0, plateau: Any = None):
        super().__init__()
        self.run_dir, self.stopper, self.stop = run_dir, stopper, stop
        self.plateau = plateau
        self.last_save = 0.0
        self.interval = MIN_SECONDS_BETWEEN
        self.saved_epoch = saved_epoch

    chunk_safe = True

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        # The first checkpoint waits too: a run shorter than the interval never pays for one.
        self.last_save = time.monotonic()
        self.interval = float(os.environ.get(signals.CHECKPOINT_SECONDS_ENV, MIN_SECONDS_BETWEEN))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        signals.pause_point("first_epoch")  # tests: a signal during the session's first epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not weights_current(self.model):
            return  # the fast engine's call ran on: saved, or stopped, at its last epoch
        if self.stop.requested:
            self.model.stop_training = True
        if self.due():
            self.save(epoch + 1)

    def due(self) -> bool:
        """Whether the next epoch whose weights the model holds is saved: a stop was asked
        for, or the last checkpoint is `interval` seconds old."""
        return bool(self.stop.requested) or time.monotonic() - self.last_save >= self.interval

    def save(self, epochs_done: int) -> None:
        """Write the checkpoint after `epochs_done` epochs; an OSError names its folder."""
        signals.pause_point("checkpoint")
        new = self.run_dir / (CHECKPOINT_DIR + ".new")
        shutil.rmtree(new, ignore_errors=True)
        try:
            with runs.naming_failures(self.run_dir / CHECKPOINT_DIR):
                self._write(new, epochs_done)
                runs.replace_folder(new, self.run_dir / CHECKPOINT_DIR)
        except OSError:
            shutil.rmtree(new, ignore_errors=True)  # a full disk needs the room back
            raise
        self.last_save, self.saved_epoch = time.monotonic(), epochs_done

    def _write(self, new: Path, epochs_done: int) -> None:
        new.mkdir()
        # Plain arrays, not a .keras file: a few milliseconds instead of a few hundred.
        optimizer_state = [np.asarray(v) for v in self.model.optimizer.variables]
        np.savez(new / "weights.npz", *self.model.get_weights(), *optimizer_state)
        np.savez(new / "random.npz", *(np.asarray(v) for v in random_state(self.model)))
        state: dict[str, Any] = {"epochs_done": epochs_done, "early_stopping": None,
                                 "lr_schedule": self.plateau.state() if self.plateau else None}
        if self.stopper is not None:
            state["early_stopping"] = self.stopper.state()
            if self.stopper.best_weights is not None:
                np.savez(new / "best_weights.npz", *self.stopper.best_weights)
        (new / "state.json").write_text(json.dumps(state), encoding="utf-8")  # written last


class StopRequest:
    """Set by SIGINT/SIGTERM: training stops after the epoch that is running."""

    def __init__(self) -> None:
        self.requested: int | None = None

    @contextmanager
    def catching_signals(self) -> Iterator[StopRequest]:
        """Within the block, the first SIGINT/SIGTERM asks for a stop; a second one aborts."""

        def on_signal(signum: int) -> None:
            if self.requested is not None:
                raise KeyboardInterrupt
            self.requested = signum

        with signals.handled_by(on_signal):
            yield self
