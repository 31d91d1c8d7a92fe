"""Choose the training engine: the fast in-memory loop when it can, Keras `fit` otherwise."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from dlrecap.errors import ConfigError
from dlrecap.model import Head


def pick_engine(requested: str, head: Head, x: Any, *, tensorboard: bool = False,
                distribute: str = "none") -> ModuleType:
    """The engine module for `training.engine: requested` under `distribute`.

    On one device: the fast engine when it can, else Keras `fit` (`keras_engine`). Under
    `mirrored` or `multi_worker`: the fast engine's loop with each batch split among the
    replicas (`distributed`) when it can, else Keras `fit` under `mirrored`; under
    `multi_worker` that is an error, as Keras 3 `fit` does not work there (keras#20585).

    Raises:
        ConfigError: the requested engine cannot train this config.
    """
    from dlrecap.train import distributed, fast_engine, keras_engine

    reason = None
    if not fast_engine.supports(head, x):
        reason = "it computes only accuracy, mae, mse and rmse, on numeric feature matrices"
    elif tensorboard:
        reason = "TensorBoard logging needs Keras fit"
    if distribute == "multi_worker":
        if requested == "keras":
            raise ConfigError("Keras fit does not work under MultiWorkerMirroredStrategy "
                              "(keras#20585)", key="training.engine",
                              fix="use auto: multi_worker has its own loop")
        if reason:
            raise ConfigError(f"the multi-worker loop cannot train this config: {reason}",
                              key="training.distribute", fix="use mirrored or none")
        return distributed
    if requested == "fast" and reason:
        raise ConfigError(f"the fast engine cannot train this config: {reason}",
                          key="training.engine", fix="use auto or keras")
    if requested == "keras" or reason:
        return keras_engine
    return distributed if distribute == "mirrored" else fast_engine
