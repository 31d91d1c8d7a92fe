"""Choose the training engine: the fast in-memory loop when it can, Keras `fit` otherwise."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from dlrecap.errors import ConfigError
from dlrecap.model import Head


def pick_engine(requested: str, head: Head, x: Any, *, tensorboard: bool = False) -> ModuleType:
    """The engine module (`fast_engine` or `keras_engine`) for `training.engine: requested`.

    Raises:
        ConfigError: `fast` was asked for but cannot train this config.
    """
    from dlrecap.train import fast_engine, keras_engine

    reason = None
    if not fast_engine.supports(head, x):
        reason = "it computes only accuracy, mae, mse and rmse, on numeric feature matrices"
    elif tensorboard:
        reason = "TensorBoard logging needs Keras fit"
    if requested == "fast" and reason:
        raise ConfigError(f"the fast engine cannot train this config: {reason}",
                          key="training.engine", fix="use auto or keras")
    if requested == "keras" or reason:
        return keras_engine
    return fast_engine
