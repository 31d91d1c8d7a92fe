"""What the NumPy engine can train, as far as the config alone says: no TensorFlow here.

`dlrecap validate` asks it before any data is read, so `training.engine: numpy` on a
config the engine cannot train is an error there too; `numpy_engine.why_not` adds what
needs the data, the output head and the device.
"""

from __future__ import annotations

from typing import Any

from dlrecap.errors import ConfigError

# Hidden activations the engine differentiates (`numpy_net.DERIVATIVES`).
HIDDEN_ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")
# Epoch metrics it computes; the counted ones (AUC, precision...) need the fast engine.
METRICS = ("accuracy", "mae", "mse", "rmse")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "reduce_on_plateau")


def config_why_not(config: Any) -> str | None:
    """Why the NumPy engine cannot train this config, from its settings alone, or None."""
    training, spec = config.training, config.model
    hidden = [layer.activation or spec.activation for layer in spec.layers]
    batch_norm = [spec.batch_norm if layer.batch_norm is None else layer.batch_norm
                  for layer in spec.layers]
    metrics = training.metrics if isinstance(training.metrics, list) else []
    checks = (
        (training.precision != "float32", f"precision {training.precision}"),
        (training.tensorboard, "TensorBoard logging"),
        (training.optimizer not in OPTIMIZERS, f"optimizer {training.optimizer}"),
        (training.clipnorm is not None or training.clipvalue is not None, "gradient clipping"),
        (training.lr_schedule.name not in SCHEDULES, f"lr_schedule {training.lr_schedule.name}"),
        (any(batch_norm), "batch normalization"),
        (any(a not in HIDDEN_ACTIVATIONS for a in hidden), "a hidden activation other than "
         + ", ".join(HIDDEN_ACTIVATIONS)),
        (any(m not in METRICS for m in metrics), "a counted metric (auc, precision...)"),
    )
    return next((why for failed, why in checks if failed), None)


def refusal(why: str) -> ConfigError:
    """The error for `training.engine: numpy` on a config it cannot train, `why`."""
    return ConfigError(f"the numpy engine cannot train this config: {why}",
                       key="training.engine", fix="use auto or fast")
