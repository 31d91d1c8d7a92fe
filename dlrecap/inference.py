"""Run a saved model.keras with NumPy alone: finished runs are answered without TensorFlow.

model.keras stays the source of truth: this module reads its `config.json` (the layer
graph) and `model.weights.h5` (the weights) and evaluates the graph layer by layer. It
knows the layers dlrecap builds (inputs, standardization, one-hot text columns with their
unknown slot, concatenation, Dense with every supported activation, dropout, batch
normalization in inference mode, the target's rescaling); anything else raises
`Unsupported`, and callers fall back to Keras. Outputs equal Keras' to about 1e-6.

Importing NumPy and h5py costs about 0.4 s, against 3-4 s for TensorFlow.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlrecap.scoring import CLASS_METRICS, class_indices, class_scores

if TYPE_CHECKING:
    from dlrecap.model import Head

Array = np.ndarray
Layer = Callable[[list[Any]], Array]
# Keras' backend epsilon: Normalization divides by at least this, cross-entropy clips by it.
EPSILON = 1e-7


class Unsupported(Exception):
    """The model holds a layer or setting this module does not evaluate: use Keras."""


def _sigmoid(x: Array) -> Array:
    return np.exp(-np.logaddexp(0.0, -x)).astype(x.dtype)


def _softmax(x: Array) -> Array:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _gelu(x: Array) -> Array:
    from scipy.special import erf  # exact GELU, as Keras' default (approximate=False)

    return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(x.dtype)


def _elu(x: Array, alpha: float = 1.0) -> Array:
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda x: x,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
    "elu": _elu,
    "selu": lambda x: _SELU_SCALE * _elu(x, _SELU_ALPHA),
    "gelu": _gelu,
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "hard_sigmoid": lambda x: np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "exponential": np.exp,
    "softmax": _softmax,
}


@dataclass(frozen=True)
class LightModel:
    """A model.keras evaluated with NumPy.

    Args:
        order: `(layer name, function, names of its input layers)` in graph order.
        inputs: the model's input keys (column names) mapped to their input layers'
            names, or a single input layer's name.
        output: the output layer's name.
        kernels: each Dense layer's kernel, for the weight penalty in the loss.
        penalty: the config's `(l1, l2)`.
        vocabularies: per text column, the categories of its one-hot layer.
        dense: the Dense layers' names in graph order (the output layer last); their
            kernels are `kernels`, in the same order.
        activations: each Dense layer's activation name, as `dense`.
    """

    order: list[tuple[str, Layer | None, list[str]]]
    inputs: dict[str, str] | str
    output: str
    kernels: list[Array]
    penalty: tuple[float, float]
    vocabularies: dict[str, list[str]]
    dense: tuple[str, ...] = ()
    activations: tuple[str, ...] = ()

    def __call__(self, x: Array | dict[str, Array]) -> Array:
        """The outputs for rows `x`: a matrix, or a dict of `(rows, 1)` columns."""
        return np.asarray(self.trace(x)[self.output], dtype=np.float32)

    def trace(self, x: Array | dict[str, Array]) -> dict[str, Any]:
        """Every layer's output for rows `x`, by layer name (the neuron pictures read them)."""
        values: dict[str, Any] = {}
        if isinstance(self.inputs, str):
            values[self.inputs] = np.asarray(x, dtype=np.float32)
        else:
            if not isinstance(x, dict):
                raise TypeError("this model takes a dict of columns")
            for key, layer in self.inputs.items():
                column = np.asarray(x[key])
                values[layer] = column if column.dtype == object else column.astype(np.float32)
        with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN come out as Keras' do
            for name, function, sources in self.order:
                if function is not None:
                    values[name] = function([values[s] for s in sources])
        return values

    def weight_penalty(self) -> float:
        """The L1/L2 penalty Keras adds to the loss (hidden and output kernels)."""
        l1, l2 = self.penalty
        return float(sum(l1 * np.abs(k).sum() + l2 * np.square(k).sum() for k in self.kernels))


def load_light(path: Path) -> LightModel:
    """Read model.keras for NumPy evaluation.

    Raises:
        Unsupported: a layer or setting outside what this module evaluates.
        OSError, KeyError, ValueError: an unreadable file (callers fall back to Keras,
            which then names the problem).
    """
    import h5py

    with zipfile.ZipFile(path) as archive:
        spec = json.loads(archive.read("config.json"))
        with archive.open("model.weights.h5") as raw, h5py.File(raw, "r") as weights:
            return _build(spec, weights)


def _build(spec: dict[str, Any], weights: Any) -> LightModel:
    if spec.get("class_name") != "Functional":
        raise Unsupported(f"a {spec.get('class_name')} model")
    graph = spec["config"]
    order: list[tuple[str, Layer | None, list[str]]] = []
    kernels: list[Array] = []
    vocabularies: dict[str, list[str]] = {}
    penalty = (0.0, 0.0)
    dense: list[tuple[str, str]] = []
    used: dict[str, int] = {}
    for layer in graph["layers"]:
        kind, config = layer["class_name"], layer["config"]
        stored = _stored_name(kind, used)
        variables = [np.asarray(weights[f"layers/{stored}/vars/{i}"])
                     for i in range(len(weights.get(f"layers/{stored}/vars", {})))]
        if kind == "InputLayer":
            order.append((layer["name"], None, []))
            continue
        if kind not in BUILDERS:
            raise Unsupported(f"layer {layer['name']!r} ({kind})")
        function = BUILDERS[kind](config, variables)
        if kind == "Dense":
            kernels.append(variables[0])
            dense.append((layer["name"], str(config.get("activation", "linear"))))
            penalty = _penalty(config) or penalty
        if kind == "StringLookup":
            vocabularies[layer["name"]] = list(config["vocabulary"])
        order.append((layer["name"], function, _sources(layer)))
    inputs = _inputs(graph["input_layers"])
    output = _single(graph["output_layers"])[0]
    return LightModel(order, inputs, output, kernels, penalty, vocabularies,
                      tuple(name for name, _ in dense), tuple(act for _, act in dense))


def _stored_name(kind: str, used: dict[str, int]) -> str:
    """The name Keras gives a layer's weights in model.weights.h5: its class in snake
    case, numbered from the second of a kind on, in the order of the config's layers."""
    name = re.sub("([a-z])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", kind)).lower()
    count = used.get(name)
    used[name] = 0 if count is None else count + 1
    return name if count is None else f"{name}_{count + 1}"


def _sources(layer: dict[str, Any]) -> list[str]:
    nodes = layer["inbound_nodes"]
    if len(nodes) != 1:
        raise Unsupported(f"layer {layer['name']!r} is used {len(nodes)} times")
    first = nodes[0]["args"][0]
    tensors = first if isinstance(first, list) else [first]
    return [t["config"]["keras_history"][0] for t in tensors]


def _inputs(spec: Any) -> dict[str, str] | str:
    if isinstance(spec, dict):
        return {key: value[0] for key, value in spec.items()}
    return _single(spec)[0]


def _single(spec: Any) -> list[Any]:
    if isinstance(spec, list) and spec and isinstance(spec[0], list):
        if len(spec) != 1:
            raise Unsupported("several inputs or outputs")
        return spec[0]
    return spec


def _penalty(config: dict[str, Any]) -> tuple[float, float] | None:
    regularizer = config.get("kernel_regularizer")
    if not regularizer:
        return None
    if regularizer.get("class_name") not in ("L1L2", "L1", "L2"):
        raise Unsupported(f"regularizer {regularizer.get('class_name')}")
    settings = regularizer["config"]
    return float(settings.get("l1", 0.0)), float(settings.get("l2", 0.0))


def _dense(config: dict[str, Any], variables: list[Array]) -> Layer:
    activation = config.get("activation", "linear")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise Unsupported(f"activation {activation!r}")
    kernel = variables[0].astype(np.float32)
    bias = variables[1].astype(np.float32) if config.get("use_bias", True) else np.float32(0)
    act = ACTIVATIONS[activation]
    return lambda xs: act(xs[0] @ kernel + bias).astype(np.float32)


def _normalization(config: dict[str, Any], _variables: list[Array]) -> Layer:
    if config.get("invert") or config.get("mean") is None:
        raise Unsupported("a Normalization layer without stored mean and variance")
    mean = np.asarray(config["mean"], dtype=np.float32)
    scale = np.maximum(np.sqrt(np.asarray(config["variance"], dtype=np.float32)), np.float32(EPSILON))
    return lambda xs: ((xs[0] - mean) / scale).astype(np.float32)


def _string_lookup(config: dict[str, Any], _variables: list[Array]) -> Layer:
    vocabulary = config.get("vocabulary")
    if (config.get("output_mode") != "one_hot" or config.get("num_oov_indices") != 1
            or config.get("mask_token") is not None or not isinstance(vocabulary, list)):
        raise Unsupported("a StringLookup other than one-hot with one unknown slot")
    index = {str(v): i + 1 for i, v in enumerate(vocabulary)}  # slot 0: unseen categories
    width = len(vocabulary) + 1

    def one_hot(xs: list[Any]) -> Array:
        positions = np.array([index.get(str(v), 0) for v in np.asarray(xs[0]).reshape(-1)])
        out = np.zeros((len(positions), width), dtype=np.float32)
        out[np.arange(len(positions)), positions] = 1.0
        return out
    return one_hot


def _batch_norm(config: dict[str, Any], variables: list[Array]) -> Layer:
    if config.get("axis", -1) not in (-1, [-1], 1, [1]):
        raise Unsupported("batch normalization over another axis")
    parts = list(variables)
    gamma = parts.pop(0) if config.get("scale", True) else np.float32(1)
    beta = parts.pop(0) if config.get("center", True) else np.float32(0)
    mean, variance = parts
    factor = (gamma / np.sqrt(variance + np.float32(config.get("epsilon", 1e-3)))).astype(np.float32)
    return lambda xs: ((xs[0] - mean) * factor + beta).astype(np.float32)


def _rescaling(config: dict[str, Any], _variables: list[Array]) -> Layer:
    scale = np.asarray(config.get("scale", 1.0), dtype=np.float32)
    offset = np.asarray(config.get("offset", 0.0), dtype=np.float32)
    return lambda xs: (xs[0] * scale + offset).astype(np.float32)


def _activation(config: dict[str, Any], _variables: list[Array]) -> Layer:
    name = config.get("activation")
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise Unsupported(f"activation {name!r}")
    act = ACTIVATIONS[name]
    return lambda xs: act(xs[0]).astype(np.float32)


def _concatenate(config: dict[str, Any], _variables: list[Array]) -> Layer:
    axis = config.get("axis", -1)
    return lambda xs: np.concatenate([np.asarray(x, dtype=np.float32) for x in xs], axis=axis)


BUILDERS: dict[str, Callable[[dict[str, Any], list[Array]], Layer]] = {
    "Dense": _dense,
    "Normalization": _normalization,
    "StringLookup": _string_lookup,
    "BatchNormalization": _batch_norm,
    "Rescaling": _rescaling,
    "Activation": _activation,
    "Concatenate": _concatenate,
    "Dropout": lambda _config, _variables: (lambda xs: xs[0]),  # inference: identity
}


# Metrics scored here: every one a config may name.
SCORED = ("accuracy", "mae", "mse", "rmse", *CLASS_METRICS)


def score(head: Head, outputs: Array, y: Array, penalty: float = 0.0,
          labels: list[str] | None = None) -> dict[str, float]:
    """Loss and metrics of `outputs` against encoded targets `y`, as metrics.json holds them.

    Precision, recall, F1 and AUC are exact (`dlrecap.scoring`), per class too with `labels`.

    Args:
        head: the run's `model.Head` (its loss, metrics and label encoding).
        outputs: the model's outputs, `(rows, units)`.
        y: targets as `model.encode_targets` gives them.
        penalty: the weight penalty added to the loss (`LightModel.weight_penalty`).
        labels: the class names, for the per-class keys (`recall_<label>`).

    Raises:
        Unsupported: a loss or metric not computed here.
    """
    unknown = [m for m in head.metrics if m not in SCORED]
    if unknown:
        raise Unsupported(f"metric {unknown[0]}")
    pred = np.asarray(outputs, dtype=np.float64)
    out = {"loss": float(np.mean(_loss(head.loss, y, pred)) + penalty)}
    counted = (class_scores(head.metrics, pred, class_indices(y), labels)
               if any(name in CLASS_METRICS for name in head.metrics) else {})
    for name in head.metrics:
        out[name] = counted[name] if name in CLASS_METRICS else metric(name, head, y, pred)
    return {**out, **counted}


def _loss(loss: str, y: Array, pred: Array) -> Array:
    if loss == "binary_crossentropy":
        p = np.clip(pred, EPSILON, 1 - EPSILON)
        target = y.reshape(p.shape)
        return -np.mean(target * np.log(p) + (1 - target) * np.log(1 - p), axis=-1)
    if loss in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        p = np.clip(pred / pred.sum(axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
        if loss == "sparse_categorical_crossentropy":
            return -np.log(p[np.arange(len(p)), y.astype(int).reshape(-1)])
        return -np.sum(y * np.log(p), axis=-1)
    error = pred - y.reshape(pred.shape)
    if loss == "mse":
        return np.mean(error**2, axis=-1)
    if loss == "mae":
        return np.mean(np.abs(error), axis=-1)
    if loss == "huber":
        absolute = np.abs(error)
        return np.mean(np.where(absolute <= 1.0, 0.5 * error**2, absolute - 0.5), axis=-1)
    raise Unsupported(f"loss {loss}")


def metric(name: str, head: Head, y: Array, pred: Array) -> float:
    """Metric `name` (accuracy, mae, mse or rmse) of outputs `pred` against encoded targets `y`."""
    if name == "accuracy":
        if head.one_hot:
            hits = pred.argmax(axis=-1) == y.argmax(axis=-1)
        elif head.loss == "sparse_categorical_crossentropy":
            hits = pred.argmax(axis=-1) == y.astype(int).reshape(-1)
        else:
            hits = (pred > 0.5).astype(np.float64) == y.reshape(pred.shape)
        return float(np.mean(hits))
    error = pred - y.reshape(pred.shape)
    per_row = np.mean(np.abs(error) if name == "mae" else error**2, axis=-1)
    return float(np.sqrt(per_row.mean()) if name == "rmse" else per_row.mean())
