"""The teaching linter: legal configs that probably don't do what the learner wants.

Each warning names its key and says in one line why it matters. `--strict` makes them errors.
"""

from __future__ import annotations

import math

from dlrecap.catalog import DATASETS
from dlrecap.config.schema import LAYER_DEFAULTS, Config
from dlrecap.derive import repeated_raw

# (dotted key, message): one teaching warning.
Finding = tuple[str, str]

# Learning rates outside these ranges rarely train well with the optimizer named.
_USUAL_LR = {
    "sgd": (1e-4, 1.0), "adam": (1e-5, 0.1), "adamw": (1e-5, 0.1), "nadam": (1e-5, 0.1),
    "adamax": (1e-5, 0.1), "rmsprop": (1e-5, 0.1), "adagrad": (1e-4, 1.0),
    "adadelta": (1e-3, 10.0),
}


def lint(config: Config, task: str | None = None, train_rows: int | None = None) -> list[Finding]:
    """Return `(dotted key, message)` for each suspicious setting.

    Args:
        config: a validated config.
        task: the data's task when known (built-in sets know it before loading).
        train_rows: the number of training rows when known.
    """
    task, train_rows = _known_shape(config, task, train_rows)
    return [
        *_shadowed_warnings(config),
        *_model_warnings(config),
        *(task_warnings(config, task) if task else []),
        *_early_stopping_warnings(config),
        *_optimizer_warnings(config),
        *_schedule_warnings(config),
        *_dropout_warnings(config),
        *_batch_warnings(config, train_rows),
        *_derive_warnings(config),
    ]


def _known_shape(config: Config, task: str | None, train_rows: int | None) -> tuple[str | None, int | None]:
    """The task and training rows, filled in from the catalogue for a built-in data set."""
    data = config.data
    if data.dataset not in DATASETS:  # a data file: its task is known once it is read
        return task or (data.task if data.task != "auto" else None), train_rows
    info = DATASETS[data.dataset]
    task = task or (info.task if data.task == "auto" else data.task)
    rows = info.rows or data.samples
    if train_rows is None and rows:
        train_rows = round(rows * (1 - data.validation_split - data.test_split))
    return task, train_rows


def _shadowed_warnings(config: Config) -> list[Finding]:
    """Model-level layer defaults that were set but that no layer takes."""
    model = config.model
    found: list[Finding] = []
    for key in LAYER_DEFAULTS:
        # The output layer takes model.initializer too: it always has an effect.
        if key not in model.model_fields_set or key == "initializer":
            continue
        if not model.layers:
            found.append((f"model.{key}", "has no effect: the network has no hidden layers "
                          "(layers: [] is a perceptron)"))
        elif all(getattr(layer, key) is not None for layer in model.layers):
            found.append((f"model.{key}", f"has no effect: every layer sets its own {key} "
                          f"(remove {key} from the layers to let this one apply)"))
    return found


def _model_warnings(config: Config) -> list[Finding]:
    model = config.model
    activations = [layer.activation or model.activation for layer in model.layers]
    if activations and all(a == "linear" for a in activations):
        return [("model.layers", "every hidden activation is linear, so the whole network "
                 "is one linear function whatever its depth (it cannot solve XOR)")]
    return []


def task_warnings(config: Config, task: str) -> list[Finding]:
    """Settings that do not suit the task: known before training for a built-in set or a
    set `data.task`, and once a data file is read otherwise (`data.notes`)."""
    model, training = config.model, config.training
    found: list[Finding] = []
    if task == "multiclass" and model.output_activation == "sigmoid":
        found.append(("model.output_activation", "sigmoid scores each class on its own; "
                      "softmax gives class probabilities that sum to 1"))
    if task == "binary" and model.output_activation == "softmax":
        found.append(("model.output_activation", "softmax on a binary task needs two outputs; "
                      "one sigmoid output is the usual choice"))
    if task in ("binary", "multiclass") and training.loss in ("mse", "mae", "huber"):
        found.append(("training.loss", f"{training.loss} on a classification task learns slowly; "
                      "cross-entropy is the loss for probabilities"))
    if task != "regression" and config.data.standardize_target:
        found.append(("data.standardize_target", "has no effect: a classification target is "
                      "classes, not numbers to scale"))
    return found


def _early_stopping_warnings(config: Config) -> list[Finding]:
    training, es = config.training, config.training.early_stopping
    if not es:
        return []
    found: list[Finding] = []
    if es.patience >= training.epochs:
        found.append(("training.early_stopping.patience", f"patience {es.patience} >= epochs "
                      f"{training.epochs}, so early stopping can never stop training"))
    if config.data.validation_split == 0 and es.monitor.startswith("val_"):
        found.append(("training.early_stopping", "data.validation_split is 0: early stopping "
                      "watches training loss, which keeps falling while the model overfits"))
    return found


def _optimizer_warnings(config: Config) -> list[Finding]:
    training = config.training
    found: list[Finding] = []
    low, high = _USUAL_LR[training.optimizer]
    if not low <= training.learning_rate <= high:
        found.append(("training.learning_rate", f"{training.learning_rate:g} is far outside the "
                      f"usual {low:g}..{high:g} for {training.optimizer}: expect "
                      f"{'very slow learning' if training.learning_rate < low else 'divergence'}"))
    if training.momentum and training.optimizer != "sgd":
        found.append(("training.momentum", f"momentum applies to sgd only; {training.optimizer} "
                      "ignores it"))
    clip = "clipnorm" if training.clipnorm is not None else "clipvalue"
    if getattr(training, clip) is not None and training.distribute in ("mirrored", "multi_worker"):
        found.append((f"training.{clip}", f"under {training.distribute}, Keras clips each "
                      "replica's share of the gradient before the shares are summed, not the "
                      "whole batch's gradient"))
    return found


def _schedule_warnings(config: Config) -> list[Finding]:
    """Schedules that cannot do what they are set for within `training.epochs`."""
    training = config.training
    schedule, epochs, key = training.lr_schedule, training.epochs, "training.lr_schedule"
    if schedule.name == "exponential" and schedule.setting("decay_epochs") > epochs:
        end = schedule.setting("decay_rate") ** (epochs / schedule.setting("decay_epochs"))
        return [(f"{key}.decay_epochs", f"{schedule.setting('decay_epochs'):g} > epochs {epochs}: "
                 f"the rate never falls by decay_rate; it ends at {end:.0%} of learning_rate")]
    if schedule.name == "cosine":
        return _cosine_warnings(config)
    if schedule.name == "reduce_on_plateau":
        patience, es = schedule.setting("patience"), training.early_stopping
        if patience >= epochs:
            return [(f"{key}.patience", f"patience {patience} >= epochs {epochs}, so the rate is "
                     "never reduced")]
        if es and es.patience <= patience and (schedule.monitor or es.monitor) == es.monitor:
            return [(f"{key}.patience", f"early stopping's patience {es.patience} is not above "
                     f"this one ({patience}): training stops before the rate is ever reduced")]
    return []


def _cosine_warnings(config: Config) -> list[Finding]:
    training, schedule = config.training, config.training.lr_schedule
    epochs, key = training.epochs, "training.lr_schedule"
    warmup, decay = schedule.setting("warmup_epochs"), schedule.setting("decay_epochs")
    if warmup >= epochs:
        return [(f"{key}.warmup_epochs", f"warmup_epochs {warmup:g} >= epochs {epochs}: training "
                 "ends while the rate still rises, before it reaches learning_rate")]
    if decay is not None and warmup + decay > epochs:
        low, high = schedule.setting("min_lr"), training.learning_rate
        end = low + (high - low) * 0.5 * (1 + math.cos(math.pi * (epochs - warmup) / decay))
        return [(f"{key}.decay_epochs", f"warmup and decay take {warmup + decay:g} epochs, "
                 f"more than epochs {epochs}: the rate ends at {end:.3g}, not min_lr {low:g}")]
    return []


def _dropout_warnings(config: Config) -> list[Finding]:
    model = config.model
    rates = [(f"model.layers[{i}].dropout", layer.dropout) for i, layer in enumerate(model.layers)]
    # model.dropout only reaches layers that set no dropout of their own.
    if any(layer.dropout is None for layer in model.layers):
        rates.append(("model.dropout", model.dropout))
    return [(key, f"dropout {rate:g} drops most activations; 0.1-0.5 is usual")
            for key, rate in rates if rate is not None and rate >= 0.8]


def _batch_warnings(config: Config, train_rows: int | None) -> list[Finding]:
    batch_size = config.training.batch_size
    if train_rows and batch_size > train_rows:
        return [("training.batch_size", f"{batch_size} is more than the {train_rows} training "
                 "rows: each epoch is one full-batch step")]
    return []


def _derive_warnings(config: Config) -> list[Finding]:
    data = config.data
    where = "data.features lists it" if data.features is not None else \
        "if it is a column of the data: every raw column is an input while data.features is unset"
    return [(f"data.derive[{i}]", f"{column} is a raw input already ({where}): the network "
             "gets the same column twice; derive adds features after the raw ones")
            for i, column in repeated_raw(data.features, data.derive or [])]
