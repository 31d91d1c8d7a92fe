"""A stack of dense layers trained with NumPy: the forward pass, the loss and its gradients.

Built from a compiled Keras model (`DenseStack.of`), whose weights it starts from and gives
back (`train.numpy_engine`); the computation is Keras' own, written out: standardization
as Keras' `Normalization` does it, `Dense` layers, inverted dropout (`x * keep / (1 - rate)`),
the output activation fused with its loss as Keras fuses them (sigmoid with binary
cross-entropy and softmax with sparse categorical cross-entropy are computed from the logits), and
the L1/L2 penalty Keras adds to the loss. All weights live in one float32 vector, so an
optimizer step is a handful of NumPy calls whatever the number of layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from scipy.special import expit

from dlrecap.model import Head

Array = np.ndarray
F32 = np.float32

# Hidden activations this engine differentiates, as the output `a` gives their derivative.
DERIVATIVES = {
    "linear": None,
    "relu": lambda a: a > 0,
    "tanh": lambda a: 1 - a * a,
    "sigmoid": lambda a: a * (1 - a),
}
ACTIVATE = {
    "linear": None,
    "relu": lambda z: np.maximum(z, 0, out=z),
    "tanh": lambda z: np.tanh(z, out=z),
    "sigmoid": lambda z: expit(z, out=z),
}
# (output activation, loss) pairs, each computed from the logits.
HEADS = {
    ("sigmoid", "binary_crossentropy"): "sigmoid",
    ("softmax", "sparse_categorical_crossentropy"): "softmax",
    ("linear", "mse"): "linear",
}
# Keras' backend epsilon, as Normalization divides by at least it.
EPSILON = 1e-7


def read_variable(variable: Any) -> Array:
    """A Keras variable's value, by TensorFlow's own op: a third of the cost of
    `variable.numpy()` the first time, which a short run pays for each variable."""
    return tf.raw_ops.ReadVariableOp(resource=variable.value.handle, dtype=variable.value.dtype).numpy()


def assign_variable(variable: Any, value: Array | int) -> None:
    """Give a Keras variable `value` (of its shape), by TensorFlow's own op: a tenth of the
    cost of `variable.assign` the first time."""
    tf.raw_ops.AssignVariableOp(resource=variable.value.handle,
                                value=np.asarray(value, variable.dtype))


def _sigmoid(z: Array) -> Array:
    return expit(z)  # one ufunc call, without overflow for large |z|


def _softmax(z: Array) -> Array:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class Layer:
    """One Dense layer: views of its weights in the weight vector, and of their gradient.

    With a bias, `weights` is the kernel's rows followed by the bias as one more row (the
    order Keras keeps them in), so the layer is one matrix product of its input with a
    column of ones appended: one NumPy call each way instead of two, which is a good part of
    a small network's step. `kernel` and `grad_kernel` are views of the kernel's rows.
    """

    weights: Array
    grad: Array
    biased: bool
    activation: str
    dropout: float

    def __post_init__(self) -> None:
        rows = slice(None, -1) if self.biased else slice(None)
        self.kernel, self.grad_kernel = self.weights[rows], self.grad[rows]


class DenseStack:
    """The trainable part of a dlrecap model as NumPy arrays (see the module's docstring).

    Attributes:
        weights: every trainable weight in one vector, in `model.trainable_variables` order.
        grad: the gradient of the last `backward`, laid out as `weights`.
        variables: the Keras variables, each with its slice of `weights`.
    """

    def __init__(self, model: Any, head: Head, layers: list[tuple[Any, str, float]],
                 standardize: tuple[Array, Array] | None, penalty: tuple[float, float]):
        variables = list(model.trainable_variables)
        sizes = [int(np.prod(v.shape)) for v in variables]
        self.weights = np.zeros(sum(sizes), F32)
        self.grad = np.zeros_like(self.weights)
        self.variables: list[tuple[Any, slice]] = []
        start = 0
        for variable, size in zip(variables, sizes, strict=True):
            self.variables.append((variable, slice(start, start + size)))
            start += size
        self.read()
        self.layers = []
        for dense, activation, dropout in layers:
            kernel = next(part for v, part in self.variables if v is dense.kernel)
            rows, units = (int(n) for n in dense.kernel.shape)
            if dense.bias is not None:
                bias = next(part for v, part in self.variables if v is dense.bias)
                if bias.start != kernel.stop:
                    raise ValueError(f"the bias of {dense.name!r} does not follow its kernel")
                rows, kernel = rows + 1, slice(kernel.start, bias.stop)
            self.layers.append(Layer(self.weights[kernel].reshape(rows, units),
                                     self.grad[kernel].reshape(rows, units),
                                     dense.bias is not None, activation, dropout))
        # Each hidden layer's output for a number of rows, with its column of ones for the
        # next layer's bias: made once, then written over at each step.
        self._outputs: dict[tuple[int, int, bool], Array] = {}
        self.head = head
        self.kind = HEADS[(head.activation, head.loss)]
        self.shift: Array | None = None
        self.scale: Array | None = None
        if standardize is not None:
            self.shift, self.scale = standardize
        self.l1, self.l2 = (F32(p) for p in penalty)

    @classmethod
    def of(cls, model: Any, head: Head) -> DenseStack:
        """The stack of `model` (built by `dlrecap.model.build_model`), holding its weights.

        Raises:
            ValueError: a layer or setting outside what `why_not` lets through.
        """
        layers: list[tuple[Any, str, float]] = []
        standardize = None
        penalty = (0.0, 0.0)
        for layer in model.layers:
            kind, config = type(layer).__name__, layer.get_config()
            if kind == "InputLayer":
                continue
            if kind == "Normalization" and not layers:
                scale = np.maximum(np.sqrt(np.asarray(layer.variance, F32)), F32(EPSILON))
                standardize = (np.asarray(layer.mean, F32).reshape(-1), scale.reshape(-1))
            elif kind == "Dense":
                layers.append((layer, config["activation"], 0.0))
                regularizer = config.get("kernel_regularizer")
                if regularizer:
                    settings = regularizer["config"]
                    penalty = (float(settings.get("l1", 0.0)), float(settings.get("l2", 0.0)))
            elif kind == "Dropout" and layers:
                dense, activation, _ = layers[-1]
                layers[-1] = (dense, activation, float(layer.rate))
            else:
                raise ValueError(f"the numpy engine cannot train layer {layer.name!r} ({kind})")
        for _, activation, _ in layers[:-1]:
            if activation not in DERIVATIVES:
                raise ValueError(f"the numpy engine cannot train activation {activation!r}")
        if (head.activation, head.loss) not in HEADS:
            raise ValueError(f"the numpy engine cannot train {head.activation} with {head.loss}")
        return cls(model, head, layers, standardize, penalty)

    def read(self) -> None:
        """Take the Keras variables' values."""
        for variable, part in self.variables:
            self.weights[part] = np.asarray(read_variable(variable), F32).reshape(-1)

    def write(self) -> None:
        """Give the Keras variables these values."""
        for variable, part in self.variables:
            assign_variable(variable, self.weights[part].reshape(tuple(variable.shape)))

    def as_keras_weights(self, model: Any) -> list[Array]:
        """What `model.get_weights()` would return if the model held these weights."""
        mine = {id(v): part for v, part in self.variables}
        return [self.weights[mine[id(w)]].reshape(tuple(w.shape)).copy() if id(w) in mine
                else np.asarray(w.numpy()) for w in model.weights]

    def load_keras_weights(self, model: Any, arrays: list[Array]) -> None:
        """Take these values, in `model.get_weights()` order."""
        mine = {id(v): part for v, part in self.variables}
        for w, array in zip(model.weights, arrays, strict=True):
            if id(w) in mine:
                self.weights[mine[id(w)]] = np.asarray(array, F32).reshape(-1)

    # --- the computation ------------------------------------------------------------------

    def inputs(self, x: Array) -> Array:
        """Rows as the first Dense layer takes them: through the model's standardization,
        with a column of ones for its bias (see `Layer`)."""
        x = np.asarray(x, F32)
        if not self.layers[0].biased:
            return x if self.shift is None else (x - self.shift) / self.scale
        out = np.empty((len(x), x.shape[1] + 1), F32)
        if self.shift is None:
            out[:, :-1] = x
        else:
            np.subtract(x, self.shift, out=out[:, :-1])
            out[:, :-1] /= self.scale
        out[:, -1] = 1
        return out

    def forward(self, x: Array, rng: np.random.Generator | None,
                pre: list[Array] | None = None) -> tuple[list[Array], list[Any], Array]:
        """The logits of rows `x` (made by `inputs`), and what `backward` needs: each layer's
        input, and each hidden layer's output with its dropout mask (`rng` draws them;
        None: inference, no dropout). `pre`, when given, receives each layer's
        pre-activation. The arrays but the logits are written over by the next call."""
        h = x
        inputs: list[Array] = []
        masks: list[Any] = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            inputs.append(h)
            if i == last:
                z = h @ layer.weights
                if pre is not None:
                    pre.append(z.copy())
                return inputs, masks, z
            out = self._output(i, len(h), dropped=False)
            z = out[:, :layer.weights.shape[1]]
            np.matmul(h, layer.weights, out=z)
            if pre is not None:
                pre.append(z.copy())
            if (activate := ACTIVATE[layer.activation]) is not None:
                activate(z)
            mask = None
            if layer.dropout > 0 and rng is not None:
                keep = F32(1 - layer.dropout)
                mask = (rng.random(z.shape, dtype=F32) < keep) / keep  # inverted dropout
                kept = self._output(i, len(h), dropped=True)
                np.multiply(z, mask, out=kept[:, :z.shape[1]])
                out = kept
            masks.append((z, mask))
            h = out
        raise AssertionError("a model has an output layer")

    def _output(self, i: int, rows: int, dropped: bool) -> Array:
        """Hidden layer `i`'s output array for `rows` rows, with the next layer's column of
        ones; `dropped`: the one its dropout writes."""
        key = (i, rows, dropped)
        if (out := self._outputs.get(key)) is None:
            if len(self._outputs) >= 32:  # a handful of sizes recur: batch, last batch, chunks
                self._outputs.clear()
            units, ones = self.layers[i].weights.shape[1], int(self.layers[i + 1].biased)
            out = self._outputs[key] = np.ones((rows, units + ones), F32)
        return out

    def backward(self, inputs: list[Array], masks: list[Any], dz: Array,
                 penalty: bool = True) -> None:
        """Fill `grad` from the loss' gradient `dz` with respect to the logits (and the
        weight penalty's gradient, unless `penalty` is False)."""
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            np.matmul(inputs[i].T, dz, out=layer.grad)  # the bias' row: the sum of `dz`
            if i == 0:
                break
            dz = dz @ layer.kernel.T
            below = self.layers[i - 1]
            a, mask = masks[i - 1]
            if mask is not None:
                dz *= mask
            if (derivative := DERIVATIVES[below.activation]) is not None:
                dz *= derivative(a)
        if penalty and (self.l1 or self.l2):
            for layer in self.layers:
                if self.l1:
                    layer.grad_kernel += self.l1 * np.sign(layer.kernel)
                if self.l2:
                    layer.grad_kernel += (2 * self.l2) * layer.kernel

    def penalty(self) -> float:
        """The L1/L2 penalty Keras adds to the loss."""
        if not (self.l1 or self.l2):
            return 0.0
        return float(sum(self.l1 * np.abs(layer.kernel).sum() + self.l2 * np.square(layer.kernel).sum()
                         for layer in self.layers))

    def logits_grad(self, z: Array, y: Array, weight: Array | None) -> Array:
        """The gradient of the batch's mean weighted loss with respect to the logits `z`."""
        rows = len(z)
        if self.kind == "linear":
            dz = (z - y) * F32(2 / (rows * z.shape[1]))
        else:
            p = _sigmoid(z) if self.kind == "sigmoid" else _softmax(z)
            if self.kind == "softmax":  # class indices (sparse categorical cross-entropy)
                p[np.arange(rows), y.reshape(-1).astype(np.intp)] -= 1
                dz = p
            else:
                dz = np.subtract(p, y, out=p)
            dz *= F32(1 / rows)
        if weight is not None:
            dz *= weight[:, None]
        return dz

    def row_losses(self, z: Array, y: Array) -> Array:
        """Each row's loss from its logits, in float32 as Keras computes it (a diverging
        regression overflows to inf as there)."""
        if self.kind == "linear":
            squared = np.square(z - y)
            return squared[:, 0] if squared.shape[1] == 1 else squared.mean(axis=-1)
        if self.kind == "sigmoid":  # one unit
            return (np.logaddexp(F32(0), z) - y * z)[:, 0]
        lse = np.logaddexp.reduce(z, axis=-1)
        return lse - z[np.arange(len(z)), y.reshape(-1).astype(np.intp)]

    def outputs(self, z: Array) -> Array:
        """The model's outputs from its logits."""
        if self.kind == "linear":
            return z
        return _sigmoid(z) if self.kind == "sigmoid" else _softmax(z)
