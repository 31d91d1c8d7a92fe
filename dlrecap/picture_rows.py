"""The rows a picture feeds the model, for data with text columns as well as numeric ones.

A picture over the input plane (the decision boundary) or along one input (the fitted
curve) varies the numeric features only; each text column is held at its most frequent
training value, and the picture's title says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dlrecap.data.split import n_rows

if TYPE_CHECKING:
    from dlrecap.data.split import Features, Splits


def numeric_features(splits: Splits) -> list[str]:
    """The feature columns that hold numbers: all of them unless some hold text."""
    text = getattr(splits, "categorical", ())
    return [name for name in splits.feature_names if name not in text]


def numeric_matrix(splits: Splits, x: Features) -> np.ndarray:
    """The numeric columns of rows `x` (a matrix or a dict of columns) as one float matrix."""
    if not isinstance(x, dict):
        return np.asarray(x, dtype="float32")
    names = numeric_features(splits)
    if not names:
        return np.zeros((n_rows(x), 0), dtype="float32")
    return np.concatenate([np.asarray(x[name], dtype="float32").reshape(-1, 1) for name in names],
                          axis=1)


def most_frequent(splits: Splits) -> dict[str, Any]:
    """Each text column's most frequent training value, what a picture over the numbers holds."""
    held = {}
    for name in getattr(splits, "categorical", ()):
        values, counts = np.unique(np.asarray(splits.x_train[name]).ravel(), return_counts=True)
        held[name] = values[counts.argmax()]
    return held


def model_rows(splits: Splits, numbers: np.ndarray, held: dict[str, Any]) -> Features:
    """Rows the model takes: `numbers` for its numeric features, the text columns as `held`."""
    if not held:
        return numbers.astype("float32")
    names = numeric_features(splits)
    return {name: np.full((len(numbers), 1), held[name], dtype=object) if name in held
            else numbers[:, [names.index(name)]].astype("float32")
            for name in splits.feature_names}


def held_note(held: dict[str, Any]) -> str:
    """`colour = red` for each held column, as a picture's title says it."""
    values = ", ".join(f"{name} = {value}" for name, value in held.items())
    return f"{values} (the most frequent value{'s' if len(held) > 1 else ''})"


def plane_axes(splits: Splits, points: int) -> tuple[np.ndarray, np.ndarray]:
    """`points` coordinates along each of the two numeric features, the data's range padded 8%.

    The decision boundary, its frames over training and the neuron grid share this plane,
    so that the last frame and the picture show the same surface.
    """
    x_all = np.concatenate([numeric_matrix(splits, x) for x in (splits.x_train, splits.x_val,
                                                                  splits.x_test)])
    lo, hi = x_all.min(axis=0), x_all.max(axis=0)
    pad = (hi - lo) * 0.08 + 1e-6
    return (np.linspace(lo[0] - pad[0], hi[0] + pad[0], points),
            np.linspace(lo[1] - pad[1], hi[1] + pad[1], points))


def plane_rows(splits: Splits, xs: np.ndarray, ys: np.ndarray) -> Features:
    """The rows of the grid `xs` x `ys` (x varying fastest), text columns held at their mode."""
    mesh = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype("float32")
    return model_rows(splits, mesh, most_frequent(splits))


def surface(outputs: np.ndarray) -> np.ndarray:
    """What a frame holds per point: P(positive class) or the prediction for one output,
    the predicted class index (as float) for several."""
    outputs = np.asarray(outputs, dtype=np.float32)
    if outputs.shape[-1] == 1:
        return outputs[:, 0]
    return outputs.argmax(axis=-1).astype(np.float32)
