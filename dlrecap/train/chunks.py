"""Several epochs per compiled call: the fast engine's loop when its callbacks allow it.

On small data an epoch takes a millisecond or two, and going back to Python after each one
(the call, a separate validation call, the callbacks) costs more than the epoch itself.
Here one `tf.function` runs a `tf.while_loop` over epochs: each epoch calls the fast
engine's own compiled epoch and validation pass, so the numbers are the same bit for bit, and early stopping
(`training.early_stopping`, `keep: best`) is decided inside the loop by Keras' own rule,
so the loop stops at the epoch Keras would stop at. Python then runs each epoch's callbacks
with that epoch's logs; only at the call's last epoch does the model hold the epoch's
weights, and the callbacks that read them know it (`callbacks.weights_current`).

Callbacks that read the weights at given epochs (`reads_weights(epoch)`) and offer a
compiled probe of them (`graph_probe()`: the health probes, the boundary frames) have it run
inside the call at those epochs; they get its values (`probed`) when their epoch is replayed.
Calls are sized to last about `CALL_SECONDS` (progress and Ctrl-C stay responsive) and end
where any other callback must read the weights, where early stopping stops, and after a
non-finite loss, whose epoch leaves the last finite weights in the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecap.train.callbacks import TargetUnits, inner_optimizer, learning_rate, set_stale
from dlrecap.vocab import LEARNING_RATE, VALIDATION_PREFIX

# How long one call should run: long enough that returning to Python costs little next to
# it, short enough that the progress line moves and a Ctrl-C is honoured within a moment.
CALL_SECONDS = 0.25


@dataclass(frozen=True)
class StopRule:
    """Keras' early-stopping rule (`EarlyStopping.on_epoch_end`), applied inside the graph.

    Attributes:
        column: the monitored value's place in an epoch's row of values.
        factor: what `TargetUnits` multiplies the value by before early stopping sees it.
        min_delta: subtracted from the value before it is compared, signed as Keras does.
        maximize: whether larger is better.
        patience: epochs without improvement before stopping.
        keep_weights: whether the best epoch's weights are kept (`restore_best_weights`).
    """

    column: int
    factor: float | None
    min_delta: float
    maximize: bool
    patience: int
    keep_weights: bool

    @classmethod
    def of(cls, stopper: keras.callbacks.EarlyStopping, columns: list[str],
           units: TargetUnits | None) -> StopRule | None:
        """The rule of `stopper`, or None when its options go beyond what the graph applies."""
        if (stopper.baseline is not None or stopper.start_from_epoch
                or stopper.mode not in ("min", "max") or stopper.monitor not in columns):
            return None
        if stopper.restore_best_weights and stopper.best_weights is None and stopper.best is not None:
            return None  # a resumed run without its best weights: Keras takes the next epoch's
        maximize = stopper.mode == "max"
        delta = abs(stopper.min_delta)
        return cls(columns.index(stopper.monitor), units.factor(stopper.monitor) if units else None,
                   delta if maximize else -delta, maximize, int(stopper.patience),
                   bool(stopper.restore_best_weights))

    def update(self, epoch: tf.Tensor, values: tf.Tensor, state: tuple,
               counts: tf.Tensor) -> tuple[tuple, tf.Tensor, tf.Tensor]:
        """The state `(best, has_best, wait, best_epoch)` after `epoch`, whether it improved
        and whether training stops; an epoch that does not `count` changes nothing."""
        best, has_best, wait, best_epoch = state
        current = tf.cast(values[self.column], tf.float64)  # Python reads the logs as floats
        if self.factor is not None:
            current = current * self.factor
        # Keras subtracts min_delta from the Python float, then compares as float32 tensors.
        shifted, reference = tf.cast(current - self.min_delta, tf.float32), tf.cast(best, tf.float32)
        better = tf.greater(shifted, reference) if self.maximize else tf.less(shifted, reference)
        improved = tf.logical_and(counts, tf.logical_or(tf.logical_not(has_best), better))
        waited = tf.where(counts, wait + 1, wait)
        stop = tf.logical_and(counts, tf.logical_not(improved))
        stop = tf.logical_and(stop, tf.logical_and(waited >= self.patience, epoch > 0))
        state = (tf.where(improved, current, best), tf.logical_or(has_best, improved),
                 tf.where(improved, tf.constant(0, tf.int64), waited),
                 tf.where(improved, epoch, best_epoch))
        return state, improved, stop


def stop_state(stopper: keras.callbacks.EarlyStopping | None) -> tuple[tf.Tensor, ...]:
    """The callback's best value, whether it has one, its wait and best epoch, as tensors."""
    best = getattr(stopper, "best", None)
    return (tf.constant(0.0 if best is None else float(best), tf.float64),
            tf.constant(best is not None), tf.constant(int(getattr(stopper, "wait", 0)), tf.int64),
            tf.constant(int(getattr(stopper, "best_epoch", 0)), tf.int64))


@dataclass(frozen=True)
class Probe:
    """A callback's compiled probe of the weights (`graph_probe`), with this run's arguments.

    Attributes:
        callback: the callback, which says at which epochs (`reads_weights`) and is handed
            the values (`probed`) before its `on_epoch_end`.
        function: the compiled probe, a `tf.function`.
        args: its arguments (tensors), passed to the compiled loop with each call.
    """

    callback: keras.callbacks.Callback
    function: Any
    args: tuple

    @classmethod
    def of(cls, callback: keras.callbacks.Callback) -> Probe | None:
        """The callback's probe, or None when it offers none."""
        offered = callback.graph_probe() if hasattr(callback, "graph_probe") else None
        return None if offered is None else cls(callback, offered[0], tuple(offered[1]))

    def kind(self) -> tuple:
        """What a compiled loop made for this probe needs of another run's: the same callback
        class and arguments of the same shapes."""
        return (type(self.callback).__name__,
                tuple((tuple(t.shape), t.dtype.name) for t in tf.nest.flatten(self.args)))


@dataclass(frozen=True)
class ProbeOutputs:
    """A probe as the compiled loop runs it: its function and what it returns.

    Attributes:
        function: the compiled probe (of the run the loop was made for).
        specs: the shapes and types of what it returns, flattened (`tf.nest`).
        structure: what it returns, to pack the flat values back.
    """

    function: Any
    specs: list[tf.TensorSpec]
    structure: Any

    @classmethod
    def trace(cls, probe: Probe) -> ProbeOutputs | None:
        """The probe traced now, or None when it fails to trace (its callback then reads the
        weights itself, at the end of a call)."""
        try:
            outputs = probe.function.get_concrete_function(*probe.args).structured_outputs
        except Exception:  # noqa: BLE001 - the callback's own call will say what is wrong
            return None
        flat = tf.nest.flatten(outputs)
        return cls(probe.function, [tf.TensorSpec(t.shape, t.dtype) for t in flat], outputs)

    def run_if(self, due: tf.Tensor, args: tuple) -> list[tf.Tensor]:
        """The probe's values when `due`, zeros otherwise (inside the graph)."""
        return tf.cond(due, lambda: tf.nest.flatten(self.function(*args)),
                       lambda: [tf.zeros(spec.shape, spec.dtype) for spec in self.specs])

    def values(self, flat: list[np.ndarray], i: int) -> Any:
        """What the probe returned in the call's `i`-th epoch, as NumPy arrays."""
        return tf.nest.pack_sequence_as(self.structure, [array[i] for array in flat])


def epoch_chunks(steps: Any, rule: StopRule | None,
                 probes: list[Probe]) -> tuple[EpochChunks, list[Probe]]:
    """The compiled loop for `steps`' model, this stopping rule and these probes, and the
    probes it runs (those that traced).

    The loop made for an earlier run of the same model (`warm`) with the same rule and
    probes of the same kind is taken again: it is traced and prepared once.
    """
    key = (rule, tuple(probe.kind() for probe in probes))
    if key not in steps.loops:
        traced = [ProbeOutputs.trace(probe) for probe in probes]
        steps.loops[key] = (EpochChunks(steps, rule, [t for t in traced if t is not None]),
                            [t is not None for t in traced])
    chunks, traced_ok = steps.loops[key]
    return chunks, [probe for probe, ok in zip(probes, traced_ok, strict=True) if ok]


class EpochChunks:
    """The compiled call that trains several epochs, for one model and its step functions.

    Args:
        steps: the fast engine's `_StepFunctions`, whose epoch and validation pass it runs.
        rule: early stopping's rule, or None without early stopping.
        probes: the callbacks' probes run inside the call.
    """

    def __init__(self, steps: Any, rule: StopRule | None, probes: list[ProbeOutputs]):
        self.steps, self.rule, self.model, self.probes = steps, rule, steps.model, probes
        self.last_good = _mirror(self.model)
        self.best = _mirror(self.model) if rule is not None and rule.keep_weights else []
        self.call = tf.function(self._epochs, jit_compile=False, reduce_retracing=True,
                                autograph=False)

    def _epochs(self, x: tf.Tensor, y: tf.Tensor, val: tuple[tf.Tensor, tf.Tensor] | None,
                first: tf.Tensor, count: tf.Tensor, state: tuple, due: tf.Tensor,
                probe_args: tuple) -> tuple:
        """Epochs from `first`, at most `count` of them, ending early where training stops.

        Args:
            due: `(count, probes)` booleans: which probe runs after which epoch.
            probe_args: each probe's arguments.

        Returns:
            The values of each epoch run, one row each (`columns`), the optimizer's step
            count after each, whether the loop stopped, early stopping's state after it and,
            per probe, its flattened values after each epoch (zeros where it was not due).
        """
        steps, weights = self.steps, self.model.weights
        optimizer = inner_optimizer(self.model.optimizer)

        def epoch_body(epoch, state, done, rows, iterations, probed):
            for good, w in zip(self.last_good, weights, strict=True):
                good.assign(w)
            # The one-epoch path's own compiled functions, called from the loop: traced
            # once, they are the same graphs in both paths, so the numbers are the same.
            train = steps.train_epoch(x, y, epoch)
            scores = steps.evaluate(*val) if val is not None else ()
            values = tf.stack([tf.cast(v, tf.float32) for v in (*train, *scores)])
            finite = tf.math.is_finite(train[0])
            stop = tf.constant(False)
            if self.rule is not None:
                state, improved, stop = self.rule.update(epoch, values, state, finite)
                for kept, w in zip(self.best, weights, strict=False):  # none without keep_weights
                    kept.assign(tf.where(improved, w, kept))
            # After a non-finite loss the last finite weights go back, for the NaN guard.
            for good, w in zip(self.last_good, weights, strict=True):
                w.assign(tf.where(finite, w, good))
            # The step count after the epoch gives its learning rate, computed as Python does.
            at = tf.cast(epoch - first, tf.int32)
            rows, iterations = rows.write(at, values), iterations.write(at, optimizer.iterations)
            # The probes see the weights the epoch leaves, as at the end of a one-epoch call.
            probed = [[array.write(at, value)
                       for array, value in zip(arrays, probe.run_if(due[at, p], probe_args[p]),
                                               strict=True)]
                      for p, (probe, arrays) in enumerate(zip(self.probes, probed, strict=True))]
            return (epoch + 1, state, tf.logical_or(stop, tf.logical_not(finite)), rows,
                    iterations, probed)

        def more(epoch, state, done, *_):
            return tf.logical_and(epoch < first + count, tf.logical_not(done))

        probed = [[tf.TensorArray(spec.dtype, size=0, dynamic_size=True, element_shape=spec.shape)
                   for spec in probe.specs] for probe in self.probes]
        start = (first, state, tf.constant(False), tf.TensorArray(tf.float32, size=0, dynamic_size=True),
                 tf.TensorArray(tf.int64, size=0, dynamic_size=True), probed)
        _, state, done, rows, iterations, probed = tf.while_loop(more, epoch_body, start)
        return (rows.stack(), iterations.stack(), done, state,
                [[array.stack() for array in arrays] for arrays in probed])


def _mirror(model: keras.Model) -> list[tf.Variable]:
    """A variable per weight of `model` (what `get_weights` returns), to copy weights into."""
    return [tf.Variable(tf.zeros(tuple(w.shape), w.dtype), trainable=False) for w in model.weights]


@dataclass
class ChunkedLoop:
    """The fast engine's training loop in chunks of epochs (see the module's docstring).

    Made by `chunked_loop`, which says when the callbacks allow it.
    """

    model: keras.Model
    callbacks: list[keras.callbacks.Callback]
    columns: list[str]
    stopper: keras.callbacks.EarlyStopping | None
    rule: StopRule | None

    def run(self, steps: Any, hooks: keras.callbacks.CallbackList, train: tuple[tf.Tensor, tf.Tensor],
            val: tuple[tf.Tensor, tf.Tensor] | None, epochs: range) -> tuple[int, int]:
        """Train `epochs` (until a stop), running the callbacks; return the calls and the
        epochs trained."""
        offered = [probe for probe in map(Probe.of, self.callbacks) if probe is not None]
        chunks, probes = epoch_chunks(steps, self.rule, offered)
        args = tuple(probe.args for probe in probes)
        probed = {id(probe.callback) for probe in probes}
        readers = [c.reads_weights for c in self.callbacks
                   if hasattr(c, "reads_weights") and id(c) not in probed]
        epoch, seconds, calls = epochs.start, None, 0
        # Traced once for any number of epochs: the first call's one row of `due` would
        # otherwise get a trace of its own.
        chunks.call.get_concrete_function(
            *train, val, tf.constant(epoch, tf.int64), tf.constant(1, tf.int64),
            stop_state(self.stopper), tf.TensorSpec([None, len(probes)], tf.bool), args)
        while epoch < epochs.stop and not self.model.stop_training:
            count = self.length(epoch, epochs.stop, seconds, readers)
            due = np.array([[probe.callback.reads_weights(epoch + i) for probe in probes]
                            for i in range(count)], dtype=bool).reshape(count, len(probes))
            start = time.perf_counter()
            rows, iterations, stopped, state, values = chunks.call(
                *train, val, tf.constant(epoch, tf.int64), tf.constant(count, tf.int64),
                stop_state(self.stopper), tf.constant(due), args)
            rows = rows.numpy()
            seconds = (time.perf_counter() - start) / len(rows)
            calls += 1
            values = [[array.numpy() for array in flat] for flat in values]
            self.replay(hooks, epoch, (rows, iterations.numpy()), chunks, int(state[3]),
                        (probes, due, values))
            self.check(epoch, rows, bool(stopped))
            epoch += len(rows)
        return calls, epoch - epochs.start

    def length(self, epoch: int, epochs: int, seconds: float | None, readers: list[Any]) -> int:
        """Epochs in the next call: 1 at first (it includes tracing), then about
        `CALL_SECONDS` worth, ending at the first epoch one of `readers` reads the weights."""
        count = 1 if seconds is None else min(epochs - epoch, max(1, int(CALL_SECONDS / seconds)))
        for i in range(count):
            if any(reads(epoch + i) for reads in readers):
                return i + 1
        return count

    def replay(self, hooks: keras.callbacks.CallbackList, first: int,
               results: tuple[np.ndarray, np.ndarray], chunks: EpochChunks, best_epoch: int,
               probed: tuple[list[Probe], np.ndarray, list[list[np.ndarray]]]) -> None:
        """Run each epoch's callbacks with its logs; the model holds the weights of the last
        finite epoch, which is the last one unless the loss turned non-finite. A probed
        callback finds its epoch's values in `probed` during its `on_epoch_end`."""
        rows, iterations = results
        probes, due, values = probed
        finite = np.isfinite(rows[:, 0])
        current = len(rows) - 1 if finite[-1] else len(rows) - 2
        try:
            for i, row in enumerate(rows):
                set_stale(self.model, i < current)
                if i == current and chunks.best and first <= best_epoch < first + i:
                    # An earlier epoch of the call was the best: its weights were kept in the graph.
                    self.stopper.best_weights = [v.numpy() for v in chunks.best]  # type: ignore[union-attr]
                for p, (probe, outputs) in enumerate(zip(probes, chunks.probes, strict=True)):
                    probe.callback.probed = outputs.values(values[p], i) if due[i, p] else None
                hooks.on_epoch_begin(first + i)
                hooks.on_epoch_end(first + i, self.logs(row, bool(finite[i]), int(iterations[i])))
                if self.model.stop_training and i < current:
                    raise RuntimeError(f"a callback stopped training in epoch {first + i + 1}, "
                                       "inside a compiled call of several epochs")
        finally:
            set_stale(self.model, False)
            for probe in probes:
                probe.callback.probed = None

    def logs(self, row: np.ndarray, finite: bool, iterations: int) -> dict[str, float]:
        """An epoch's logs as the one-epoch loop makes them (no validation after a NaN loss),
        with its learning rate (`LearningRateLog` would read the rate after the call)."""
        names = self.columns if finite else [c for c in self.columns
                                             if not c.startswith(VALIDATION_PREFIX)]
        logs = {name: float(row[self.columns.index(name)]) for name in names}
        logs[LEARNING_RATE] = learning_rate(self.model.optimizer, iterations)
        return logs

    def check(self, first: int, rows: np.ndarray, stopped: bool) -> None:
        """Early stopping in the graph and in its callback must agree, or the run is wrong."""
        if self.stopper is None or not np.isfinite(rows[-1, 0]):
            return
        last = first + len(rows) - 1
        if stopped != (self.stopper.stopped_epoch == last and last > 0):
            raise RuntimeError(f"early stopping in epoch {last + 1}: the compiled loop "
                               f"{'stopped' if stopped else 'went on'}, its callback did not")


def chunked_loop(model: keras.Model, metrics: tuple[str, ...], validation: bool,
                 callbacks: list[keras.callbacks.Callback]) -> ChunkedLoop | None:
    """The loop in chunks of epochs for these callbacks (after `on_train_begin`), or None
    when one of them needs one epoch per call: a callback not marked `chunk_safe`, or early
    stopping with options the graph does not apply."""
    if not all(getattr(c, "chunk_safe", False) for c in callbacks):
        return None
    names = ["loss", *metrics]
    columns = names + ([VALIDATION_PREFIX + n for n in names] if validation else [])
    stoppers = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    units = next((c for c in callbacks if isinstance(c, TargetUnits)), None)
    if len(stoppers) > 1:
        return None
    stopper = stoppers[0] if stoppers else None
    rule = StopRule.of(stopper, columns, units) if stopper is not None else None
    if stopper is not None and rule is None:
        return None
    return ChunkedLoop(model, callbacks, columns, stopper, rule)
