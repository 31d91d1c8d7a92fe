"""The small data sets that ship inside scikit-learn (no download)."""

from __future__ import annotations

import re

import numpy as np

from dlrecap.data.registry import DATASETS


def _column_name(name: str) -> str:
    # 'sepal length (cm)' -> 'sepal_length_cm': usable as a CSV header for `predict`.
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")


def load_bundled(name: str):
    """Loads one of the bundled data sets.

    Args:
        name: `iris`, `wine`, `breast_cancer`, `digits` or `diabetes`.

    Returns:
        `(x, y, feature_names, label_names)`: `x` float32 `(rows, features)`, `y` int64
        class indices (float32 for `diabetes`), snake_case feature names, and the class
        names (`None` for regression).
    """
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")()
    x = np.asarray(bunch.data, dtype=np.float32)
    features = [_column_name(f) for f in getattr(bunch, "feature_names", [])]
    if len(features) != x.shape[1]:
        features = [f"x{i + 1}" for i in range(x.shape[1])]
    if DATASETS[name].task == "regression":
        return x, np.asarray(bunch.target, dtype=np.float32), features, None
    labels = [str(t) for t in bunch.target_names]
    return x, np.asarray(bunch.target, dtype=np.int64), features, labels
