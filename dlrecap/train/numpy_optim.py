"""Keras' SGD and Adam steps, written out in NumPy over one vector of weights.

Each reads its state (step count, momenta) from the model's Keras optimizer and writes it
back, so checkpoints and model.keras hold the same state whichever engine trained. The
formulas and their order are Keras' (`keras.optimizers.SGD.update_step`,
`keras.optimizers.Adam.update_step`), in float32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dlrecap.train.callbacks import inner_optimizer
from dlrecap.train.numpy_net import assign_variable, read_variable

F32 = np.float32


def _flat(slots: list[Any], parts: list[slice], size: int) -> np.ndarray:
    out = np.zeros(size, F32)
    for slot, part in zip(slots, parts, strict=True):
        out[part] = np.asarray(read_variable(slot), F32).reshape(-1)
    return out


def _store(slots: list[Any], parts: list[slice], values: np.ndarray) -> None:
    for slot, part in zip(slots, parts, strict=True):
        assign_variable(slot, values[part].reshape(tuple(slot.shape)))


class NumpyOptimizer:
    """The state and step of a Keras optimizer over one weight vector.

    Args:
        optimizer: the model's Keras optimizer, built for `model.trainable_variables`.
        parts: each trainable variable's slice of the weight vector, in that order.
        size: the weight vector's length.
    """

    def __init__(self, optimizer: Any, parts: list[slice], size: int):
        self.keras = inner_optimizer(optimizer)
        self.parts = parts
        self.iterations = int(read_variable(self.keras.iterations))
        kind = type(self.keras).__name__
        if kind == "Adam":
            self.slots = [list(self.keras._momentums), list(self.keras._velocities)]
            self.beta_1, self.beta_2 = F32(self.keras.beta_1), F32(self.keras.beta_2)
            self.epsilon = F32(self.keras.epsilon)
            self.keep_1, self.keep_2 = F32(1) - self.beta_1, F32(1) - self.beta_2
        else:
            self.momentum = F32(self.keras.momentum)
            self.slots = [list(self.keras.momentums)] if self.momentum else []
        # Adam's two moments side by side in one array, so both move in the same few calls.
        moments = np.concatenate([_flat(slots, parts, size) for slots in self.slots]
                                 or [np.zeros(0, F32)])
        self.state = [moments[i * size:(i + 1) * size] for i in range(len(self.slots))]
        self._moments = moments
        self._scratch, self._step = np.zeros(size, F32), np.zeros(size, F32)
        if kind == "Adam":
            self._targets = np.zeros(2 * size, F32)  # what each moment moves towards: g, g^2
            self._keep = np.repeat(np.array([self.keep_1, self.keep_2], F32), size)
        self.kind = kind

    def learning_rate(self) -> F32:
        """The rate now (`reduce_on_plateau` may have lowered it between epochs)."""
        return F32(read_variable(self.keras.learning_rate))  # a variable: no schedule here

    def step(self, weights: np.ndarray, grad: np.ndarray, lr: F32) -> None:
        """One update of `weights` in place from `grad`."""
        if self.kind == "Adam":
            self._adam(weights, grad, lr)
        elif self.momentum:
            (m,) = self.state
            m *= self.momentum
            np.multiply(grad, lr, out=self._scratch)
            m -= self._scratch
            weights += m
        else:
            np.multiply(grad, lr, out=self._scratch)
            weights -= self._scratch
        self.iterations += 1

    def _adam(self, weights: np.ndarray, grad: np.ndarray, lr: F32) -> None:
        m, v = self.state
        scratch, step, targets = self._scratch, self._step, self._targets
        # In Python floats, cheaper than NumPy scalars per step; the betas are Keras' float32s.
        t = self.iterations + 1
        alpha = F32(float(lr) * math.sqrt(1 - float(self.beta_2) ** t) / (1 - float(self.beta_1) ** t))
        # m += (g - m) * (1 - beta_1) and v += (g^2 - v) * (1 - beta_2), as Keras, both at once.
        size = len(grad)
        np.copyto(targets[:size], grad)
        np.square(grad, out=targets[size:])
        targets -= self._moments
        targets *= self._keep
        self._moments += targets
        np.sqrt(v, out=scratch)
        scratch += self.epsilon
        np.multiply(m, alpha, out=step)
        step /= scratch
        weights -= step

    def write(self) -> None:
        """Give the Keras optimizer this step count and these momenta."""
        assign_variable(self.keras.iterations, self.iterations)
        for slots, values in zip(self.slots, self.state, strict=True):
            _store(slots, self.parts, values)
