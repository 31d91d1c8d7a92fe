"""The teaching linter: legal configs that probably don't do what the learner wants.

Each warning names its key and says in one line why it matters. `--strict` makes them errors.
"""

from __future__ import annotations

from dlrecap.config.schema import Config
from dlrecap.data.registry import DATASETS

# Learning rates outside these ranges rarely train well with the optimizer named.
_USUAL_LR = {
    "sgd": (1e-4, 1.0), "adam": (1e-5, 0.1), "adamw": (1e-5, 0.1), "nadam": (1e-5, 0.1),
    "adamax": (1e-5, 0.1), "rmsprop": (1e-5, 0.1), "adagrad": (1e-4, 1.0),
    "adadelta": (1e-3, 10.0),
}


def lint(config: Config, task: str | None = None, train_rows: int | None = None) -> list[tuple[str, str]]:
    """Return `(dotted key, message)` for each suspicious setting.

    Args:
        config: a validated config.
        task: the data's task when known (built-in sets know it before loading).
        train_rows: the number of training rows when known.
    """
    data, model, training = config.data, config.model, config.training
    if data.dataset in DATASETS:
        info = DATASETS[data.dataset]
        task = task or (info.task if data.task == "auto" else data.task)
        rows = info.rows or data.samples
        if train_rows is None and rows:
            train_rows = round(rows * (1 - data.validation_split - data.test_split))
    found: list[tuple[str, str]] = []

    activations = [layer.activation or model.activation for layer in model.layers]
    if activations and all(a == "linear" for a in activations):
        found.append(("model.layers", "every hidden activation is linear, so the whole network "
                      "is one linear function whatever its depth (it cannot solve XOR)"))
    if task == "multiclass" and model.output_activation == "sigmoid":
        found.append(("model.output_activation", "sigmoid scores each class on its own; "
                      "softmax gives class probabilities that sum to 1"))
    if task == "binary" and model.output_activation == "softmax":
        found.append(("model.output_activation", "softmax on a binary task needs two outputs; "
                      "one sigmoid output is the usual choice"))
    if task in ("binary", "multiclass") and training.loss in ("mse", "mae", "huber"):
        found.append(("training.loss", f"{training.loss} on a classification task learns slowly; "
                      "cross-entropy is the loss for probabilities"))
    es = training.early_stopping
    if es and es.patience >= training.epochs:
        found.append(("training.early_stopping.patience", f"patience {es.patience} >= epochs "
                      f"{training.epochs}, so early stopping can never stop training"))
    if es and data.validation_split == 0 and es.monitor.startswith("val_"):
        found.append(("training.early_stopping", "data.validation_split is 0: early stopping "
                      "watches training loss, which keeps falling while the model overfits"))
    low, high = _USUAL_LR[training.optimizer]
    if not low <= training.learning_rate <= high:
        found.append(("training.learning_rate", f"{training.learning_rate:g} is far outside the "
                      f"usual {low:g}..{high:g} for {training.optimizer}: expect "
                      f"{'very slow learning' if training.learning_rate < low else 'divergence'}"))
    if training.momentum and training.optimizer != "sgd":
        found.append(("training.momentum", f"momentum applies to sgd only; {training.optimizer} "
                      "ignores it"))
    rates = [(f"model.layers[{i}].dropout", layer.dropout) for i, layer in enumerate(model.layers)]
    # model.dropout only reaches layers that set no dropout of their own.
    if any(layer.dropout is None for layer in model.layers):
        rates.append(("model.dropout", model.dropout))
    for key, rate in rates:
        if rate is not None and rate >= 0.8:
            found.append((key, f"dropout {rate:g} drops most activations; 0.1-0.5 is usual"))
    if train_rows and training.batch_size > train_rows:
        found.append(("training.batch_size", f"{training.batch_size} is more than the "
                      f"{train_rows} training rows: each epoch is one full-batch step"))
    return found
