"""The fast engine: compiled calls over tensors already in memory.

Plain `Model.fit` pays tens of milliseconds of Python per epoch (iterators, callbacks per
batch, a separate `evaluate` for validation); on small data that overhead is nearly all the
time. Here one `tf.function` shuffles, runs every mini-batch step and stops early on a
non-finite loss, and a second one scores the validation rows. When the callbacks allow it,
one call runs many epochs (`dlrecap.train.chunks`), else one epoch per call. Keras
callbacks still run once per epoch, so early stopping, history rows and progress behave
exactly as with `fit`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecap.model import Head, make_optimizer
from dlrecap.train import metrics as counted
from dlrecap.train.chunks import chunked_loop
from dlrecap.train.metrics import make_metrics
from dlrecap.train.tensors import as_tensor
from dlrecap.vocab import VALIDATION_PREFIX

# Rows scored per step when evaluating: large enough to be fast, small enough for memory.
EVAL_BATCH = 4096
# Several epochs per compiled call when the callbacks allow it; tests set False to compare
# with one epoch per call.
CHUNKS = True


class FastEngine:
    """Trains with compiled calls of one or several epochs over tensors in memory (an `Engine`).

    It computes its metrics inside the graph and takes numeric feature matrices only;
    `pick_engine` falls back to Keras `fit` otherwise, and records why in `reason`.
    """

    name = "fast"
    reason: str | None = None
    # Epochs per compiled training call in the last `fit` (metrics.json's `epochs_per_call`).
    epochs_per_call: float | None = None
    # The compiled functions of the last model trained or scored, which its evaluator reuses.
    _steps: _StepFunctions | None = None

    def supports(self, head: Head, x: Any, *, tensorboard: bool = False,
                 distribute: str = "none") -> str | None:
        """Why this engine cannot train `head` on `x`, or None when it can.

        `distribute` does not matter here: under a strategy its loop runs as `DistributedEngine`.
        """
        if not isinstance(x, np.ndarray):
            return "text columns are one-hot encoded inside the model, which takes Keras fit's input"
        if tensorboard:
            return "TensorBoard logging needs Keras fit"
        return None

    def compile(self, model: keras.Model, head: Head, config: Any, train_rows: int) -> None:
        """Attach optimizer, loss and metrics, so model.keras saves the optimizer state too."""
        steps = -(-train_rows // config.training.batch_size)
        model.compile(optimizer=make_optimizer(config, steps), loss=head.loss,
                      metrics=make_metrics(head), jit_compile=False)
        model.optimizer.build(model.trainable_variables)

    def fit(self, model: keras.Model, head: Head, config: Any, train: tuple[Any, np.ndarray],
            validation: tuple[Any, np.ndarray] | None, callbacks: list[keras.callbacks.Callback],
            initial_epoch: int = 0) -> None:
        """Train the compiled `model` in place; callbacks see every epoch as under `fit`."""
        training = config.training
        step = _StepFunctions.of(model, head, training.batch_size, config.seed)
        x, y = (as_tensor(a) for a in train)
        val = tuple(as_tensor(a) for a in validation) if validation is not None else None
        # The evaluator scores with the same compiled function. Training traces it for the
        # validation rows' exact shape, as the chunked loop's inlined call sees them: both
        # paths then compute the same numbers to the last bit.
        self._steps = step

        hooks = keras.callbacks.CallbackList(callbacks, model=model)
        model.stop_training = False
        hooks.on_train_begin()
        loop = chunked_loop(model, head.metrics, val is not None, callbacks) if CHUNKS else None
        epochs = range(initial_epoch, training.epochs)
        calls, trained = (loop.run(step, hooks, (x, y), val, epochs) if loop is not None
                          else self._epoch_per_call(model, head, step, hooks, (x, y), val, epochs))
        self.epochs_per_call = round(trained / calls, 1) if calls else None
        hooks.on_train_end()

    def _epoch_per_call(self, model: keras.Model, head: Head, step: _StepFunctions,
                        hooks: keras.callbacks.CallbackList, train: tuple[tf.Tensor, tf.Tensor],
                        val: tuple[tf.Tensor, ...] | None, epochs: range) -> tuple[int, int]:
        """Train `epochs` one compiled call each; return the calls and the epochs trained."""
        x, y = train
        calls = 0
        for epoch in epochs:
            calls += 1
            hooks.on_epoch_begin(epoch)
            logs = _as_floats(head, step.train_epoch(x, y, tf.constant(epoch, tf.int64)))
            if val is not None and np.isfinite(logs["loss"]):
                scores = _as_floats(head, step.evaluate(*val))
                logs.update({VALIDATION_PREFIX + k: v for k, v in scores.items()})
            hooks.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        return calls, calls

    def evaluator(self, model: keras.Model, head: Head) -> Callable[[Any, Any], dict[str, float]]:
        """A function `(x, y) -> {loss, metrics}` computed like Keras' `evaluate`, compiled once."""
        if self._steps is None or self._steps.model is not model:
            self._steps = _StepFunctions(model, head, batch_size=1, seed=0)
        step = self._steps

        def evaluate(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
            rows = as_tensor(x), as_tensor(y)
            step.trace_for_any_rows(*rows)
            return _as_floats(head, step.evaluate(*rows))

        return evaluate


def _as_floats(head: Head, values: tuple[tf.Tensor, ...]) -> dict[str, float]:
    names = ("loss", *head.metrics)
    return {name: float(v) for name, v in zip(names, values, strict=True)}


class _StepFunctions:
    """The compiled epoch and evaluation functions for one model.

    `of` keeps them with the model, so that a model that trains again (`warm`) reuses
    them and the compiled loops made from them (`loops`).
    """

    autograph = False
    # The model's attribute that keeps them: they go when the model goes.
    KEPT_AS = "_dlrecap_steps"

    @classmethod
    def of(cls, model: keras.Model, head: Head, batch_size: int, seed: int) -> _StepFunctions:
        """The model's functions made before for this batch size and seed, or new ones."""
        made = getattr(model, cls.KEPT_AS, None)
        if type(made) is not cls or (made.batch_size, made.seed) != (batch_size, seed):
            made = cls(model, head, batch_size, seed)
            setattr(model, cls.KEPT_AS, made)
        return made

    def __init__(self, model: keras.Model, head: Head, batch_size: int, seed: int):
        self.model, self.head = model, head
        self.batch_size, self.seed = batch_size, seed
        self.loss_fn = keras.losses.get(head.loss)
        # Explicit tf.while_loop bodies need no AutoGraph conversion, which costs a second or
        # more of tracing per run; subclasses written with Python loops turn it back on.
        options = {"jit_compile": False, "reduce_retracing": True, "autograph": self.autograph}
        self.train_epoch = tf.function(self._train_epoch, **options)
        self.evaluate = tf.function(self._evaluate, **options)
        self._evaluate_traced = False
        # The compiled loops of several epochs per call, by stopping rule and probes.
        self.loops: dict[tuple, Any] = {}

    def trace_for_any_rows(self, x: tf.Tensor, y: tf.Tensor) -> None:
        """Trace `evaluate` once for any number of rows shaped like `x` and `y`.

        Traced on its first shape, it would be traced again for the next split's row count
        (a tenth of a second or more each): the splits scored after training share this one.
        """
        if not self._evaluate_traced:
            self.evaluate.get_concrete_function(
                *(tf.TensorSpec([None, *t.shape[1:]], t.dtype) for t in (x, y)))
            self._evaluate_traced = True

    def _zeros(self) -> list[tf.Tensor]:
        """Empty per-metric sums: a number, or the counts of a metric in `counted.COUNTED`."""
        return [counted.zeros(name, self.head) if name in counted.COUNTED else tf.constant(0.0)
                for name in self.head.metrics]

    def _weights(self, y: tf.Tensor) -> tf.Tensor:
        """Each row's weight in the training loss: its class's, as Keras' `fit(class_weight=...)`
        gives it; 1 without class weights. Metrics are not weighted, as `compile(metrics=...)`'s
        are not."""
        if self.head.class_weights is None:
            return tf.ones([tf.shape(y)[0]])
        table = tf.constant(self.head.class_weights, tf.float32)
        return tf.gather(table, counted.true_classes(self.head, y))

    def _sums(self, y: tf.Tensor, pred: tf.Tensor) -> list[tf.Tensor]:
        """Per-metric sums (or counts) over a batch (sums are divided by the rows at the end)."""
        sums = []
        pred = tf.cast(pred, tf.float32)
        weight = tf.ones([tf.shape(pred)[0]])
        for name in self.head.metrics:
            if name in counted.COUNTED:
                sums.append(counted.counts(name, self.head, y, pred, weight))
            elif name == "accuracy":
                if self.head.one_hot:
                    hit = tf.equal(tf.argmax(pred, -1), tf.argmax(y, -1))
                elif self.head.loss == "sparse_categorical_crossentropy":
                    hit = tf.equal(tf.argmax(pred, -1, output_type=tf.int32), tf.cast(y, tf.int32))
                else:
                    hit = tf.equal(tf.cast(pred > 0.5, tf.float32), tf.cast(y, tf.float32))
                sums.append(tf.reduce_sum(tf.cast(hit, tf.float32)))
            else:
                err = pred - tf.cast(tf.reshape(y, tf.shape(pred)), tf.float32)
                per_row = tf.reduce_mean(tf.abs(err) if name == "mae" else tf.square(err), axis=-1)
                sums.append(tf.reduce_sum(per_row))
        return sums

    def _finish(self, loss_sum: tf.Tensor, sums: list[tf.Tensor], rows: tf.Tensor) -> tuple:
        rows = tf.cast(rows, tf.float32)
        values = [loss_sum / rows]
        for name, total in zip(self.head.metrics, sums, strict=True):
            if name in counted.COUNTED:
                values.append(counted.result(name, self.head, total))
            else:
                values.append(tf.sqrt(total / rows) if name == "rmse" else total / rows)
        return tuple(values)

    def _train_epoch(self, x: tf.Tensor, y: tf.Tensor, epoch: tf.Tensor) -> tuple:
        model, optimizer = self.model, self.model.optimizer
        n = tf.shape(x, out_type=tf.int64)[0]
        # Stateless: the order of epoch e depends only on (seed, e), so a resumed run
        # sees the same batches it would have seen without the interruption.
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n), seed=tf.stack([tf.constant(self.seed, tf.int64), epoch]))
        batch = tf.constant(self.batch_size, tf.int64)
        steps = (n + batch - 1) // batch

        def step(i, loss_sum, sums, seen, finite):
            idx = order[i * batch: tf.minimum((i + 1) * batch, n)]
            xb, yb = tf.gather(x, idx), tf.gather(y, idx)
            wb = self._weights(yb)
            with tf.GradientTape() as tape:
                pred = model(xb, training=True)
                # Keras' sum_over_batch_size: weighted losses summed, divided by the rows.
                loss = tf.reduce_mean(tf.cast(self.loss_fn(yb, pred), tf.float32) * wb)
                if model.losses:
                    loss = loss + tf.add_n(model.losses)
                # mixed_float16 compiles a LossScaleOptimizer: scale here, its apply() unscales.
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            rows = tf.shape(idx, out_type=tf.int64)[0]
            loss_sum += tf.cast(loss, tf.float32) * tf.cast(rows, tf.float32)
            sums = [s + b for s, b in zip(sums, self._sums(yb, pred), strict=True)]
            # A non-finite loss ends the epoch: its loss reports it and the guard stops training.
            return i + 1, loss_sum, sums, seen + rows, tf.math.is_finite(loss)

        start = (tf.constant(0, tf.int64), tf.constant(0.0), self._zeros(),
                 tf.constant(0, tf.int64), tf.constant(True))
        _, loss_sum, sums, seen, _ = tf.while_loop(
            lambda i, *rest: tf.logical_and(i < steps, rest[-1]), step, start)
        return self._finish(loss_sum, sums, seen)

    def _evaluate(self, x: tf.Tensor, y: tf.Tensor) -> tuple:
        model = self.model
        n = tf.shape(x, out_type=tf.int64)[0]
        batch = tf.constant(EVAL_BATCH, tf.int64)

        def chunk(start, loss_sum, sums):
            xb, yb = x[start: start + batch], y[start: start + batch]
            pred = model(xb, training=False)
            loss_sum += tf.reduce_sum(tf.cast(self.loss_fn(yb, pred), tf.float32))
            sums = [s + b for s, b in zip(sums, self._sums(yb, pred), strict=True)]
            return start + batch, loss_sum, sums

        begin = (tf.constant(0, tf.int64), tf.constant(0.0), self._zeros())
        _, loss_sum, sums = tf.while_loop(lambda start, *_: start < n, chunk, begin)
        penalty = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
        loss_sum += tf.cast(penalty, tf.float32) * tf.cast(n, tf.float32)
        return self._finish(loss_sum, sums, n)
