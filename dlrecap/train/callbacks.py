"""Keras callbacks that keep the run directory current while training runs."""

from __future__ import annotations

import math
import time
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


# The model attribute the fast engine sets while it replays the callbacks of an epoch whose
# weights the model no longer holds (`weights_current`).
STALE_WEIGHTS = "_dlrecap_stale_weights"


def weights_current(model: keras.Model) -> bool:
    """Whether `model` holds the weights of the epoch whose `on_epoch_end` is running.

    The fast engine may train several epochs in one compiled call, then run each epoch's
    callbacks with that epoch's logs; only at the call's last epoch does the model hold the
    epoch's weights. A callback that reads or saves the weights checks this; one that must
    read them at given epochs says which with a method `reads_weights(epoch) -> bool`, and
    the engine ends a call at each of them, unless the callback offers its reading as a
    compiled probe (`graph_probe() -> (tf.function, args) | None`): the engine then runs it
    inside the call at those epochs and sets the callback's `probed` to what it returned
    while that epoch's `on_epoch_end` runs. Only callbacks whose class sets `chunk_safe`
    are run that way; with any other, the engine trains one epoch per call.
    """
    return not getattr(model, STALE_WEIGHTS, False)


def set_stale(model: keras.Model, stale: bool) -> None:
    """Say whether `model` lacks the weights of the epoch whose callbacks run (`weights_current`).

    Written to the instance's dict: Keras' own attribute tracking would cost more than the
    rest of a small epoch's bookkeeping, for a flag that holds no variable.
    """
    vars(model)[STALE_WEIGHTS] = stale


def learning_rate(optimizer: keras.optimizers.Optimizer, iterations: int | None = None) -> float:
    """The rate of the optimizer's last step (its first, before any), schedules included.

    A schedule is a function of the step count, which the step that used it has moved on.

    Args:
        optimizer: the model's optimizer.
        iterations: its step count after the epoch, if not now (the fast engine's epochs of
            one call).
    """
    inner = inner_optimizer(optimizer)
    rate = getattr(inner, "_learning_rate", None)
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        steps = int(inner.iterations) if iterations is None else iterations
        return float(rate(max(steps - 1, 0)))
    return float(np.asarray(inner.learning_rate))


def inner_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """The optimizer that steps: inside mixed_float16's loss scaling, if any."""
    return getattr(optimizer, "inner_optimizer", optimizer)


class LearningRateLog(keras.callbacks.Callback):
    """Adds `learning_rate` (the rate at the epoch's last step) to each epoch's logs.

    Placed before the history writer, and before any callback that changes the rate. An
    engine that ran several epochs in one call puts each epoch's rate in its logs itself
    (`learning_rate(optimizer, iterations)`).
    """

    chunk_safe = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None and LEARNING_RATE not in logs:
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

    When an engine trains epochs whose weights the model does not hold (`weights_current`),
    the file is rewritten at the next epoch whose weights it holds (where checkpoints are
    written), or `WRITE_EVERY_S` after the last write for a live view; every epoch's row is
    still there.

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
        self._written = -math.inf  # when the file was last written (time.monotonic)

    chunk_safe = True
    WRITE_EVERY_S = 0.5

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        self.rows.append(row)
        if weights_current(self.model) or time.monotonic() - self._written >= self.WRITE_EVERY_S:
            self.flush()
        if self.progress:
            self.progress.epoch(epoch + 1, row)

    def flush(self) -> None:
        """Rewrite the file with every row so far."""
        self._lines += [runs.history_line(r, self.columns) for r in self.rows[len(self._lines):]]
        runs.write_history(self.run_dir, self.columns, self._lines)
        self._written = time.monotonic()


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
    chunk_safe = True

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key in list(logs or {}):
            if logs is not None and (factor := self.factor(key)) is not None:
                logs[key] = float(logs[key]) * factor

    def factor(self, key: str) -> float | None:
        """What the value named `key` in the logs is multiplied by (None: left as it is)."""
        power = self.POWERS.get(key.removeprefix(VALIDATION_PREFIX))
        return None if power is None else self.std**power


class FiniteLossGuard(keras.callbacks.Callback):
    """Stops training when the loss turns NaN or infinite, keeping the last finite weights.

    When the fast engine trains several epochs per call, it puts the last finite epoch's
    weights back itself before the call returns; the guard then has none of its own to
    restore (`last_good` is None after an epoch whose weights the model no longer held).
    """

    chunk_safe = True

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
        self.last_good = self.model.get_weights() if weights_current(self.model) else None

    def _check(self, loss: Any) -> None:
        if loss is not None and not math.isfinite(float(loss)):
            if self.last_good is not None:
                self.model.set_weights(self.last_good)
            raise TrainingError(
                f"the loss became {float(loss)} in epoch {self.epoch}; training diverged",
                fix="lower training.learning_rate (e.g. by 10x) or standardize the data",
            )


class BoundaryFrames(keras.callbacks.Callback):
    """The model's surface over the input plane every `every` epochs, kept in an .npz file.

    One small compiled call evaluates the grid; the file is rewritten atomically, at most
    every `WRITE_EVERY_S` seconds and when training ends, so a live viewer always reads
    whole frames and a fast run does not spend its epochs rewriting the file. Frame 0 is the untrained network
    (epoch 0); the last frame always holds the final weights: after early stopping restored
    the best ones, the last frame shows them and `kept_epoch` says whose they are.

    Args:
        path: the .npz file (`runs.FRAMES_FILE` in the run directory).
        grid: the grid's rows in the model's input form (matrix or dict of columns), x fastest.
        xs, ys: the grid's coordinates in the input's own units.
        every: epochs between snapshots.
        surface: model outputs (rows, units) -> one value per row (`picture_rows.surface`).
        scale: `(mean, std)` turning standardized regression outputs into the target's units.
        kept_epoch: the last epoch trained -> the epoch whose weights the model ends with.
        keep_until: a resumed run's checkpoint epoch: earlier frames are kept, later dropped.
    """

    WRITE_EVERY_S = 0.5
    chunk_safe = True

    def __init__(self, path: Path, grid: Any, xs: np.ndarray, ys: np.ndarray, every: int,
                 surface: Any, *, scale: tuple[float, float] | None = None,
                 kept_epoch: Any = None, keep_until: int = 0):
        super().__init__()
        self.path, self.xs, self.ys, self.every = Path(path), xs, ys, max(1, every)
        self.surface, self.scale, self.keep_until = surface, scale, keep_until
        self.kept_epoch = kept_epoch or (lambda last: last)
        self.grid = grid
        self.epochs: list[int] = []
        self.frames: list[np.ndarray] = []
        self.last_epoch = keep_until
        self.seconds = 0.0  # time spent on snapshots, for the record
        self.probed: Any = None  # the grid's outputs, when the engine ran the probe itself
        self._predict: Any = None
        self._written = -math.inf  # when the file was last written (time.monotonic)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        import tensorflow as tf

        model = self.model
        self._predict = tf.function(lambda rows: model(rows, training=False), autograph=False)
        self.grid = tf.nest.map_structure(_as_tensor, self.grid)
        self._resume()
        if not self.epochs or self.epochs[-1] < self.keep_until:
            self.snapshot(self.keep_until)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.last_epoch = epoch + 1
        if self.reads_weights(epoch):
            self.snapshot(self.last_epoch)

    def reads_weights(self, epoch: int) -> bool:
        """Whether the end of `epoch` (from 0) takes a snapshot (`weights_current`)."""
        return (epoch + 1) % self.every == 0

    def graph_probe(self) -> tuple[Any, tuple] | None:
        """The grid's evaluation, for the engine to run inside a call (`weights_current`)."""
        return (self._predict, (self.grid,)) if self._predict is not None else None

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        # Early stopping may have put back earlier weights: the last frame is what is kept.
        if self.epochs and self.epochs[-1] == self.last_epoch:
            self.epochs.pop()
            self.frames.pop()
        self.snapshot(self.last_epoch, kept=self.kept_epoch(self.last_epoch))

    def snapshot(self, epoch: int, kept: int | None = None) -> None:
        """Evaluate the grid with the current weights as the frame of `epoch`.

        Args:
            epoch: the frame's epoch.
            kept: for the last frame, the epoch whose weights the model ends with; the file
                is written now.
        """
        start = time.perf_counter()
        outputs = self._predict(self.grid) if self.probed is None else self.probed
        values = self.surface(np.asarray(outputs, dtype=np.float32))
        if self.scale is not None:
            values = values * np.float32(self.scale[1]) + np.float32(self.scale[0])
        self.epochs.append(epoch)
        self.frames.append(values.reshape(len(self.ys), len(self.xs)).astype(np.float32))
        if kept is not None or time.monotonic() - self._written >= self.WRITE_EVERY_S:
            self._write(epoch if kept is None else kept)
        self.seconds += time.perf_counter() - start

    def _write(self, kept: int) -> None:
        arrays = {"epochs": np.asarray(self.epochs, dtype=np.int64), "xs": self.xs,
                  "ys": self.ys, "frames": np.stack(self.frames), "kept_epoch": np.int64(kept)}
        runs.write_arrays(self.path, arrays)
        self._written = time.monotonic()

    def _resume(self) -> None:
        """Keep the frames a resumed run recorded up to its checkpoint (none if they do not fit)."""
        self.epochs, self.frames = [], []
        if self.keep_until <= 0 or not self.path.is_file():
            return
        try:
            old = runs.read_arrays(self.path)
            same_plane = np.array_equal(old["xs"], self.xs) and np.array_equal(old["ys"], self.ys)
        except (OSError, ValueError, KeyError):
            return
        if same_plane and len(old["epochs"]):
            # A last frame of restored best weights is not its epoch's: it is drawn again.
            restored = int(old["kept_epoch"]) != int(old["epochs"][-1])
            last = self.keep_until - 1 if restored else self.keep_until
            keep = [i for i, e in enumerate(old["epochs"]) if e <= last]
            self.epochs = [int(old["epochs"][i]) for i in keep]
            self.frames = [old["frames"][i] for i in keep]


def _as_tensor(column: Any) -> Any:
    import tensorflow as tf

    array = np.asarray(column)
    return tf.constant(array.astype(str) if array.dtype == object else array)
