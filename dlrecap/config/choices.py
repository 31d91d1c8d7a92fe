"""Names a config may use, and the did-you-mean check that validates them.

These lists are plain strings so that validating a config never imports TensorFlow.
"""

from __future__ import annotations

import difflib

from dlrecap.vocab import METRICS  # noqa: F401 - the config's metric names live in vocab

HIDDEN_ACTIVATIONS = (
    "linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "swish",
    "silu", "mish", "softplus", "softsign", "hard_sigmoid", "relu6", "exponential",
)
OUTPUT_ACTIVATIONS = ("auto", "softmax", *HIDDEN_ACTIVATIONS)
LOSSES = (
    "auto", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "mse", "mae", "huber",
)
OPTIMIZERS = ("sgd", "adam", "adamw", "nadam", "rmsprop", "adagrad", "adadelta", "adamax")
INITIALIZERS = (
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "random_normal", "random_uniform", "truncated_normal", "orthogonal",
    "zeros", "ones",
)
# Initializers whose spread the config may set (`mean`/`stddev` or `minval`/`maxval`).
PARAMETRIC_INITIALIZERS = ("random_normal", "truncated_normal", "random_uniform")
TASKS = ("auto", "binary", "multiclass", "regression")
ENGINES = ("auto", "numpy", "fast", "keras")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTES = ("auto", "none", "mirrored", "multi_worker")
MISSING = ("error", "drop", "mean")

CLASSIFICATION_LOSSES = (
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
)


def did_you_mean(value: str, options: tuple[str, ...] | list[str]) -> str:
    """` (did you mean 'x'?)` for the closest option, or an empty string."""
    close = difflib.get_close_matches(str(value), list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_choice(value: str, options: tuple[str, ...], what: str) -> str:
    """Return `value` when it is one of `options`, else raise ValueError naming the closest."""
    if value in options:
        return value
    hint = did_you_mean(value, options)
    if not hint:
        hint = f" (choose one of: {', '.join(options)})"
    raise ValueError(f"unknown {what} {value!r}{hint}")
