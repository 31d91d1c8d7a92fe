"""The Keras `Model.fit` engine, set up the fast way for in-memory data.

tf.data from tensors (cache -> shuffle -> batch -> prefetch) with `fit(shuffle=False)`
costs a fraction of fit's NumPy path per epoch; `steps_per_execution` cuts more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecap.data.split import n_rows
from dlrecap.model import Head, make_metrics, make_optimizer

# Batches run per compiled call; callbacks still see every epoch.
STEPS_PER_EXECUTION = 32


class KerasEngine:
    """Trains with Keras `Model.fit` on a tf.data pipeline (an `Engine`): any model, any metric."""

    name = "keras"

    def supports(self, head: Head, x: Any, *, tensorboard: bool = False,
                 distribute: str = "none") -> str | None:
        """Why `fit` cannot train this job, or None: only under `multi_worker` can it not."""
        if distribute == "multi_worker":
            return "Keras fit does not work under MultiWorkerMirroredStrategy (keras#20585)"
        return None

    def compile(self, model: keras.Model, head: Head, config: Any, train_rows: int) -> None:
        """Attach optimizer, loss and metrics to `model`."""
        steps = max(1, -(-train_rows // config.training.batch_size))
        if tf.distribute.has_strategy():
            steps = 1  # several steps per call fail under MirroredStrategy (a graph placeholder error)
        model.compile(
            optimizer=make_optimizer(config),
            loss=head.loss,
            metrics=make_metrics(head),
            steps_per_execution=min(STEPS_PER_EXECUTION, steps),
            jit_compile=False,
        )

    def fit(self, model: keras.Model, head: Head, config: Any, train: tuple[Any, np.ndarray],
            validation: tuple[Any, np.ndarray] | None, callbacks: list[keras.callbacks.Callback],
            initial_epoch: int = 0) -> None:
        """Train the compiled `model` in place with `Model.fit`; progress reaches the callbacks."""
        training = config.training
        data = tf.data.Dataset.from_tensor_slices(train).cache()
        data = data.shuffle(n_rows(train[0]), seed=config.seed, reshuffle_each_iteration=True)
        data = data.batch(training.batch_size).prefetch(tf.data.AUTOTUNE)
        val_data = None
        if validation is not None:
            val_data = tf.data.Dataset.from_tensor_slices(validation).batch(4096).cache()
        model.fit(
            data,
            validation_data=val_data,
            epochs=training.epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
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
