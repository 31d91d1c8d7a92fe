"""Class scores computed exactly with NumPy: precision, recall, F1 and ROC AUC.

These are the final scores of metrics.json, `eval` and the report, with or without
TensorFlow; they equal scikit-learn's `precision_score`, `recall_score`, `f1_score` and
`roc_auc_score`:

- binary: class 1 (the second label) is the positive class, predicted when p > 0.5;
- multiclass: the predicted class is the most probable one, and each score is the
  unweighted mean over the classes that occur in the labels or the predictions
  (`average="macro"`); AUC is one-vs-rest, averaged over the classes that occur;
- a class never predicted has precision 0, one that never occurs recall 0 (scikit-learn's
  `zero_division=0`).

Per-epoch values in history.csv come from the engines (`dlrecap.train.metrics`): the same
precision, recall and F1, but AUC estimated as Keras' `AUC` does, from 200 thresholds.
"""

from __future__ import annotations

import numpy as np

from dlrecap.vocab import PER_CLASS_METRICS, per_class_key

# Metrics computed from the predicted classes or the class scores, not row by row.
CLASS_METRICS = ("precision", "recall", "f1", "auc")


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """Class index per row: the most probable class, or 1 where a single output is > 0.5."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        return outputs.argmax(axis=1)
    return (outputs.reshape(-1) > 0.5).astype(np.int64)


def confusion(true: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts `[true class, predicted class]`, `(n_classes, n_classes)`."""
    index = np.asarray(true, dtype=np.int64) * n_classes + np.asarray(predicted, dtype=np.int64)
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of each class from a confusion matrix (0 where undefined)."""
    counts = np.asarray(counts, dtype=np.float64)
    hits, predicted, actual = np.diag(counts), counts.sum(axis=0), counts.sum(axis=1)
    return {
        "precision": _ratio(hits, predicted),
        "recall": _ratio(hits, actual),
        "f1": _ratio(2 * hits, predicted + actual),
    }


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    return np.divide(top, bottom, out=np.zeros_like(top, dtype=np.float64), where=bottom > 0)


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The exact area under the ROC curve (ties count one half); NaN without both classes."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Mann-Whitney: the rank sum of the positives, ties sharing their mean rank.
    _, inverse, counts = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True,
                                   return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = float(mean_rank[inverse.reshape(-1)][positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def class_scores(metrics: tuple[str, ...], outputs: np.ndarray, true: np.ndarray,
                 labels: list[str] | None = None) -> dict[str, float]:
    """The class metrics among `metrics`, exactly, plus per-class ones named by `labels`.

    Args:
        metrics: the run's metric names; those outside `CLASS_METRICS` are skipped.
        outputs: the model's outputs, `(rows, 1)` probabilities of class 1, or
            `(rows, classes)` class probabilities.
        true: class indices `(rows,)`.
        labels: the class names; with them, `precision_<label>` (and recall, F1) per class.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    outputs = outputs.reshape(len(outputs), -1)
    true = np.asarray(true, dtype=np.int64).reshape(-1)
    n_classes = max(outputs.shape[1], 2)
    counts = confusion(true, predicted_classes(outputs), n_classes)
    per = per_class(counts)
    present = (counts.sum(axis=0) + counts.sum(axis=1)) > 0
    out: dict[str, float] = {}
    for name in metrics:
        if name == "auc":
            out[name] = _auc(outputs, true)
        elif name in PER_CLASS_METRICS:
            values = per[name]
            out[name] = float(values[1]) if outputs.shape[1] == 1 else float(values[present].mean())
    for name in (m for m in metrics if m in PER_CLASS_METRICS):
        for label, value in zip(labels or (), per[name], strict=False):
            out[per_class_key(name, label)] = float(value)
    return out


def _auc(outputs: np.ndarray, true: np.ndarray) -> float:
    if outputs.shape[1] == 1:
        return roc_auc(outputs[:, 0], true == 1)
    areas = [roc_auc(outputs[:, c], true == c) for c in range(outputs.shape[1])]
    defined = [a for a in areas if not np.isnan(a)]
    return float(np.mean(defined)) if defined else float("nan")


def class_indices(y: np.ndarray) -> np.ndarray:
    """Class index per row of encoded targets: one-hot rows, indices, or (rows, 1) 0/1."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    return np.round(y.reshape(-1)).astype(np.int64)


def balanced_weights(y: np.ndarray, n_classes: int) -> list[float]:
    """scikit-learn's `compute_class_weight("balanced")`: rows / (classes * rows of the class).

    Only classes that occur in `y` count; a class without rows keeps weight 1 (it is never
    weighed).
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(np.float64)
    occurring = int((counts > 0).sum())
    return [float(len(y) / (occurring * c)) if c > 0 else 1.0 for c in counts]
