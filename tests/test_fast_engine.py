"""Tests for the fast engine's metrics on hand-made predictions, checked against Keras' own."""

from __future__ import annotations

import numpy as np
import pytest

from dlrecap.model import Head

keras = pytest.importorskip("keras")


def passing_through(width: int) -> keras.Model:
    """A model whose predictions are its inputs, so a test can choose them exactly."""
    model = keras.Sequential([keras.Input((width,)), keras.layers.Dense(width)])
    model.set_weights([np.eye(width, dtype="float32"), np.zeros(width, dtype="float32")])
    return model


def both_engines(head: Head, predictions: np.ndarray, y: np.ndarray) -> tuple[dict, dict]:
    """{loss, metrics} of `predictions` against `y`, computed by the fast and the Keras engine."""
    from dlrecap.train.fast_engine import FastEngine
    from dlrecap.train.keras_engine import KerasEngine

    x = np.asarray(predictions, dtype="float32")
    model = passing_through(x.shape[1])
    fast = FastEngine().evaluator(model, head)(x, y)
    return fast, KerasEngine().evaluator(model, head)(x, y)


def test_binary_accuracy_thresholds_the_probability_at_one_half():
    head = Head(1, "sigmoid", "binary_crossentropy", False, ("accuracy",))
    # hits: 0.55 and 0.58 and 0.65 labelled 1, 0.45 and exactly 0.5 labelled 0;
    # misses: 0.2 labelled 1, 0.9 and 0.51 labelled 0
    p = [0.55, 0.58, 0.65, 0.45, 0.5, 0.2, 0.9, 0.51]
    y = [1, 1, 1, 0, 0, 1, 0, 0]
    fast, keras_ = both_engines(head, np.array(p).reshape(-1, 1),
                                np.array(y, dtype="float32").reshape(-1, 1))
    assert fast["accuracy"] == pytest.approx(5 / 8)
    assert keras_["accuracy"] == pytest.approx(5 / 8)
    assert fast["loss"] == pytest.approx(keras_["loss"], rel=1e-5)


def test_multiclass_accuracy_takes_the_most_probable_class():
    head = Head(3, "softmax", "sparse_categorical_crossentropy", False, ("accuracy",))
    p = [[0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3], [0.4, 0.35, 0.25]]
    y = np.array([0, 2, 0, 1], dtype="int32")
    fast, keras_ = both_engines(head, np.array(p), y)
    assert fast["accuracy"] == pytest.approx(2 / 4) == keras_["accuracy"]
    assert fast["loss"] == pytest.approx(keras_["loss"], rel=1e-5)


def test_regression_errors_match_their_definitions():
    head = Head(1, "linear", "mse", False, ("mae", "mse", "rmse"))
    p = np.array([[1.0], [2.0], [4.0], [-1.0]])
    y = np.array([[1.5], [2.0], [1.0], [0.0]], dtype="float32")
    fast, keras_ = both_engines(head, p, y)
    errors = (p - y).ravel()
    assert fast["mae"] == pytest.approx(np.abs(errors).mean())
    assert fast["mse"] == pytest.approx((errors ** 2).mean()) == pytest.approx(fast["loss"])
    assert fast["rmse"] == pytest.approx(np.sqrt((errors ** 2).mean()))
    for name in ("loss", "mae", "mse", "rmse"):
        assert fast[name] == pytest.approx(keras_[name], rel=1e-5), name



def test_one_evaluation_trace_scores_every_split_size():
    from dlrecap.train.fast_engine import FastEngine
    from dlrecap.train.keras_engine import KerasEngine

    head = Head(1, "sigmoid", "binary_crossentropy", False, ("accuracy",))
    model, engine = passing_through(1), FastEngine()
    fast, keras_ = engine.evaluator(model, head), KerasEngine().evaluator(model, head)
    rng = np.random.default_rng(0)
    for rows in (360, 120, 7):  # train, validation and test sizes
        p = rng.uniform(0.01, 0.99, (rows, 1)).astype("float32")
        y = (rng.uniform(size=(rows, 1)) < 0.5).astype("float32")
        scores, expected = fast(p, y), keras_(p, y)  # the one trace computes what Keras does
        assert scores["loss"] == pytest.approx(expected["loss"], rel=1e-5)
        assert scores["accuracy"] == pytest.approx(expected["accuracy"])
    assert engine._steps is not None
    assert engine._steps.evaluate.experimental_get_tracing_count() == 1
