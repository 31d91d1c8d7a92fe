"""The NumPy engine: small dense networks trained without a compiled graph.

On the course's data sets (hundreds to tens of thousands of rows, a few dozen units) a
TensorFlow run spends most of its training phase tracing and preparing its compiled
functions, not computing: about 0.75 s of fixed cost against 0.6 s for 300 epochs of
XOR. NumPy pays no such cost, which is how scikit-learn's MLP is fast on small data. This
engine runs the same mini-batch gradient descent (`train.numpy_net`, `train.numpy_optim`)
on the weights of the Keras model that `dlrecap.model` built, over the batches the fast
engine would draw, and hands the weights back: without dropout both engines train the same
run (to float32 rounding), and model.keras, checkpoints, resuming and every callback work
as with the other engines.

Callbacks run once per epoch. Copying the weights into the Keras model costs more than a
small epoch, so the model holds the epoch's weights only where a callback needs them
(`callbacks.weights_current`): at epochs another callback reads them (`reads_weights`),
when a checkpoint is due or a stop is asked for, where early stopping may stop, and at the
last epoch. The engine computes the health probes and boundary frames itself (their
`probed` values) and keeps early stopping's best weights, as the fast engine's compiled
loop does. Each epoch's shuffle and dropout masks come from `(seed, epoch)`, so a resumed
run trains as an uninterrupted one would.

It trains what `why_not` lets through: numeric inputs, Dense layers with linear, relu,
tanh or sigmoid units, dropout, L1/L2, a sigmoid, softmax or linear output with its
matching loss, SGD or Adam at a constant (or plateau-reduced) rate, on the CPU. Anything
else goes to the fast engine.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecap.inference import metric
from dlrecap.model import Head
from dlrecap.train.callbacks import BoundaryFrames, HistoryWriter, set_stale
from dlrecap.train.checkpoint import Checkpointer
from dlrecap.train.fast_engine import EVAL_BATCH, FastEngine
from dlrecap.train.health import SATURATION_Z, HealthMonitor
from dlrecap.train.numpy_net import F32, HEADS, DenseStack
from dlrecap.train.numpy_optim import NumpyOptimizer
from dlrecap.train.numpy_scope import config_why_not
from dlrecap.vocab import LEARNING_RATE, VALIDATION_PREFIX

# Training rows up to this size are prepared (`DenseStack.inputs`) once rather than a batch at a time.
PRESCALED_BYTES = 8 << 20


def why_not(config: Any, head: Head, x: Any, on_gpu: bool) -> str | None:
    """Why the NumPy engine cannot train this job, or None when it can.

    Args:
        config: the validated config (`numpy_scope.config_why_not` reads its settings).
        head: the output head.
        x: the training rows (a matrix of numbers, or a dict of columns).
        on_gpu: whether TensorFlow has a GPU (the fast engine then uses it).
    """
    checks = (
        (on_gpu, "a GPU is there to train on"),
        (not isinstance(x, np.ndarray), "text columns need Keras' one-hot layers"),
        ((head.activation, head.loss) not in HEADS, f"{head.activation} output with {head.loss}"),
    )
    return next((why for failed, why in checks if failed), None) or config_why_not(config)


class NumpyEngine(FastEngine):
    """Trains with NumPy (see the module's docstring); compiles and scores as the fast engine.

    `pick_engine` chooses it only when `why_not` says nothing against it, and says why the
    fast engine does not train the run in `reason` (metrics.json's `engine_reason`).
    """

    name = "numpy"

    def fit(self, model: keras.Model, head: Head, config: Any, train: tuple[Any, np.ndarray],
            validation: tuple[Any, np.ndarray] | None, callbacks: list[keras.callbacks.Callback],
            initial_epoch: int = 0) -> None:
        """Train the compiled `model` in place; callbacks see every epoch as under `fit`."""
        net = DenseStack.of(model, head)
        optimizer = NumpyOptimizer(model.optimizer, [part for _, part in net.variables],
                                   net.weights.size)
        loop = _Loop(model, net, optimizer, head, callbacks)
        x, y = train[0], _targets(head, train[1])
        # Small data is prepared once, large data a batch at a time (no second copy).
        prepared = net.inputs(x) if x.nbytes <= PRESCALED_BYTES else None
        weight = _row_weights(head, train[1])
        val = ((net.inputs(validation[0]), _targets(head, validation[1]))
               if validation is not None else None)
        hooks = keras.callbacks.CallbackList(callbacks, model=model)
        model.stop_training = False
        self.epochs_per_call = None
        training = config.training
        orders = _Orders(config.seed, len(x), training.epochs)
        dropout = any(layer.dropout for layer in net.layers)
        # Once for the whole loop (entering it costs as much as a small step): a diverging
        # run shows as a non-finite loss, not as warnings.
        with np.errstate(all="ignore"):
            with loop.probed(-1):  # the frame of the untrained network
                hooks.on_train_begin()
            for epoch in range(initial_epoch, training.epochs):
                for callback in hooks.callbacks:
                    callback.on_epoch_begin(epoch)
                rng = dropout_masks(config.seed, epoch) if dropout else None
                logs = loop.train_epoch(x, prepared, y, weight, training.batch_size,
                                        orders.of(epoch), rng)
                if val is not None and math.isfinite(logs["loss"]):
                    scores = score(loop.net, head, *val, prepared=True)
                    logs.update({VALIDATION_PREFIX + k: v for k, v in scores.items()})
                loop.end_epoch(hooks, epoch, logs, last=epoch == training.epochs - 1)
                if model.stop_training:
                    break
            loop.hand_back()
            with loop.probed_at_end():
                hooks.on_train_end()

    def evaluator(self, model: keras.Model, head: Head) -> Callable[[Any, Any], dict[str, float]]:
        """A function `(x, y) -> {loss, metrics}`, in NumPy as during training; the fast
        engine's for a model with layers the NumPy stack does not hold (the target's rescaling)."""
        try:
            net = DenseStack.of(model, head)
        except ValueError:
            return super().evaluator(model, head)

        def evaluate(x: Any, y: Any) -> dict[str, float]:
            with np.errstate(all="ignore"):
                return score(net, head, np.asarray(x, F32), _targets(head, y))

        return evaluate


def epoch_order(seed: int, epoch: int, rows: int) -> np.ndarray:
    """The order of the rows in `epoch`: the fast engine's (TensorFlow's stateless shuffle of
    `(seed, epoch)`, about 35 microseconds), so that without dropout both engines train the
    same run. It depends on `(seed, epoch)` alone, as `dropout_masks` does: a resumed run
    sees the batches and masks it would have seen without the interruption.
    """
    # What tf.random.experimental.stateless_shuffle(rows, seed) runs, without its Python
    # layers (a third of its time here).
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=np.array([seed, epoch], np.int64))
    order = tf.raw_ops.StatelessShuffle(value=_row_numbers(rows), key=key, counter=counter,
                                        alg=tf.random.Algorithm.AUTO_SELECT.value)
    return order.numpy()


def dropout_masks(seed: int, epoch: int) -> np.random.Generator:
    """The generator of `epoch`'s dropout masks."""
    return np.random.default_rng([seed, epoch])


@functools.lru_cache(maxsize=4)
def _row_numbers(rows: int) -> Any:
    """0 ... rows - 1 as a tensor, made once per run: making it costs as much as the shuffle."""
    return tf.range(rows, dtype=tf.int64)


class _Orders:
    """`epoch_order` for the epochs of one `fit`, drawn several epochs ahead: one after the
    other, TensorFlow's shuffles take a quarter of the time they take between epochs."""

    # Orders held at a time, in rows: 8 MB of row numbers.
    AHEAD_ROWS = 1 << 20

    def __init__(self, seed: int, rows: int, epochs: int):
        self.seed, self.rows, self.epochs = seed, rows, epochs
        self.ahead: dict[int, np.ndarray] = {}

    def of(self, epoch: int) -> np.ndarray:
        if epoch not in self.ahead:
            count = max(1, min(self.epochs - epoch, self.AHEAD_ROWS // max(self.rows, 1)))
            self.ahead = {e: epoch_order(self.seed, e, self.rows) for e in range(epoch, epoch + count)}
        return self.ahead.pop(epoch)


def score(net: DenseStack, head: Head, x: np.ndarray, y: np.ndarray,
          prepared: bool = False) -> dict[str, float]:
    """Loss and metrics of rows `x` (through `DenseStack.inputs` already, or not) in inference
    mode, as the fast engine's `evaluate`. Overflows are the caller's to silence."""
    logits = logits_of(net, x, prepared)
    loss = float(net.row_losses(logits, y).mean(dtype=np.float64) + net.penalty())
    outputs = net.outputs(logits)
    return {"loss": loss, **{m: metric(m, head, y, outputs) for m in head.metrics}}


def logits_of(net: DenseStack, x: np.ndarray, prepared: bool = False) -> np.ndarray:
    """The network's logits for rows `x` (inference mode), `EVAL_BATCH` rows at a time."""
    prepare = (lambda rows: rows) if prepared else net.inputs
    parts = [net.forward(prepare(x[i:i + EVAL_BATCH]), None)[2] for i in range(0, len(x), EVAL_BATCH)]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros((0, net.head.units), F32)


def _rows_until_divergence(losses: np.ndarray, batch: int) -> int:
    """The rows an epoch counts: all, or those up to the end of the first batch whose loss
    is not finite, where the fast engine ends its epoch (the loss then reports it)."""
    bad = np.flatnonzero(~np.isfinite(losses))
    return len(losses) if not len(bad) else min(len(losses), (bad[0] // batch + 1) * batch)


def _targets(head: Head, y: np.ndarray) -> np.ndarray:
    """Targets as the loss' gradient takes them: class indices, or a row per output."""
    if head.loss == "sparse_categorical_crossentropy":
        return np.asarray(y).reshape(-1).astype(np.intp)
    return np.asarray(y, F32).reshape(len(y), -1)


def _row_weights(head: Head, y: np.ndarray) -> np.ndarray | None:
    """Each training row's weight in the loss: its class's (`training.class_weight`)."""
    if head.class_weights is None:
        return None
    y = np.asarray(y)
    classes = y.argmax(-1) if head.one_hot else np.rint(y.reshape(-1)).astype(np.intp)
    return np.asarray(head.class_weights, F32)[classes]


class _Loop:
    """One `fit`'s epochs: the NumPy computation and what the callbacks see of it."""

    def __init__(self, model: keras.Model, net: DenseStack, optimizer: NumpyOptimizer,
                 head: Head, callbacks: list[keras.callbacks.Callback]):
        self.model, self.net, self.optimizer, self.head = model, net, optimizer, head
        # The frames and the health probe get their values from here (`probed`), not the model.
        self.readers = [c for c in callbacks if hasattr(c, "reads_weights")
                        and not isinstance(c, (BoundaryFrames, HealthMonitor))]
        self.checkpointers = [c for c in callbacks if isinstance(c, Checkpointer)]
        # What writes files lazily between the epochs whose weights the model holds.
        self.writers = [c for c in callbacks if isinstance(c, (HistoryWriter, HealthMonitor))]
        self.frames = [c for c in callbacks if isinstance(c, BoundaryFrames)]
        self.grids: dict[int, np.ndarray] = {}
        self.health = [c for c in callbacks if isinstance(c, HealthMonitor)]
        for health in self.health:
            health.stack_checked = True  # `DenseStack.of` walked it
        stoppers = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
        self.stopper = stoppers[0] if len(stoppers) == 1 else None
        # A callback not known to read the weights only where it says: keep them current.
        self.always = len(stoppers) > 1 or not all(getattr(c, "chunk_safe", False)
                                                   for c in callbacks)
        self.current = True  # whether the Keras model holds the latest weights
        self.before = net.weights.copy()  # the weights before this epoch
        # Only reduce_on_plateau changes the rate between epochs; reading it costs as much as
        # a small epoch.
        self.rate = optimizer.learning_rate()
        self.rate_changes = any(isinstance(c, keras.callbacks.ReduceLROnPlateau) for c in callbacks)

    # --- the computation ------------------------------------------------------------------

    def train_epoch(self, x: np.ndarray, prepared: np.ndarray | None, y: np.ndarray,
                    weight: np.ndarray | None, batch: int, order: np.ndarray,
                    rng: np.random.Generator | None) -> dict[str, float]:
        """One epoch of mini-batch steps over the rows in `order`, dropout drawn by `rng`
        (None: the network has none); the epoch's logs.

        `prepared`: the rows `x` through `DenseStack.inputs` already, or None to prepare
        each batch."""
        net, optimizer = self.net, self.optimizer
        self.current = False
        np.copyto(self.before, net.weights)  # put back if this epoch's loss is not finite
        n = len(x)
        # In the epoch's order: small data all at once (a batch is then a slice, cheaper
        # than gathering its rows), large data a batch at a time (no second copy).
        shuffled = prepared[order] if prepared is not None else None
        y, weight = y[order], None if weight is None else weight[order]
        logits = np.empty((n, self.head.units), F32)
        if self.rate_changes:
            self.rate = optimizer.learning_rate()
        lr = self.rate
        penalty = 0.0
        for start in range(0, n, batch):
            end = min(start + batch, n)
            xb = (shuffled[start:end] if shuffled is not None
                  else net.inputs(x[order[start:end]]))
            inputs, masks, z = net.forward(xb, rng)
            logits[start:end] = z
            if net.l1 or net.l2:
                penalty += net.penalty() * (end - start)
            dz = net.logits_grad(z, y[start:end], None if weight is None else weight[start:end])
            net.backward(inputs, masks, dz)
            optimizer.step(net.weights, net.grad, lr)
        losses = net.row_losses(logits, y)
        if weight is not None:
            losses = losses * weight
        seen = _rows_until_divergence(losses, batch)
        logits, y = logits[:seen], y[:seen]
        loss = np.add.reduce(losses[:seen], dtype=np.float64) / max(seen, 1) + penalty / n
        outputs = net.outputs(logits)
        logs = {"loss": float(loss), LEARNING_RATE: float(lr)}
        return {**logs, **{m: metric(m, self.head, y, outputs) for m in self.head.metrics}}

    # --- what the callbacks see -----------------------------------------------------------

    def end_epoch(self, hooks: keras.callbacks.CallbackList, epoch: int, logs: dict[str, float],
                  last: bool) -> None:
        """Run the epoch's callbacks, with the model's weights current where they are read."""
        finite = math.isfinite(logs["loss"])
        if not finite:
            # As the NaN guard does: the model keeps the last finite epoch's weights.
            np.copyto(self.net.weights, self.before)
        needed = (self.always or last or not finite
                  or any(c.reads_weights(epoch) for c in self.readers)
                  or any(c.due() for c in self.checkpointers)
                  or (self.stopper is not None and self.stopper.wait + 1 >= self.stopper.patience))
        if needed:
            self.hand_back()
        stopper = self.stopper
        before = (stopper.best, stopper.best_epoch) if stopper is not None else None
        stale = not self.current
        if stale:
            set_stale(self.model, True)
        try:
            with self.probed(epoch):
                # Each callback directly: the list's own call would check every log value
                # for a tensor, which costs more than a small epoch; these are floats.
                for callback in hooks.callbacks:
                    callback.on_epoch_end(epoch, logs)
        finally:
            if stale:
                set_stale(self.model, False)
        if (stopper is not None and not needed and stopper.restore_best_weights
                and (stopper.best, stopper.best_epoch) != before):
            # The callback skipped reading the weights the model did not hold: kept here.
            stopper.best_weights = self.net.as_keras_weights(self.model)
        if not needed and any(c.stop.requested for c in self.checkpointers):
            # Ctrl-C while this epoch's callbacks ran: honoured at this epoch, whose
            # history rows and checkpoint are written now.
            self.hand_back()
            for writer in self.writers:
                writer.flush()
            for checkpointer in self.checkpointers:
                checkpointer.on_epoch_end(epoch, logs)

    def hand_back(self) -> None:
        """Give the Keras model and its optimizer the current weights and state."""
        if not self.current:
            self.net.write()
            self.optimizer.write()
            self.current = True

    def grid_of(self, frames: BoundaryFrames) -> np.ndarray:
        """The frames' grid, through `DenseStack.inputs` once."""
        if id(frames) not in self.grids:
            self.grids[id(frames)] = self.net.inputs(np.asarray(frames.grid, F32))
        return self.grids[id(frames)]

    def probed_at_end(self) -> _Probed:
        """Sets the frames' last values: of the weights the model ends with, which early
        stopping puts back in `on_train_end` when it kept the best epoch's."""
        stopper = self.stopper
        if stopper is not None and stopper.restore_best_weights and stopper.best_weights is not None:
            self.net.load_keras_weights(self.model, stopper.best_weights)
        return _Probed(self, -1, health=False)

    def probed(self, epoch: int) -> _Probed:
        """Sets the health probe's and the frames' values for `epoch` (-1: before training)."""
        return _Probed(self, epoch)

    def health_values(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What `HealthMonitor`'s compiled probe returns: rows with a positive pre-activation
        per unit, the share of rows past the saturation threshold, and each layer's gradient
        norm (of the unweighted loss, without the penalty)."""
        net = self.net
        pre: list[np.ndarray] = []
        x = net.inputs(x)
        with np.errstate(all="ignore"):
            inputs, masks, z = net.forward(x, None, pre)
            widest = max(p.shape[1] for p in pre)
            active = np.zeros((len(pre), widest), np.int32)
            saturated = np.zeros((len(pre), widest), F32)
            for i, (values, layer) in enumerate(zip(pre, net.layers, strict=True)):
                active[i, :values.shape[1]] = (values > 0).sum(axis=0)
                limit = SATURATION_Z.get(layer.activation if i < len(pre) - 1
                                         else self.head.activation, np.inf)
                saturated[i, :values.shape[1]] = (np.abs(values) > limit).mean(axis=0)
            norms = np.zeros(len(pre), F32)
            if y is not None:
                net.backward(inputs, masks, net.logits_grad(z, _targets(self.head, y), None),
                             penalty=False)
                for i, layer in enumerate(net.layers):
                    norms[i] = np.sqrt(np.square(layer.grad).sum())  # kernel and bias
        return active, saturated, norms


class _Probed:
    """While an epoch's callbacks run: the health probe's and frames' values, computed here."""

    def __init__(self, loop: _Loop, epoch: int, health: bool = True):
        self.loop, self.epoch, self.with_health = loop, epoch, health

    def __enter__(self) -> None:
        loop, epoch = self.loop, self.epoch
        for frames in loop.frames:
            if epoch < 0 or frames.reads_weights(epoch):
                grid = loop.grid_of(frames)
                frames.probed = loop.net.outputs(logits_of(loop.net, grid, prepared=True))
        for health in loop.health if self.with_health else ():
            if epoch >= 0 and health.reads_weights(epoch):
                health.probed = loop.health_values(health.x, health.y)

    def __exit__(self, *exc: object) -> None:
        for frames in self.loop.frames:
            frames.probed = None
        for health in self.loop.health:
            health.probed = None
