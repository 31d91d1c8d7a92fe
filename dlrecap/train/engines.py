"""Choose the training engine: the fast in-memory loop when it can, Keras `fit` otherwise."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from dlrecap.errors import ConfigError
from dlrecap.model import Head


def pick_engine(requested: str, head: Head, x: Any, *, tensorboard: bool = False,
                distribute: str = "none") -> ModuleType:
    """The engine module for `training.engine: requested` under `distribute`.

    `none`: the fast engine when it can, else `keras_engine`; `mirrored`: Keras `fit`, which
    splits batches among the devices; `multi_worker`: the loop in `distributed`, because
    Keras 3 `fit` does not work under MultiWorkerMirroredStrategy (keras#20585).

    Raises:
        ConfigError: the requested engine cannot train this config.
    """
    from dlrecap.train import fast_engine, keras_engine

    if distribute == "multi_worker":
        return _multi_worker_engine(requested, head, x, tensorboard)
    reason = None
    if distribute == "mirrored":
        reason = "it trains on one device; distribute: mirrored trains with Keras fit"
    elif not fast_engine.supports(head, x):
        reason = "it computes only accuracy, mae, mse and rmse, on numeric feature matrices"
    elif tensorboard:
        reason = "TensorBoard logging needs Keras fit"
    if requested == "fast" and reason:
        raise ConfigError(f"the fast engine cannot train this config: {reason}",
                          key="training.engine", fix="use auto or keras")
    if requested == "keras" or reason:
        return keras_engine
    return fast_engine


def _multi_worker_engine(requested: str, head: Head, x: Any, tensorboard: bool) -> ModuleType:
    from dlrecap.train import distributed

    if requested == "keras":
        raise ConfigError("Keras fit does not work under MultiWorkerMirroredStrategy (keras#20585)",
                          key="training.engine", fix="use auto: multi_worker has its own loop")
    if not distributed.supports(head, x):
        raise ConfigError("the multi-worker loop computes only accuracy, mae, mse and rmse, on "
                          "numeric feature matrices", key="training.metrics",
                          fix="use those metrics, or distribute: mirrored")
    if tensorboard:
        raise ConfigError("TensorBoard logging needs Keras fit, which multi_worker cannot use",
                          key="training.tensorboard", fix="set it to false")
    return distributed
