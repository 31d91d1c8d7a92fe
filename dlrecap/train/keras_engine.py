"""The Keras `Model.fit` engine, set up the fast way for in-memory data.

tf.data from tensors with `fit(shuffle=False)` costs a fraction of fit's NumPy path per
epoch; `steps_per_execution` cuts more. As in the fast engine, the batches of epoch e depend
only on (seed, e), so a resumed run trains on the batches it would have seen uninterrupted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecap.data.split import n_rows
from dlrecap.model import Head, make_optimizer
from dlrecap.train.metrics import make_metrics

# Batches run per compiled call; callbacks still see every epoch.
STEPS_PER_EXECUTION = 32


class KerasEngine:
    """Trains with Keras `Model.fit` on a tf.data pipeline (an `Engine`): any model, any metric."""

    name = "keras"
    # Why the fast engine does not train this job (`pick_engine` sets it), or None.
    reason: str | None = None

    def supports(self, head: Head, x: Any, *, tensorboard: bool = False,
                 distribute: str = "none") -> str | None:
        """Why `fit` cannot train this job, or None: only under `multi_worker` can it not."""
        if distribute == "multi_worker":
            return "Keras fit does not work under MultiWorkerMirroredStrategy (keras#20585)"
        return None

    def compile(self, model: keras.Model, head: Head, config: Any, train_rows: int) -> None:
        """Attach optimizer, loss and metrics to `model`."""
        steps = max(1, -(-train_rows // config.training.batch_size))
        per_call = steps_per_call(steps)
        if tf.distribute.has_strategy():
            per_call = 1  # several steps per call fail under MirroredStrategy (a graph placeholder error)
        model.compile(
            optimizer=make_optimizer(config, steps),
            loss=head.loss,
            metrics=make_metrics(head),
            steps_per_execution=per_call,
            jit_compile=False,
        )

    def fit(self, model: keras.Model, head: Head, config: Any, train: tuple[Any, np.ndarray],
            validation: tuple[Any, np.ndarray] | None, callbacks: list[keras.callbacks.Callback],
            initial_epoch: int = 0) -> None:
        """Train the compiled `model` in place with `Model.fit`; progress reaches the callbacks."""
        training = config.training
        data = epoch_batches(train, training.batch_size, config.seed, initial_epoch, training.epochs)
        val_data = None
        if validation is not None:
            val_data = tf.data.Dataset.from_tensor_slices(validation).batch(4096).cache()
        model.fit(
            data,
            validation_data=val_data,
            epochs=training.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=-(-n_rows(train[0]) // training.batch_size),
            callbacks=callbacks,
            class_weight=dict(enumerate(head.class_weights)) if head.class_weights else None,
            shuffle=False,
            verbose=0,
        )

    def evaluator(self, model: keras.Model, head: Head) -> Callable[[Any, Any], dict[str, float]]:
        """A function `(x, y) -> {loss, metrics}` using `Model.evaluate`, named as in history.csv."""
        if not model.compiled:
            model.compile(loss=head.loss, metrics=make_metrics(head), jit_compile=False)

        def evaluate(x: Any, y: np.ndarray) -> dict[str, float]:
            # Keras' array path rejects string columns; tf.data takes matrices and dicts alike.
            data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4096)
            results = model.evaluate(data, verbose=0, return_dict=True)
            return {name: float(results[name]) for name in ("loss", *head.metrics)}

        return evaluate


def steps_per_call(steps: int) -> int:
    """Batches per compiled call: the most, up to `STEPS_PER_EXECUTION`, that divide an epoch.

    `fit` reads every epoch from one iterator, and a call runs its steps whatever the epoch:
    an uneven split would move batches from one epoch into the next.
    """
    return max(d for d in range(1, min(STEPS_PER_EXECUTION, steps) + 1) if steps % d == 0)


def epoch_batches(train: tuple[Any, np.ndarray], batch_size: int, seed: int, first_epoch: int,
                  epochs: int) -> tf.data.Dataset:
    """The mini-batches of epochs `first_epoch` to `epochs - 1`, one after the other.

    Each epoch's order is the fast engine's: a stateless shuffle seeded with (seed, epoch).

    Args:
        train: (x, y); x a matrix or a dict of columns.
        batch_size: rows per batch (the last batch of an epoch may be smaller).
        seed: the run's seed.
        first_epoch: the first epoch to train (0-based), a resumed run's checkpoint.
        epochs: the epoch to stop before.
    """
    tensors = tf.nest.map_structure(tf.convert_to_tensor, train)
    rows = tf.constant(n_rows(train[0]), tf.int64)

    def shuffled(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(rows), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    def gather(indices: tf.Tensor) -> Any:
        return tf.nest.map_structure(lambda t: tf.gather(t, indices), tensors)

    return (tf.data.Dataset.range(first_epoch, epochs).flat_map(shuffled)
            .map(gather).prefetch(tf.data.AUTOTUNE))
