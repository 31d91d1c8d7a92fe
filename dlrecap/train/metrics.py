"""The metrics both engines report per epoch, as Keras metric objects and as graph functions.

Precision, recall and F1 accumulate a confusion matrix over the epoch's batches and AUC
accumulates true/false positives and negatives at 200 thresholds, as Keras' `AUC` does. The
Keras engine uses `CountMetric` objects; the fast engine carries the same counts through its
compiled loop (`zeros`, `counts`, `result`), so both engines report the same values. Binary
scores count class 1 as positive (p > 0.5); multiclass ones are macro averages. Final scores
in metrics.json are exact instead (`dlrecap.scoring`): AUC from the ranks, not thresholds.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from dlrecap.model import Head

# Metrics computed from counts over the epoch rather than sums over the rows.
COUNTED = ("precision", "recall", "f1", "auc")
# keras.metrics.AUC's default: thresholds 0 - eps, 1/199, ..., 198/199, 1 + eps.
THRESHOLDS = 200


def n_classes(head: Head) -> int:
    """Classes of the head: its softmax units, or 2 for a single sigmoid output."""
    return max(head.units, 2)


def true_classes(head: Head, y: tf.Tensor) -> tf.Tensor:
    """Class index per row of encoded targets (one-hot, indices or (n, 1) 0/1 floats)."""
    if head.one_hot:
        return tf.argmax(y, -1, output_type=tf.int32)
    return tf.cast(tf.round(tf.reshape(tf.cast(y, tf.float32), [-1])), tf.int32)


def _predicted(head: Head, pred: tf.Tensor) -> tf.Tensor:
    if head.units > 1:
        return tf.argmax(pred, -1, output_type=tf.int32)
    return tf.cast(tf.reshape(pred, [-1]) > 0.5, tf.int32)


def zeros(name: str, head: Head) -> tf.Tensor:
    """The empty counts of metric `name`."""
    if name == "auc":
        return tf.zeros([4, THRESHOLDS, head.units])
    k = n_classes(head)
    return tf.zeros([k, k])


def counts(name: str, head: Head, y: tf.Tensor, pred: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
    """The counts of metric `name` for one batch, each row counting `weight`."""
    true = true_classes(head, y)
    pred = tf.cast(pred, tf.float32)
    if name != "auc":
        return tf.math.confusion_matrix(true, _predicted(head, pred), num_classes=n_classes(head),
                                        weights=weight, dtype=tf.float32)
    return _threshold_counts(head, true, pred, weight)


def _threshold_counts(head: Head, true: tf.Tensor, pred: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
    """True/false positives and negatives at each threshold, `(4, THRESHOLDS, classes)`.

    As Keras does for evenly spaced thresholds: each score falls in the bucket of the highest
    threshold it exceeds, and a reverse cumulative sum of the buckets counts the rows above
    each threshold; memory grows with the rows, not rows x thresholds.
    """
    classes = head.units
    positive = (tf.one_hot(true, classes) if classes > 1
                else tf.cast(tf.reshape(true, [-1, 1]), tf.float32))
    bucket = tf.clip_by_value(
        tf.cast(tf.math.ceil(pred * (THRESHOLDS - 1)), tf.int32) - 1, 0, THRESHOLDS - 1)
    index = tf.reshape(bucket * classes + tf.range(classes)[None, :], [-1])

    def above(weights: tf.Tensor) -> tf.Tensor:
        buckets = tf.math.unsorted_segment_sum(tf.reshape(weights, [-1]), index,
                                               THRESHOLDS * classes)
        return tf.math.cumsum(tf.reshape(buckets, [THRESHOLDS, classes]), axis=0, reverse=True)

    pos = positive * weight[:, None]
    neg = (1.0 - positive) * weight[:, None]
    tp, fp = above(pos), above(neg)
    return tf.stack([tp, fp, tf.reduce_sum(pos, 0) - tp, tf.reduce_sum(neg, 0) - fp])


def result(name: str, head: Head, total: tf.Tensor) -> tf.Tensor:
    """The value of metric `name` from its counts over the epoch."""
    if name == "auc":
        return _auc(total)
    hits = tf.linalg.diag_part(total)
    predicted, actual = tf.reduce_sum(total, 0), tf.reduce_sum(total, 1)
    top, bottom = {"precision": (hits, predicted), "recall": (hits, actual),
                   "f1": (2.0 * hits, predicted + actual)}[name]
    values = tf.math.divide_no_nan(top, bottom)
    if head.units == 1:
        return values[1]
    present = tf.cast(predicted + actual > 0, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(values * present), tf.reduce_sum(present))


def _auc(total: tf.Tensor) -> tf.Tensor:
    """keras.metrics.AUC's ROC area by interpolation, averaged over the classes (multi_label)."""
    tp, fp, fn, tn = tf.unstack(total)
    recall = tf.math.divide_no_nan(tp, tp + fn)
    fp_rate = tf.math.divide_no_nan(fp, fp + tn)
    heights = (recall[:-1] + recall[1:]) / 2.0
    return tf.reduce_mean(tf.reduce_sum((fp_rate[:-1] - fp_rate[1:]) * heights, axis=0))


@keras.saving.register_keras_serializable(package="dlrecap")
class CountMetric(keras.metrics.Metric):
    """A metric of `COUNTED` as a Keras metric object (the Keras engine's)."""

    def __init__(self, name: str, head: dict[str, Any], **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.head = Head(**{**head, "metrics": tuple(head["metrics"]),
                            "class_weights": None})
        self.total = self.add_variable(shape=tuple(zeros(name, self.head).shape),
                                       initializer="zeros", name="counts")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        rows = tf.shape(y_pred)[0]
        weight = (tf.ones([rows]) if sample_weight is None
                  else tf.reshape(tf.cast(sample_weight, tf.float32), [-1]))
        self.total.assign_add(counts(self.name, self.head, y_true, y_pred, weight))

    def result(self) -> tf.Tensor:
        return result(self.name, self.head, self.total)

    def reset_state(self) -> None:
        self.total.assign(tf.zeros_like(self.total))

    def get_config(self) -> dict[str, Any]:
        head = {"units": self.head.units, "activation": self.head.activation,
                "loss": self.head.loss, "one_hot": self.head.one_hot,
                "metrics": list(self.head.metrics)}
        return {"name": self.name, "head": head}


def make_metrics(head: Head) -> list[keras.metrics.Metric]:
    """Keras metric objects named exactly as history.csv and metrics.json name them."""
    m = keras.metrics
    accuracy = (
        m.CategoricalAccuracy if head.one_hot
        else m.SparseCategoricalAccuracy if head.loss == "sparse_categorical_crossentropy"
        else m.BinaryAccuracy
    )
    factories = {"accuracy": accuracy, "mae": m.MeanAbsoluteError, "mse": m.MeanSquaredError,
                 "rmse": m.RootMeanSquaredError}
    head_spec = {"units": head.units, "activation": head.activation, "loss": head.loss,
                 "one_hot": head.one_hot, "metrics": list(head.metrics)}
    return [CountMetric(name, head_spec) if name in COUNTED else factories[name](name=name)
            for name in head.metrics]
