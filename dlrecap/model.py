"""Build the Keras model a config describes: standardization, hidden Dense layers, output head.

The head (units, activation, loss, metrics, label encoding) follows from the task, so it is
worked out once here and shared by both training engines.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from dlrecap.config.schema import Config, InitializerConfig, LayerConfig, ModelConfig
from dlrecap.errors import ConfigError
from dlrecap.vocab import default_metrics

if TYPE_CHECKING:
    import keras

    from dlrecap.data import Splits



@dataclass(frozen=True)
class Head:
    """The output layer and how it is trained.

    Args:
        units: output neurons.
        activation: output activation.
        loss: Keras loss name used for training.
        one_hot: whether labels are one-hot encoded (multiclass with a non-sparse loss).
        metrics: metric names, as they appear in history.csv and metrics.json.
        class_weights: the training loss's weight per class index (`training.class_weight`),
            or None to weigh every row alike.
    """

    units: int
    activation: str
    loss: str
    one_hot: bool
    metrics: tuple[str, ...]
    class_weights: tuple[float, ...] | None = None


def plan_head(config: Config, task: str, n_classes: int | None) -> Head:
    """Work out the output head for `task` from the config's choices."""
    model, training = config.model, config.training
    metrics = tuple(training.metrics) if isinstance(training.metrics, list) else default_metrics(task)
    if task == "regression":
        activation = "linear" if model.output_activation == "auto" else model.output_activation
        loss = "mse" if training.loss == "auto" else training.loss
        return Head(1, activation, loss, False, metrics)

    if task == "multiclass" or model.output_activation == "softmax":
        units = int(n_classes or 2)
        activation = "softmax" if model.output_activation == "auto" else model.output_activation
        if training.loss == "binary_crossentropy":
            raise ConfigError(
                "binary_crossentropy needs one sigmoid output, but this head has "
                f"{units} softmax outputs", key="training.loss",
                fix="use categorical_crossentropy (or auto)",
            )
        # Integer labels with the sparse loss are what one-hot + categorical computes, cheaper.
        sparse = training.loss in ("auto", "categorical_crossentropy",
                                   "sparse_categorical_crossentropy")
        loss = "sparse_categorical_crossentropy" if sparse else training.loss
        return Head(units, activation, loss, not sparse, metrics)

    activation = "sigmoid" if model.output_activation == "auto" else model.output_activation
    loss = "binary_crossentropy" if training.loss in ("auto", "categorical_crossentropy",
                                                      "sparse_categorical_crossentropy") \
        else training.loss
    return Head(1, activation, loss, False, metrics)


def weigh_classes(head: Head, config: Config, y_train: np.ndarray,
                  labels: list[str] | None) -> Head:
    """`head` with the class weights `training.class_weight` asks for (checked by `check_task`).

    `balanced` is computed from the training rows' classes, as scikit-learn does; a mapping
    by label gives its labels their weights and every other class 1, as Keras does.
    """
    from dlrecap.config.checks import label_index
    from dlrecap.scoring import balanced_weights

    wanted = config.training.class_weight
    if wanted is None or labels is None:
        return head
    if wanted == "balanced":
        weights = balanced_weights(y_train, len(labels))
    else:
        weights = [1.0] * len(labels)
        for key, value in wanted.items():
            index = label_index(key, labels)
            if index is not None:
                weights[index] = float(value)
    return replace(head, class_weights=tuple(weights))


def encode_targets(y: np.ndarray, head: Head, scale: TargetScale | None = None) -> np.ndarray:
    """Labels as the head's loss expects them: (n, 1) floats, (n,) ints or one-hot rows.

    Args:
        y: class indices, or regression targets in their own units.
        head: the output head.
        scale: regression targets are standardized with it, when given.
    """
    if head.one_hot:
        return np.eye(head.units, dtype="float32")[y.astype(int)]
    if head.loss == "sparse_categorical_crossentropy":
        return y.astype("int32")
    if scale is not None:
        y = (y.astype("float64") - scale.mean) / scale.std
    return y.astype("float32").reshape(-1, 1)


@dataclass(frozen=True)
class TargetScale:
    """How a regression target is standardized for training: `(y - mean) / std`.

    A target in the tens of thousands would take a network started near 0 thousands of
    epochs to reach; standardized, it starts where the data is.

    Args:
        mean: the training targets' mean.
        std: their standard deviation (1 for a constant target).
    """

    mean: float
    std: float


def target_scale(config: Config, splits: Splits) -> TargetScale | None:
    """The training targets' mean and std when `data.standardize_target` applies, else None."""
    if not config.data.standardizes_target(splits.task):
        return None
    y = np.asarray(splits.y_train, dtype=np.float64)
    std = float(y.std()) if len(y) else 0.0
    return TargetScale(float(y.mean()) if len(y) else 0.0, std if std > 0 else 1.0)


# Rows whose squared deviations `column_moments` holds at a time.
MOMENT_ROWS = 65536


def column_moments(x: np.ndarray, rows: int = MOMENT_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """`x.mean(axis=0)` and `x.var(axis=0)`, equal to the last bit, without `var`'s temporary
    as large as `x` (the squared deviations): `rows` of them at a time.

    NumPy sums a C-ordered matrix of two or more columns down its rows, one after another
    (a single column it sums pairwise: that one gets `var` itself); here each block of
    squares follows the running sum in one buffer, so that every addition is the one `var`
    makes.
    """
    mean = x.mean(axis=0)
    if x.ndim != 2 or x.shape[1] < 2 or not x.flags.c_contiguous:
        return mean, x.var(axis=0)
    block = np.empty((min(rows, len(x)) + 1, *x.shape[1:]), dtype=mean.dtype)
    total = np.zeros_like(mean)  # 0 + the first square is that square exactly
    for start in range(0, len(x), rows):
        part = x[start:start + rows]
        squares = block[1:len(part) + 1]
        np.subtract(part, mean, out=squares)
        np.multiply(squares, squares, out=squares)
        block[0] = total
        total = block[:len(part) + 1].sum(axis=0)
    with np.errstate(invalid="ignore"):  # no rows: NaN, as NumPy's
        return mean, np.true_divide(total, len(x), out=total, casting="unsafe")


# The last layer of a model trained on standardized targets: it maps outputs back.
TARGET_LAYER = "target_units"


def in_target_units(model: keras.Model, scale: TargetScale | None) -> keras.Model:
    """`model` followed by a layer that maps standardized outputs back: `y * std + mean`.

    The new model shares `model`'s layers and weights, so training one trains the other.
    A plain `Rescaling` layer, it saves and loads without custom code. Without a scale,
    `model` itself.
    """
    if scale is None:
        return model
    import keras

    # float32 even under mixed precision: float16 cannot hold targets in the tens of thousands.
    outputs = keras.layers.Rescaling(scale=scale.std, offset=scale.mean, name=TARGET_LAYER,
                                     dtype="float32")(model.output)
    return keras.Model(model.input, outputs, name=model.name)


def build_model(config: Config, splits: Splits, head: Head) -> keras.Model:
    """The uncompiled Keras model: it takes raw feature rows (standardization is inside).

    Args:
        config: the validated config (its `model` section and `data.standardize`).
        splits: the data; the training rows give the standardization mean and variance.
        head: the output head from `plan_head`.
    """
    import keras

    spec = config.model
    if splits.categorical:
        inputs, x = table_inputs(splits, config.data.standardize)
    else:
        inputs = keras.Input(shape=(splits.n_features,), name="features")
        x = inputs
        if config.data.standardize:
            mean, variance = column_moments(splits.x_train)
            # A constant column would divide by ~0: leave it unscaled instead.
            variance = np.where(variance > 0, variance, 1.0)
            x = keras.layers.Normalization(mean=mean, variance=variance, name="standardize")(x)
    regularizer = keras.regularizers.L1L2(l1=spec.l1, l2=spec.l2) if spec.l1 or spec.l2 else None
    for i, layer in enumerate(spec.layers, start=1):
        x = hidden_layer(x, i, layer, spec, regularizer)
    outputs = keras.layers.Dense(
        head.units,
        activation=head.activation,
        kernel_initializer=make_initializer(spec.initializer),
        kernel_regularizer=regularizer,
        name="output",
        dtype="float32",  # mixed precision: the output activation and the loss stay float32
    )(x)
    return keras.Model(inputs, outputs, name=config.name)


def hidden_layer(x: keras.KerasTensor, i: int, layer: LayerConfig, spec: ModelConfig,
                 regularizer: keras.regularizers.Regularizer | None) -> keras.KerasTensor:
    """Hidden layer `i`: Dense, then (with batch_norm) BatchNormalization and the activation
    as a layer of its own, then dropout.

    Batch normalization comes between the Dense layer and its activation, as in Ioffe and
    Szegedy (2015); the Dense layer then has no bias, since the normalization's beta is one.
    """
    import keras

    activation = layer.activation or spec.activation
    batch_norm = spec.batch_norm if layer.batch_norm is None else layer.batch_norm
    x = keras.layers.Dense(
        layer.units,
        activation="linear" if batch_norm else activation,
        use_bias=not batch_norm,
        kernel_initializer=make_initializer(layer.initializer or spec.initializer),
        kernel_regularizer=regularizer,
        name=f"hidden_{i}",
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        x = keras.layers.Activation(activation, name=f"activation_{i}")(x)
    rate = spec.dropout if layer.dropout is None else layer.dropout
    if rate > 0:
        x = keras.layers.Dropout(rate, name=f"dropout_{i}")(x)
    return x


# The one-hot layer of feature `i` (in `splits.feature_names` order); `predict` reads its vocabulary.
CATEGORY_LAYER = "categories_{}"
# Layer names of the model that a column name must not take (Keras needs unique names).
_TAKEN_NAME = re.compile(r"^(standardize|numeric|features|output|target_units"
                         r"|(hidden|dropout|batch_norm|activation|categories|feature)_\d+)$")
# Inputs are keyed by column name; a column whose name Keras cannot use gets a stand-in
# name, and Keras would warn about that at every build and load though the keys match.
warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")


def table_inputs(splits: Splits, standardize: bool) -> tuple[dict[str, keras.KerasTensor], keras.KerasTensor]:
    """One input per column of a table with string columns, so the model takes raw rows.

    Numeric columns are concatenated (and standardized on the training rows); each string
    column is one-hot encoded over the categories of its training rows. Categories never
    seen in training share one extra slot, so validation and test rows still score.

    Returns:
        `(inputs, features)`: a dict of `keras.Input` keyed by column name, and the
        concatenated feature tensor.
    """
    import keras

    inputs: dict[str, keras.KerasTensor] = {}
    numeric, encoded = [], []
    for i, name in enumerate(splits.feature_names):
        if name in splits.categorical:
            inputs[name] = keras.Input(shape=(1,), dtype="string", name=_input_name(i, name))
            vocabulary = [str(v) for v in np.unique(splits.x_train[name])]
            lookup = keras.layers.StringLookup(vocabulary=vocabulary, output_mode="one_hot",
                                               name=CATEGORY_LAYER.format(i))
            encoded.append(lookup(inputs[name]))
        else:
            inputs[name] = keras.Input(shape=(1,), name=_input_name(i, name))
            numeric.append(inputs[name])
    if numeric:
        x = numeric[0] if len(numeric) == 1 else keras.layers.Concatenate(name="numeric")(numeric)
        if standardize:
            values = np.concatenate([splits.x_train[n] for n in splits.feature_names
                                     if n not in splits.categorical], axis=1)
            variance = values.var(axis=0)
            x = keras.layers.Normalization(mean=values.mean(axis=0), name="standardize",
                                           variance=np.where(variance > 0, variance, 1.0))(x)
        encoded.insert(0, x)
    features = encoded[0] if len(encoded) == 1 else keras.layers.Concatenate(name="features")(encoded)
    return inputs, features


def _input_name(i: int, column: str) -> str:
    # The column's own name reads best in summaries and exported signatures.
    return f"feature_{i}" if "/" in column or _TAKEN_NAME.match(column) else column


def make_initializer(spec: InitializerConfig) -> keras.initializers.Initializer:
    """A fresh Keras initializer (drawing from the global seed set by the trainer)."""
    import keras

    params = {k: v for k, v in spec.model_dump(exclude={"name"}).items() if v is not None}
    if spec.name == "random_uniform":
        params.setdefault("minval", -0.05)
        params.setdefault("maxval", 0.05)
        if params["minval"] >= params["maxval"]:
            raise ConfigError("minval must be below maxval", key="model.initializer.minval")
    return keras.initializers.get({"class_name": _class_name(spec.name), "config": params})


def _class_name(name: str) -> str:
    return {"glorot_uniform": "GlorotUniform", "glorot_normal": "GlorotNormal",
            "he_uniform": "HeUniform", "he_normal": "HeNormal",
            "lecun_uniform": "LecunUniform", "lecun_normal": "LecunNormal",
            "random_normal": "RandomNormal", "random_uniform": "RandomUniform",
            "truncated_normal": "TruncatedNormal", "orthogonal": "Orthogonal",
            "zeros": "Zeros", "ones": "Ones"}[name]


def make_optimizer(config: Config, steps_per_epoch: int = 1) -> keras.optimizers.Optimizer:
    """The configured Keras optimizer, with its learning-rate schedule and gradient clipping.

    Args:
        config: the validated config (its `training` section).
        steps_per_epoch: mini-batches per epoch; step-wise schedules count in steps.
    """
    import keras

    training = config.training
    o = keras.optimizers
    lr = make_schedule(config, steps_per_epoch)
    clip = {k: v for k in ("clipnorm", "clipvalue") if (v := getattr(training, k)) is not None}
    if training.optimizer == "sgd":
        return o.SGD(learning_rate=lr, momentum=training.momentum, **clip)
    classes = {"adam": o.Adam, "adamw": o.AdamW, "nadam": o.Nadam, "rmsprop": o.RMSprop,
               "adagrad": o.Adagrad, "adadelta": o.Adadelta, "adamax": o.Adamax}
    return classes[training.optimizer](learning_rate=lr, **clip)


def make_schedule(config: Config,
                  steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """`training.learning_rate` as the optimizer takes it: a number, or a Keras schedule object.

    `exponential` and `cosine` are Keras' ExponentialDecay and CosineDecay, counted in
    mini-batch steps (`decay_steps = decay_epochs * steps_per_epoch`); the cosine warmup
    rises linearly from 0 to the learning rate, as CosineDecay's does from its initial rate.
    `constant` and `reduce_on_plateau` (a callback lowers the rate) give the number.
    """
    import keras

    training = config.training
    schedule, lr = training.lr_schedule, training.learning_rate
    steps = max(1, steps_per_epoch)
    if schedule.name == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            lr, decay_steps=schedule.setting("decay_epochs") * steps,
            decay_rate=schedule.setting("decay_rate"))
    if schedule.name == "cosine":
        warmup = schedule.setting("warmup_epochs")
        decay = schedule.setting("decay_epochs") or max(training.epochs - warmup, 1)
        decay_steps = max(1, round(decay * steps))  # a fraction of an epoch: at least a step
        alpha = schedule.setting("min_lr") / lr
        if not warmup:
            return keras.optimizers.schedules.CosineDecay(lr, decay_steps=decay_steps,
                                                          alpha=alpha)
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=decay_steps, alpha=alpha, warmup_target=lr,
            warmup_steps=round(warmup * steps))
    return lr


def parameter_count(model: keras.Model) -> int:
    """Trainable parameters: (inputs + 1) x units per Dense layer, as the lecture counts."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


# Bytes a trainable weight costs while training: the value, its gradient and an adaptive
# optimizer's two moments, each a float32.
BYTES_PER_WEIGHT = 16


def input_width(splits: Splits) -> int:
    """Numbers the first Dense layer sees: numeric columns plus one-hot slots (with the unseen one)."""
    if not splits.categorical:
        return int(splits.x_train.shape[1])
    return sum(len(np.unique(splits.x_train[name])) + 1 if name in splits.categorical else 1
               for name in splits.feature_names)


def weight_count(config: Config, n_inputs: int, head: Head) -> int:
    """Trainable weights the config's network will have, counted without building it."""
    total, width, spec = 0, n_inputs, config.model
    for layer in spec.layers:
        batch_norm = spec.batch_norm if layer.batch_norm is None else layer.batch_norm
        # With batch norm: no bias, but a trainable scale and shift per unit.
        total += (width + (2 if batch_norm else 1)) * layer.units
        width = layer.units
    return total + (width + 1) * head.units


def check_memory(n_weights: int, available: int | None = None) -> None:
    """Refuse a network whose training state cannot fit in the memory there is.

    Args:
        n_weights: from `weight_count`.
        available: bytes; default `$DLRECAP_MEMORY_BYTES`, else the system's available memory.

    Raises:
        ConfigError: at `model.layers`, with the numbers.
    """
    available = available if available is not None else available_memory()
    needed = n_weights * BYTES_PER_WEIGHT
    if available is None or needed <= available:
        return
    raise ConfigError(
        f"about {_count(n_weights)} weights need {needed / 1e9:.3g} GB to train, "
        f"but {available / 1e9:.3g} GB are available",
        key="model.layers", fix="use fewer or narrower layers",
    )


def available_memory() -> int | None:
    """`$DLRECAP_MEMORY_BYTES`, else MemAvailable from /proc/meminfo (None where unknown)."""
    import os

    if override := os.environ.get("DLRECAP_MEMORY_BYTES"):
        return int(override)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _count(n: int) -> str:
    for size, word in ((10**9, "billion"), (10**6, "million")):
        if n >= size:
            return f"{n / size:.2g} {word}"
    return f"{n:,}"
