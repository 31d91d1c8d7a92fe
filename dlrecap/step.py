"""`dlrecap step`: one mini-batch of the configured network, worked out in the open.

The forward pass, the loss, backpropagation and the optimizer's update are computed here
explicitly in NumPy float32, layer by layer, in the order Keras computes them, so that
every number shown equals what TensorFlow's GradientTape and the Keras optimizer give.
Keras only builds the model, so the starting weights are the ones training starts from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dlrecap.errors import ConfigError, DataError

if TYPE_CHECKING:
    from rich.columns import Columns
    from rich.console import Console
    from rich.table import Table

    from dlrecap.config.load import LoadedConfig

F32 = np.float32
Array = np.ndarray


EPSILON = F32(1e-7)  # Keras' backend epsilon: Normalization's floor under sqrt(variance)


def _empty() -> Array:
    """A value not computed yet (the dataclasses' fields filled in by the step's passes)."""
    return np.zeros(0, F32)


def _sigmoid(z: Array) -> Array:
    return F32(1) / (F32(1) + np.exp(-z))


def _erf(z: Array) -> Array:
    from scipy.special import erf

    return erf(z).astype(F32)


# Each activation f and its derivative f'(z, f(z)), both float32 and elementwise.
ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array, Array], Array]]] = {
    "linear": (lambda z: z, lambda z, a: np.ones_like(z)),
    "sigmoid": (_sigmoid, lambda z, a: a * (F32(1) - a)),
    "tanh": (np.tanh, lambda z, a: F32(1) - a * a),
    "relu": (lambda z: np.maximum(z, F32(0)), lambda z, a: (z > 0).astype(F32)),
    "leaky_relu": (lambda z: np.where(z > 0, z, F32(0.2) * z),
                   lambda z, a: np.where(z > 0, F32(1), F32(0.2))),
    "elu": (lambda z: np.where(z > 0, z, np.expm1(z)), lambda z, a: np.where(z > 0, F32(1), a + 1)),
    "swish": (lambda z: z * _sigmoid(z),
              lambda z, a: _sigmoid(z) * (F32(1) + z * (F32(1) - _sigmoid(z)))),
    "softplus": (lambda z: np.logaddexp(F32(0), z), lambda z, a: _sigmoid(z)),
    "softsign": (lambda z: z / (F32(1) + np.abs(z)), lambda z, a: F32(1) / (F32(1) + np.abs(z)) ** 2),
    "gelu": (lambda z: F32(0.5) * z * (F32(1) + _erf(z / np.sqrt(F32(2)))),
             lambda z, a: F32(0.5) * (F32(1) + _erf(z / np.sqrt(F32(2))))
             + z * np.exp(-F32(0.5) * z * z) / np.sqrt(F32(2 * np.pi))),
    "exponential": (np.exp, lambda z, a: a),
}
ACTIVATIONS["silu"] = ACTIVATIONS["swish"]
# tf.nn.selu's constants
SELU_ALPHA, SELU_SCALE = F32(1.6732632423543772), F32(1.0507009873554805)
ACTIVATIONS.update({
    "selu": (lambda z: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(z)),
             lambda z, a: SELU_SCALE * np.where(z > 0, F32(1), SELU_ALPHA * np.exp(z))),
    "relu6": (lambda z: np.clip(z, F32(0), F32(6)), lambda z, a: ((z > 0) & (z < 6)).astype(F32)),
    "hard_sigmoid": (lambda z: np.clip(z + F32(3), F32(0), F32(6)) / F32(6),
                     lambda z, a: ((z > -3) & (z < 3)).astype(F32) / F32(6)),
    "mish": (lambda z: z * np.tanh(np.logaddexp(F32(0), z)),
             lambda z, a: np.tanh(np.logaddexp(F32(0), z))
             + z * (F32(1) - np.tanh(np.logaddexp(F32(0), z)) ** 2) * _sigmoid(z)),
})
LOSSES = ("binary_crossentropy", "sparse_categorical_crossentropy", "categorical_crossentropy",
          "mse", "mae")
OPTIMIZERS = ("sgd", "adam")
# Keras' Adam defaults, which dlrecap does not change.
BETA_1, BETA_2, ADAM_EPSILON = F32(0.9), F32(0.999), F32(1e-7)


@dataclass
class Layer:
    """One Dense layer's numbers in the step.

    Args:
        name: the Keras layer name (hidden_1 ... output).
        activation: its activation's name.
        w, b: the weights before the step: kernel (inputs, units) and bias (units,).
        rate: the dropout after it (0: none, or dropout off in this step).
        mask: the dropout mask drawn for this batch (1 keeps a unit), when dropout is on.
        bn: its batch normalization, between the weighted sum and the activation (then the
            layer has no bias: `b` is empty).
    """

    name: str
    activation: str
    w: Array
    b: Array
    rate: float = 0.0
    mask: Array | None = None
    z: Array = field(default_factory=_empty)
    a: Array = field(default_factory=_empty)
    delta: Array = field(default_factory=_empty)
    grad_w: Array = field(default_factory=_empty)
    grad_b: Array = field(default_factory=_empty)
    new_w: Array = field(default_factory=_empty)
    new_b: Array = field(default_factory=_empty)
    slots: dict[str, tuple[Array, Array]] = field(default_factory=dict)
    bn: BatchNorm | None = None

    @property
    def pre(self) -> Array:
        """What the activation is applied to: z, or the batch normalization's y."""
        return self.z if self.bn is None else self.bn.y

    @property
    def out(self) -> Array:
        """What the next layer sees: `a`, times mask / (1 - rate) when dropout is on."""
        if self.mask is None:
            return self.a
        return self.a * (F32(1) / F32(1 - self.rate)) * self.mask


@dataclass
class BatchNorm:
    """One BatchNormalization layer in training mode: it normalizes with the batch's statistics.

    Args:
        gamma, beta: its scale and offset before the step.
        moving_mean, moving_var: its moving statistics before the step.
        epsilon, momentum: the layer's own (Keras' defaults: 1e-3 and 0.99).
    """

    name: str
    gamma: Array
    beta: Array
    moving_mean: Array
    moving_var: Array
    epsilon: float
    momentum: float
    mu: Array = field(default_factory=_empty)
    var: Array = field(default_factory=_empty)
    x_hat: Array = field(default_factory=_empty)
    y: Array = field(default_factory=_empty)
    grad_gamma: Array = field(default_factory=_empty)
    grad_beta: Array = field(default_factory=_empty)
    new_gamma: Array = field(default_factory=_empty)
    new_beta: Array = field(default_factory=_empty)
    new_moving_mean: Array = field(default_factory=_empty)
    new_moving_var: Array = field(default_factory=_empty)
    grad_z: Array = field(default_factory=_empty)

    def forward(self, z: Array) -> None:
        """mu, var (biased) over the batch, x̂ = (z - mu) / sqrt(var + eps), y = gamma x̂ + beta."""
        self.mu = z.mean(axis=0, dtype=F32)
        self.var = np.square(z - self.mu).mean(axis=0, dtype=F32)
        self.x_hat = ((z - self.mu) / np.sqrt(self.var + F32(self.epsilon))).astype(F32)
        self.y = (self.gamma * self.x_hat + self.beta).astype(F32)
        m = F32(self.momentum)
        self.new_moving_mean = (self.moving_mean * m + self.mu * (F32(1) - m)).astype(F32)
        self.new_moving_var = (self.moving_var * m + self.var * (F32(1) - m)).astype(F32)

    def backward(self, grad_y: Array) -> Array:
        """dJ/dgamma, dJ/dbeta, and dJ/dz through the batch's mean and variance."""
        self.grad_gamma = (grad_y * self.x_hat).sum(axis=0, dtype=F32)
        self.grad_beta = grad_y.sum(axis=0, dtype=F32)
        g = (grad_y * self.gamma).astype(F32)
        n = F32(len(g))
        scale = F32(1) / (n * np.sqrt(self.var + F32(self.epsilon)))
        self.grad_z = (scale * (n * g - g.sum(axis=0, dtype=F32)
                                - self.x_hat * (g * self.x_hat).sum(axis=0, dtype=F32))).astype(F32)
        return self.grad_z


@dataclass(frozen=True)
class Optimizer:
    """The update rule: `name` sgd (with `momentum`) or adam, and its learning rate."""

    name: str
    lr: float
    momentum: float = 0.0


@dataclass
class Step:
    """Everything `dlrecap step` shows, in the order it is computed."""

    x_raw: Array
    x: Array
    y: Array
    target: Array
    layers: list[Layer]
    loss: str
    l1: float
    l2: float
    optimizer: Optimizer
    rows: Array
    samples: Array = field(default_factory=_empty)
    data_loss: F32 = F32(0)
    penalty: F32 = F32(0)
    lr_t: F32 | None = None
    standardized: bool = False  # x̂ = (x - mean) / std, else x̂ = x
    target_scaled: bool = False  # regression targets as (y - mean) / std

    @property
    def total_loss(self) -> F32:
        return F32(self.data_loss + self.penalty)


def forward(step: Step) -> None:
    """z = a_prev W + b and a = f(z), layer by layer (dropout masks applied when drawn).

    With batch normalization, z = a_prev W and a = f(y) of the normalized y.
    """
    a = step.x
    for layer in step.layers:
        layer.z = (a @ layer.w + layer.b if layer.b.size else a @ layer.w).astype(F32)
        if layer.bn is not None:
            layer.bn.forward(layer.z)
        layer.a = _activate(layer.activation, layer.pre)
        a = layer.out


def _activate(name: str, z: Array) -> Array:
    if name == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(F32)
    return ACTIVATIONS[name][0](z).astype(F32)


def loss_and_delta(step: Step) -> None:
    """The loss J and dJ/dz of the output layer, as Keras computes them.

    Cross-entropy after a sigmoid or softmax is computed from the logits z, as Keras does
    for those outputs, so dJ/dz = (p - t) / n exactly.
    """
    out = step.layers[-1]
    z, p, t = out.z, out.a, step.target
    n = F32(len(z))
    if step.loss == "binary_crossentropy":
        per = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        step.samples = per.mean(axis=1, dtype=F32)
        out.delta = ((p - t) / n).astype(F32)
    elif step.loss.endswith("categorical_crossentropy"):
        shifted = z - z.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        step.samples = -(t * log_p).sum(axis=1, dtype=F32)
        out.delta = ((p - t) / n).astype(F32)
    else:
        diff = p - t
        units = F32(diff.shape[1])
        per = diff * diff if step.loss == "mse" else np.abs(diff)
        step.samples = per.mean(axis=1, dtype=F32)
        grad_p = F32(2) * diff if step.loss == "mse" else np.sign(diff)
        out.delta = _through_activation(out, (grad_p / (units * n)).astype(F32))
    step.data_loss = F32(step.samples.sum(dtype=F32) / n)
    step.penalty = F32(sum((F32(step.l1) * np.abs(layer.w).sum(dtype=F32)
                            + F32(step.l2) * (layer.w * layer.w).sum(dtype=F32))
                           for layer in step.layers))


def _through_activation(layer: Layer, grad_a: Array) -> Array:
    """dJ/dz (dJ/dy under batch normalization) from dJ/da: times f'(z); softmax mixes its
    units: p * (g - sum(g * p))."""
    if layer.activation == "softmax":
        p = layer.a
        return (p * (grad_a - (grad_a * p).sum(axis=1, keepdims=True))).astype(F32)
    return (grad_a * ACTIVATIONS[layer.activation][1](layer.pre, layer.a)).astype(F32)


def backward(step: Step) -> None:
    """dJ/dW = a_prev^T delta (+ the penalty's gradient), dJ/db = sum of delta over rows.

    Under batch normalization delta is dJ/dy, and dJ/dz comes through the batch statistics.
    """
    for i in range(len(step.layers) - 1, -1, -1):
        layer = step.layers[i]
        a_prev = step.x if i == 0 else step.layers[i - 1].out
        delta = layer.delta if layer.bn is None else layer.bn.backward(layer.delta)
        layer.grad_w = (a_prev.T @ delta).astype(F32)
        if step.l2:
            layer.grad_w = (layer.grad_w + F32(2 * step.l2) * layer.w).astype(F32)
        if step.l1:
            layer.grad_w = (layer.grad_w + F32(step.l1) * np.sign(layer.w)).astype(F32)
        layer.grad_b = delta.sum(axis=0, dtype=F32)[:layer.b.size]
        if i > 0:
            below = step.layers[i - 1]
            grad_out = (delta @ layer.w.T).astype(F32)
            if below.mask is not None:
                grad_out = grad_out * (F32(1) / F32(1 - below.rate)) * below.mask
            below.delta = _through_activation(below, grad_out)


def update(step: Step) -> None:
    """The optimizer's first step, in Keras' own arithmetic."""
    opt = step.optimizer
    lr = F32(opt.lr)
    if opt.name == "adam":
        # t = 1: bias corrections folded into the step size, epsilon added to sqrt(v).
        step.lr_t = F32(lr * np.sqrt(F32(1) - BETA_2) / (F32(1) - BETA_1))
    for layer in step.layers:
        pairs = []
        for value, grad in ((layer.w, layer.grad_w), (layer.b, layer.grad_b)):
            pairs.append(_update_one(opt, lr, step.lr_t, value, grad))
        (layer.new_w, slots_w), (layer.new_b, slots_b) = pairs
        layer.slots = {name: (slots_w[name], slots_b[name]) for name in slots_w}
        if layer.bn is not None:
            bn = layer.bn
            bn.new_gamma = _update_one(opt, lr, step.lr_t, bn.gamma, bn.grad_gamma)[0]
            bn.new_beta = _update_one(opt, lr, step.lr_t, bn.beta, bn.grad_beta)[0]


def _update_one(opt: Optimizer, lr: F32, lr_t: F32 | None, value: Array,
                grad: Array) -> tuple[Array, dict[str, Array]]:
    if opt.name == "adam":
        assert lr_t is not None
        m = (grad - F32(0)) * (F32(1) - BETA_1)
        v = (grad * grad - F32(0)) * (F32(1) - BETA_2)
        new = value - (m * lr_t) / (np.sqrt(v) + ADAM_EPSILON)
        return new.astype(F32), {"m": m.astype(F32), "v": v.astype(F32)}
    if opt.momentum:
        velocity = (F32(0) * F32(opt.momentum) - grad * lr).astype(F32)
        return (value + velocity).astype(F32), {"velocity": velocity}
    return (value - grad * lr).astype(F32), {}


def run_step(step: Step) -> Step:
    """Forward, loss, backward and update, in place; returns `step`."""
    forward(step)
    loss_and_delta(step)
    backward(step)
    update(step)
    return step


# ------------------------------------------------------------------ from a config


def check_supported(loaded: LoadedConfig) -> None:
    """Refuse, naming the key, what the step cannot show exactly (before TensorFlow loads)."""
    config = loaded.config
    training, model = config.training, config.model

    def refuse(message: str, key: str, fix: str) -> None:
        raise loaded.locate(ConfigError(message, key=key, fix=fix))

    if training.optimizer not in OPTIMIZERS:
        refuse(f"step shows sgd (with momentum) and adam, not {training.optimizer}",
               "training.optimizer", "use --set training.optimizer=adam or sgd")
    if training.precision != "float32":
        refuse(f"step computes in float32, not {training.precision}", "training.precision",
               "use --set training.precision=float32")
    for i, layer in enumerate(model.layers):
        name = layer.activation or model.activation
        if name not in ACTIVATIONS:
            key = f"model.layers[{i}].activation" if layer.activation else "model.activation"
            refuse(f"step does not show the activation {name}", key,
                   "one of: " + ", ".join(ACTIVATIONS))
    if model.output_activation not in ("auto", "softmax", *ACTIVATIONS):
        refuse(f"step does not show the output activation {model.output_activation}",
               "model.output_activation", "use auto")
    _refuse_newer_settings(config, refuse)


def _refuse_newer_settings(config, refuse: Callable[[str, str, str], None]) -> None:
    """Settings of newer configs the step does not show: read with getattr, absent is fine."""
    training = config.training
    schedule = getattr(training, "lr_schedule", None)
    if getattr(schedule, "name", "constant") not in ("constant", "reduce_on_plateau"):
        refuse("step shows a constant learning rate, not a schedule", "training.lr_schedule",
               "use --set training.lr_schedule=constant")
    for key in ("clipnorm", "clipvalue"):
        if getattr(training, key, None) is not None:
            refuse("step does not show gradient clipping", f"training.{key}",
                   f"use --set training.{key}=null")
    if getattr(training, "class_weight", None) is not None:
        refuse("step shows the unweighted loss, not class weights", "training.class_weight",
               "use --set training.class_weight=null")


def _check_head(loaded: LoadedConfig, loss: str, activation: str) -> None:
    key = "training.loss"
    if loss not in LOSSES:
        raise loaded.locate(ConfigError(f"step does not show the loss {loss}", key=key,
                                        fix="one of: " + ", ".join(LOSSES)))
    logits = {"binary_crossentropy": "sigmoid", "sparse_categorical_crossentropy": "softmax",
              "categorical_crossentropy": "softmax"}
    if loss in logits and activation != logits[loss]:
        raise loaded.locate(ConfigError(
            f"step shows {loss} after a {logits[loss]} output, not after {activation}",
            key="model.output_activation", fix="use auto"))


def from_config(loaded: LoadedConfig, batch: int | None, seed: int | None,
                dropout: bool) -> Step:
    """The step of `loaded`'s network on one seeded mini-batch of its training rows.

    Args:
        batch: rows in the batch (default: training.batch_size, at most the training rows).
        seed: seeds the weights, the rows and the dropout masks (default: the config's seed,
            which gives the weights training starts from).
        dropout: apply the configured dropout with a drawn mask; off, dropout is skipped.
    """
    from dlrecap.model import encode_targets, target_scale
    from dlrecap.pipeline import load_data

    check_supported(loaded)
    config = loaded.config
    seed = config.seed if seed is None else seed
    splits, head = load_data(loaded)
    if splits.categorical:
        raise DataError("step shows numeric features only; this data has text columns: "
                        + ", ".join(splits.categorical))
    _check_head(loaded, head.loss, head.activation)
    n_train = len(splits.y_train)
    size = min(batch or config.training.batch_size, n_train)
    rows = np.sort(np.random.default_rng(seed).permutation(n_train)[:size])
    x_raw = np.asarray(splits.x_train, F32)[rows]
    y_raw = splits.y_train[rows]
    scale = target_scale(config, splits)
    encoded = encode_targets(y_raw, head, scale)
    target = np.eye(head.units, dtype=F32)[encoded] if encoded.ndim == 1 else encoded
    weights, mean, std = keras_weights(config, splits, head, seed)
    x = ((x_raw - mean) / std).astype(F32) if mean is not None else x_raw
    layers = _layers(config, head.activation, weights, dropout, seed, size)
    opt = Optimizer(config.training.optimizer, config.training.learning_rate,
                    config.training.momentum)
    step = Step(x_raw, x, y_raw, target.astype(F32), layers, head.loss, config.model.l1,
                config.model.l2, opt, rows, standardized=mean is not None,
                target_scaled=scale is not None)
    return run_step(step)


def _layers(config, output_activation: str, weights: list[Dense], dropout: bool, seed: int,
            size: int) -> list[Layer]:
    spec = config.model
    rng = np.random.default_rng([seed, 7])
    layers = []
    for i, (name, w, b, bn) in enumerate(weights):
        hidden = i < len(spec.layers)
        activation = (spec.layers[i].activation or spec.activation) if hidden else output_activation
        rate = 0.0
        if hidden:
            rate = spec.dropout if spec.layers[i].dropout is None else spec.layers[i].dropout
        mask = None
        if dropout and rate > 0:
            mask = (rng.random((size, w.shape[1])) >= rate).astype(F32)
        layers.append(Layer(name, activation, w, b, rate if mask is not None else 0.0, mask, bn=bn))
    return layers


# One Dense layer's (name, kernel, bias, its batch normalization); the bias is empty under one.
Dense = tuple[str, Array, Array, BatchNorm | None]


def keras_weights(config, splits, head, seed: int
                  ) -> tuple[list[Dense], Array | None, Array | None]:
    """The starting weights of dlrecap's own Keras model, and its standardization.

    Returns:
        `(dense, mean, std)`: `(name, kernel, bias, batch_norm)` per Dense layer in order,
        and the Normalization layer's mean and max(sqrt(variance), epsilon) (None without one).
    """
    model = seeded_model(config, splits, head, seed)
    dense: list[Dense] = []
    mean, std = None, None
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            kernel, *bias = (np.asarray(v, F32) for v in layer.get_weights())
            dense.append((layer.name, kernel, bias[0] if bias else np.zeros(0, F32), None))
        elif kind == "BatchNormalization":
            dense[-1] = (*dense[-1][:3], _batch_norm(layer))
        elif kind == "Normalization":
            mean = np.asarray(layer.mean, F32).reshape(-1)
            std = np.maximum(np.sqrt(np.asarray(layer.variance, F32).reshape(-1)), EPSILON)
        elif kind not in ("InputLayer", "Dropout", "Activation"):
            raise ConfigError(f"step shows Dense networks only, not the {kind} layer {layer.name}",
                              key="model")
    return dense, mean, std


def _batch_norm(layer) -> BatchNorm:
    """A Keras BatchNormalization layer's weights and settings."""
    weights = {name: np.asarray(getattr(layer, name), F32)
               for name in ("gamma", "beta", "moving_mean", "moving_variance")}
    return BatchNorm(layer.name, weights["gamma"], weights["beta"], weights["moving_mean"],
                     weights["moving_variance"], float(layer.epsilon), float(layer.momentum))


def seeded_model(config, splits, head, seed: int):
    """dlrecap's own model, built on the CPU after seeding every random source with `seed`."""
    from dlrecap.train.device import setup_tensorflow

    setup_tensorflow("auto", False, seed)
    import tensorflow as tf

    from dlrecap.model import build_model

    with tf.device("/CPU:0"):  # GPUs multiply in TF32 by default: not float32's digits
        return build_model(config, splits, head)


# ------------------------------------------------------------------ rendering

SHOW = 6  # rows and columns of a matrix shown; the rest is summarized as "…"


def matrix(title: str, values: Array, row_names: list[str] | None = None) -> Table:
    """A small table of `values` (a vector is one row), cut to SHOW rows and columns."""
    from rich.table import Table

    grid = np.atleast_2d(values)
    rows, cols = grid.shape
    shape = "x".join(str(s) for s in values.shape)
    caption = f"{title}  ({shape})"
    table = Table(title=caption, title_justify="left", show_header=False, min_width=len(caption),
                  box=None, pad_edge=False)
    shown_cols = min(cols, SHOW)
    for _ in range(shown_cols + (row_names is not None) + (cols > SHOW)):
        table.add_column(justify="right")
    for i in range(min(rows, SHOW)):
        # + 0.0 turns -0.0 into 0.0: a "-0" would puzzle more than it tells.
        cells = [f"{v + 0.0:.4g}" for v in grid[i, :shown_cols]] + (["…"] if cols > SHOW else [])
        table.add_row(*([row_names[i]] if row_names else []), *cells)
    if rows > SHOW:
        table.add_row(*(["…"] * (shown_cols + (row_names is not None) + (cols > SHOW))))
    return table


def _side_by_side(tables: list[Table]) -> Columns:
    from rich.columns import Columns

    return Columns(tables, padding=(0, 4))


def show(step: Step, out: Console) -> None:
    """Print the step: inputs, forward pass, loss, backpropagation and update."""
    out.rule("inputs")
    notes = [f"{len(step.rows)} training rows (shown: the first {min(SHOW, len(step.rows))})",
             "x̂ = (x - mean) / std with the training rows' mean and std" if step.standardized
             else "x̂ = x (data.standardize is off)"]
    if step.target_scaled:
        notes.append("t = (y - mean) / std of the training targets")
    out.print("; ".join(notes), markup=False)
    inputs = [matrix("x", step.x_raw)] + ([matrix("x̂", step.x)] if step.standardized else [])
    out.print(_side_by_side([*inputs, matrix("target t", step.target)]))
    out.rule("forward: z = a_prev W + b, a = f(z)")
    for i, layer in enumerate(step.layers):
        _show_forward(layer, i + 1, out)
    _show_loss(step, out)
    out.rule("backward: the chain rule, layer by layer")
    for i in range(len(step.layers) - 1, -1, -1):
        _show_backward(step, i, out)
    _show_update(step, out)


def _show_forward(layer: Layer, k: int, out: Console) -> None:
    prev = "x̂" if k == 1 else f"a{k - 1}"
    bn = layer.bn
    if bn is None:
        out.print(f"layer {k} ({layer.name}): z{k} = {prev} W{k} + b{k}, "
                  f"a{k} = {layer.activation}(z{k})", markup=False)
        tables = [matrix(f"W{k}", layer.w), matrix(f"b{k}", layer.b), matrix(f"z{k}", layer.z)]
    else:
        out.print(f"layer {k} ({layer.name}, {bn.name}): z{k} = {prev} W{k} (no bias); "
                  f"batch normalization with this batch's statistics: μ{k} = mean of z{k} over rows, "
                  f"σ²{k} = mean of (z{k} - μ{k})², ẑ{k} = (z{k} - μ{k}) / sqrt(σ²{k} + {bn.epsilon:g}), "
                  f"y{k} = γ{k} ẑ{k} + β{k}; a{k} = {layer.activation}(y{k})", markup=False)
        tables = [matrix(f"W{k}", layer.w), matrix(f"z{k}", layer.z), matrix(f"μ{k}", bn.mu),
                  matrix(f"σ²{k}", bn.var), matrix(f"ẑ{k}", bn.x_hat), matrix(f"γ{k}", bn.gamma),
                  matrix(f"β{k}", bn.beta), matrix(f"y{k}", bn.y)]
    tables.append(matrix(f"a{k}", layer.a))
    if layer.mask is not None:
        out.print(f"  dropout {layer.rate:g}: a{k} <- a{k} * mask / (1 - {layer.rate:g})",
                  markup=False)
        tables.append(matrix("mask", layer.mask))
    out.print(_side_by_side(tables))


def _show_backward(step: Step, i: int, out: Console) -> None:
    layer, k = step.layers[i], i + 1
    prev = "x̂" if i == 0 else f"a{i}"
    bn = layer.bn
    pre = "z" if bn is None else "y"
    if k == len(step.layers):
        how = f"δ{k} = dJ/dz{k}" + (" = (p - t) / n" if "crossentropy" in step.loss else "")
    else:
        above = f"δ{k + 1}" if step.layers[i + 1].bn is None else f"dJ/dz{k + 1}"
        how = f"δ{k} = dJ/d{pre}{k} = ({above} W{k + 1}ᵀ) ⊙ f'({pre}{k})" + (
            " ⊙ mask / (1 - rate)" if layer.mask is not None else "")
    penalty = _penalty_text(step, k)
    if bn is None:
        out.print(f"layer {k}: {how};  dJ/dW{k} = {prev}ᵀ δ{k}{penalty};  dJ/db{k} = Σ rows δ{k}",
                  markup=False)
        out.print(_side_by_side([matrix(f"δ{k}", layer.delta), matrix(f"dJ/dW{k}", layer.grad_w),
                                 matrix(f"dJ/db{k}", layer.grad_b)]))
        return
    out.print(f"layer {k}: {how};  dJ/dγ{k} = Σ rows δ{k} ⊙ ẑ{k};  dJ/dβ{k} = Σ rows δ{k};  "
              f"through the batch statistics, with g = δ{k} γ{k} and n rows: dJ/dz{k} = "
              f"(n g - Σ rows g - ẑ{k} Σ rows (g ⊙ ẑ{k})) / (n sqrt(σ²{k} + {bn.epsilon:g}));  "
              f"dJ/dW{k} = {prev}ᵀ dJ/dz{k}{penalty}", markup=False)
    out.print(_side_by_side([matrix(f"δ{k}", layer.delta), matrix(f"dJ/dγ{k}", bn.grad_gamma),
                             matrix(f"dJ/dβ{k}", bn.grad_beta), matrix(f"dJ/dz{k}", bn.grad_z),
                             matrix(f"dJ/dW{k}", layer.grad_w)]))


def _show_update(step: Step, out: Console) -> None:
    opt = step.optimizer
    out.rule(f"update: {_rule_text(step)}")
    if step.lr_t is not None:
        out.print(f"lr_t = lr * sqrt(1 - β2^t) / (1 - β1^t) = {opt.lr:g} * sqrt(1 - 0.999) / "
                  f"(1 - 0.9) = {step.lr_t:.6g}   (t = 1, m and v start at 0, ε = 1e-7)",
                  markup=False)
    for i, layer in enumerate(step.layers):
        k, bn = i + 1, layer.bn
        slots = [matrix(f"{name}(W{k})", w) for name, (w, _) in layer.slots.items()]
        tables = [*slots, matrix(f"W{k} new", layer.new_w)]
        if bn is None:
            tables.append(matrix(f"b{k} new", layer.new_b))
        else:
            tables += [matrix(f"γ{k} new", bn.new_gamma), matrix(f"β{k} new", bn.new_beta)]
        out.print(_side_by_side(tables))
    for i, layer in enumerate(step.layers):
        if layer.bn is not None:
            _show_moving(layer.bn, i + 1, out)


def _show_moving(bn: BatchNorm, k: int, out: Console) -> None:
    m = f"{bn.momentum:g}"
    rest = f"{1 - bn.momentum:.6g}"
    out.print(f"{bn.name} (not trained, used at prediction): moving_mean <- {m} moving_mean + {rest} μ{k};  "
              f"moving_variance <- {m} moving_variance + {rest} σ²{k}", markup=False)
    out.print(_side_by_side([matrix(f"moving_mean{k} new", bn.new_moving_mean),
                             matrix(f"moving_variance{k} new", bn.new_moving_var)]))


def _show_loss(step: Step, out: Console) -> None:
    names = {"binary_crossentropy": "-[t log p + (1 - t) log(1 - p)]",
             "sparse_categorical_crossentropy": "-Σ_k t_k log p_k",
             "categorical_crossentropy": "-Σ_k t_k log p_k", "mse": "(p - t)²", "mae": "|p - t|"}
    out.rule(f"loss: {step.loss}")
    out.print(f"J = (1/n) Σ rows {names[step.loss]} = {step.data_loss:.6g}", markup=False)
    if step.l1 or step.l2:
        out.print(f"  + Σ layers (l1 Σ|W| + l2 Σ W²) = {step.penalty:.6g}  "
                  f"(l1 = {step.l1:g}, l2 = {step.l2:g});  J = {step.total_loss:.6g}", markup=False)
    out.print(_side_by_side([matrix("p", step.layers[-1].a), matrix("loss per row", step.samples)]))


def _penalty_text(step: Step, _k: int) -> str:
    return "".join(([f" + 2*{step.l2:g} W"] if step.l2 else [])
                   + ([f" + {step.l1:g} sign(W)"] if step.l1 else []))


def _rule_text(step: Step) -> str:
    opt = step.optimizer
    if opt.name == "adam":
        return ("m = β1 m + (1 - β1) g;  v = β2 v + (1 - β2) g²;  "
                "w <- w - lr_t * m / (sqrt(v) + ε)")
    if opt.momentum:
        return f"velocity = {opt.momentum:g} * velocity - η g;  w <- w + velocity  (η = {opt.lr:g})"
    return f"w <- w - η dJ/dw  (η = {opt.lr:g})"
