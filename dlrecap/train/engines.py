"""Training engines: what each one does, and which one trains a given job.

An engine turns a built Keras model into a trained one; every engine calls Keras callbacks
once per epoch, so history, early stopping and checkpoints behave alike whichever one runs.
The fast in-memory loop trains when it can, Keras `fit` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from dlrecap.errors import ConfigError
from dlrecap.model import Head

if TYPE_CHECKING:
    import keras
    import numpy as np


class Engine(Protocol):
    """A way to train a compiled Keras model on data held in memory.

    Attributes:
        name: what metrics.json records as `engine`, e.g. `fast`.
        reason: why the fast engine is not the one training (metrics.json's
            `engine_reason`), or None when it is.

    Example:

    ```python
    engine = pick_engine("auto", head, splits.x_train)
    engine.compile(model, head, config, train_rows=len(x))
    engine.fit(model, head, config, (x, y), (x_val, y_val), callbacks=[...])
    scores = engine.evaluator(model, head)(x_test, y_test)  # {"loss": ..., "accuracy": ...}
    ```
    """

    name: str
    reason: str | None

    def supports(self, head: Head, x: Any, *, tensorboard: bool = False,
                 distribute: str = "none") -> str | None:
        """Why this engine cannot train `head` on rows `x`, or None when it can.

        Args:
            head: the output head (its loss and metrics).
            x: the training rows: a matrix, or a dict of columns.
            tensorboard: whether TensorBoard logging is asked for.
            distribute: the strategy: `none`, `mirrored` or `multi_worker`.
        """
        ...

    def compile(self, model: keras.Model, head: Head, config: Any, train_rows: int) -> None:
        """Attach optimizer, loss and metrics to `model` (inside the strategy's scope)."""
        ...

    def fit(self, model: keras.Model, head: Head, config: Any, train: tuple[Any, np.ndarray],
            validation: tuple[Any, np.ndarray] | None, callbacks: list[keras.callbacks.Callback],
            initial_epoch: int = 0) -> None:
        """Train the compiled `model` in place from `initial_epoch` to `training.epochs`.

        Callbacks see `on_train_begin`, each epoch's begin and end (with the epoch's logs,
        `val_` ones included when there is `validation`), and `on_train_end`.
        """
        ...

    def evaluator(self, model: keras.Model, head: Head) -> Callable[[Any, Any], dict[str, float]]:
        """A function `(x, y) -> {"loss": ..., metric: ...}`, named as in history.csv."""
        ...


def pick_engine(requested: str, head: Head, x: Any, *, tensorboard: bool = False,
                distribute: str = "none", config: Any = None, on_gpu: bool = False) -> Engine:
    """The engine for `training.engine: requested` under `distribute`.

    On one device: the NumPy engine when it can (given the `config`; never on a GPU,
    `on_gpu`), else the fast engine when it can, else Keras `fit`. Under `mirrored` or
    `multi_worker`: the fast engine's loop with each batch split among the replicas
    (`DistributedEngine`) when it can, else Keras `fit` under `mirrored`; under
    `multi_worker` that is an error, as Keras 3 `fit` does not work there (keras#20585).

    Raises:
        ConfigError: the requested engine cannot train this config.
    """
    from dlrecap.train.distributed import DistributedEngine
    from dlrecap.train.fast_engine import FastEngine
    from dlrecap.train.keras_engine import KerasEngine
    from dlrecap.train.numpy_engine import NumpyEngine, why_not
    from dlrecap.train.numpy_scope import refusal

    if requested in ("auto", "numpy") and config is not None:
        why = why_not(config, head, x, on_gpu) if distribute == "none" else \
            f"training.distribute is {distribute}"
        if why is None:
            numpy_engine = NumpyEngine()
            numpy_engine.reason = ("training.engine is numpy" if requested == "numpy" else
                                   "a small dense network on the CPU: NumPy trains it without "
                                   "compiling a graph")
            return numpy_engine
        if requested == "numpy":
            raise refusal(why)

    fast = DistributedEngine() if distribute in ("mirrored", "multi_worker") else FastEngine()
    keras_fit = KerasEngine()
    if requested == "keras":
        if why := keras_fit.supports(head, x, tensorboard=tensorboard, distribute=distribute):
            raise ConfigError(why, key="training.engine",
                              fix="use auto: multi_worker has its own loop")
        keras_fit.reason = "training.engine is keras"
        return keras_fit
    reason = fast.supports(head, x, tensorboard=tensorboard, distribute=distribute)
    if reason is None:
        return fast
    if distribute == "multi_worker":
        raise ConfigError(f"the multi-worker loop cannot train this config: {reason}",
                          key="training.distribute", fix="use mirrored or none")
    if requested == "fast":
        raise ConfigError(f"the fast engine cannot train this config: {reason}",
                          key="training.engine", fix="use auto or keras")
    keras_fit.reason = reason
    return keras_fit
