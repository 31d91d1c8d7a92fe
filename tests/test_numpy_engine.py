"""The NumPy engine trains the run the fast engine trains, number for number.

Each comparison trains one tiny config in both engines (which draw the same batches) and
compares history.csv, diagnostics.csv, the boundary frames, the best epoch, the scores and
the saved weights. Dropout draws its masks differently in each engine; it is tested on
its own.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from dlrecap.config.load import load_config
from dlrecap.errors import ConfigError
from dlrecap.pipeline import train

from helpers import config_over, whole_and_resumed

keras = pytest.importorskip("keras")

BASE: dict[str, Any] = {
    "name": "numpy-engine",
    "seed": 3,
    "data": {"dataset": "breast_cancer"},
    "model": {"layers": [8], "activation": "tanh"},
    "training": {"learning_rate": 0.01, "batch_size": 64, "epochs": 6},
}
# Float32 sums in another order: a few units in the last places, growing with the epochs.
RTOL, ATOL = 2e-4, 2e-5


def write_config(tmp_path: Path, data: dict | None = None, model: dict | None = None,
                 **training: Any) -> Path:
    return config_over(BASE, tmp_path / "numpy.yaml", data, model, **training)


def train_both(tmp_path: Path, path: Path) -> dict[str, Any]:
    """The run as each engine trains it, by engine name."""
    config = yaml.safe_load(path.read_text())
    results = {}
    for engine in ("numpy", "fast"):
        config["training"]["engine"] = engine
        one = tmp_path / f"{engine}.yaml"
        one.write_text(yaml.safe_dump(config))
        results[engine] = train(load_config(one), tmp_path / f"runs-{engine}")
        recorded = json.loads((results[engine].run_dir / "metrics.json").read_text())
        assert recorded["engine"] == engine
        assert recorded["engine_reason"] == ("training.engine is numpy" if engine == "numpy" else None)
    return results


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_same_numbers(mine: list[dict[str, str]], theirs: list[dict[str, str]]) -> None:
    assert len(mine) == len(theirs) > 0
    for a, b in zip(mine, theirs, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if a[key] in ("", b[key]):
                assert a[key] == b[key], key
                continue
            try:
                x, y = float(a[key]), float(b[key])
            except ValueError:
                assert a[key] == b[key], key
                continue
            assert x == pytest.approx(y, rel=RTOL, abs=ATOL), (key, a, b)


def weights(run_dir: Path) -> list[np.ndarray]:
    return keras.saving.load_model(run_dir / "model.keras", compile=False).get_weights()


def assert_same_run(results: dict[str, Any]) -> None:
    mine, theirs = results["numpy"].run_dir, results["fast"].run_dir
    assert_same_numbers(rows_of(mine / "history.csv"), rows_of(theirs / "history.csv"))
    if (theirs / "diagnostics.csv").is_file():
        assert_same_numbers(rows_of(mine / "diagnostics.csv"), rows_of(theirs / "diagnostics.csv"))
    for a, b in zip(weights(mine), weights(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    m = json.loads((mine / "metrics.json").read_text())
    t = json.loads((theirs / "metrics.json").read_text())
    for key in ("epochs_run", "best_epoch", "stopped_early", "kept_epoch"):
        assert m.get(key) == t.get(key), key
    for split in ("train", "validation", "test"):
        for name, value in t[split].items():
            assert m[split][name] == pytest.approx(value, rel=RTOL, abs=ATOL), (split, name)


def test_adam_tanh_binary_matches_the_fast_engine(tmp_path):
    assert_same_run(train_both(tmp_path, write_config(tmp_path)))


def test_sgd_momentum_relu_multiclass_with_l2_and_class_weights_matches(tmp_path):
    path = write_config(tmp_path, data={"dataset": "wine"},
                        model={"layers": [12, 6], "activation": "relu", "l2": 0.001},
                        optimizer="sgd", momentum=0.9, learning_rate=0.05, batch_size=16,
                        class_weight="balanced")
    assert_same_run(train_both(tmp_path, path))


def test_plain_sgd_regression_with_a_standardized_target_and_l1_matches(tmp_path):
    path = write_config(tmp_path, data={"dataset": "diabetes"},
                        model={"layers": [10], "activation": "sigmoid", "l1": 0.0005},
                        optimizer="sgd", learning_rate=0.05, batch_size=32)
    assert_same_run(train_both(tmp_path, path))


def test_early_stopping_keeping_the_best_weights_matches(tmp_path):
    # A rate this high overfits within a few epochs: early stopping ends the run, and the
    # best epoch is not the last, so the kept weights are put back.
    path = write_config(tmp_path, model={"layers": [32]}, learning_rate=0.2, epochs=40,
                        early_stopping={"patience": 3}, keep="best")
    results = train_both(tmp_path, path)
    metrics = json.loads((results["numpy"].run_dir / "metrics.json").read_text())
    assert metrics["stopped_early"] and metrics["best_epoch"] < metrics["epochs_run"]
    assert_same_run(results)


def test_frames_and_health_probes_match_on_a_plane(tmp_path):
    path = write_config(tmp_path, data={"dataset": "moons", "samples": 200},
                        model={"layers": [6, 4]}, epochs=20, batch_size=16)
    results = train_both(tmp_path, path)
    assert_same_run(results)
    frames = {e: np.load(r.run_dir / "boundary_frames.npz") for e, r in results.items()}
    np.testing.assert_array_equal(frames["numpy"]["epochs"], frames["fast"]["epochs"])
    np.testing.assert_allclose(frames["numpy"]["frames"], frames["fast"]["frames"], atol=1e-4)


def test_reduce_on_plateau_lowers_the_rate_in_both_engines_alike(tmp_path):
    path = write_config(tmp_path, learning_rate=0.05, epochs=12,
                        lr_schedule={"name": "reduce_on_plateau", "patience": 1, "factor": 0.5})
    results = train_both(tmp_path, path)
    rates = [float(r["learning_rate"]) for r in rows_of(results["numpy"].run_dir / "history.csv")]
    assert min(rates) < max(rates)  # the schedule acted
    assert_same_run(results)


def test_dropout_is_inverted_and_drawn_from_the_seed(tmp_path):
    from dlrecap.train import numpy_engine

    path = write_config(tmp_path, model={"layers": [16], "dropout": 0.5}, epochs=3)
    first = train(load_config(path), tmp_path / "a")
    again = train(load_config(path), tmp_path / "b")
    assert (first.run_dir / "history.csv").read_text() == (again.run_dir / "history.csv").read_text()
    # The masks keep about half the units and scale them by 2, so the mean is kept.
    order, rng = numpy_engine.epoch_order(3, 0, 10), numpy_engine.dropout_masks(3, 0)
    assert sorted(order) == list(range(10))
    stack = numpy_engine.DenseStack.of(weights_model(first.run_dir), binary_head())
    x = np.ones((4000, stack.layers[0].kernel.shape[0]), np.float32)
    _, masks, _ = stack.forward(stack.inputs(x), rng)
    mask = masks[0][1]
    assert set(np.unique(mask)) == {0.0, 2.0}
    assert mask.mean() == pytest.approx(1.0, abs=0.02)
    _, no_masks, _ = stack.forward(stack.inputs(x), None)
    assert no_masks[0][1] is None  # inference: no dropout


def weights_model(run_dir: Path) -> Any:
    return keras.saving.load_model(run_dir / "model.keras", compile=False)


def binary_head() -> Any:
    from dlrecap.model import Head

    return Head(1, "sigmoid", "binary_crossentropy", False, ("accuracy",))


def test_a_resumed_run_trains_as_an_uninterrupted_one(tmp_path):
    """Shuffle and dropout come from (seed, epoch), and the optimizer's state goes through
    the checkpoint: stopped after epoch 2 and resumed, the run is the one never stopped."""
    path = write_config(tmp_path, model={"layers": [16], "dropout": 0.3}, epochs=5)
    whole, resumed = whole_and_resumed(path, tmp_path, stop_after=2)
    assert 2 <= resumed.metrics["resumed_from_epoch"] < 5
    assert (resumed.run_dir / "history.csv").read_text() == (whole.run_dir / "history.csv").read_text()
    for a, b in zip(weights(resumed.run_dir), weights(whole.run_dir), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("model", "training", "why"), [
    ({"batch_norm": True}, {}, "batch normalization"),
    ({"activation": "elu"}, {}, "hidden activation"),
    ({}, {"optimizer": "rmsprop"}, "optimizer rmsprop"),
    ({}, {"metrics": ["accuracy", "auc"]}, "counted metric"),
    ({}, {"clipnorm": 1.0}, "gradient clipping"),
    ({}, {"lr_schedule": "cosine"}, "lr_schedule cosine"),
])
def test_what_it_cannot_train_goes_to_the_fast_engine(tmp_path, model, training, why):
    from dlrecap.train.engines import pick_engine
    from dlrecap.train.numpy_engine import why_not

    config = load_config(write_config(tmp_path, model=model, **training)).config
    head = binary_head()
    if "metrics" in training:
        from dataclasses import replace
        head = replace(head, metrics=tuple(training["metrics"]))
    x = np.zeros((4, 30), np.float32)
    assert why in (why_not(config, head, x, on_gpu=False) or "")
    assert pick_engine("auto", head, x, config=config).name == "fast"
    with pytest.raises(ConfigError, match="numpy engine cannot train") as caught:
        pick_engine("numpy", head, x, config=config)
    assert caught.value.key == "training.engine"


def test_the_config_scope_names_the_activations_the_engine_differentiates():
    from dlrecap.train.numpy_net import DERIVATIVES
    from dlrecap.train.numpy_scope import HIDDEN_ACTIVATIONS

    assert set(HIDDEN_ACTIVATIONS) == set(DERIVATIVES)


def test_auto_picks_numpy_on_the_cpu_only(tmp_path):
    from dlrecap.train.engines import pick_engine

    config = load_config(write_config(tmp_path)).config
    x = np.zeros((4, 30), np.float32)
    chosen = pick_engine("auto", binary_head(), x, config=config)
    assert chosen.name == "numpy" and "NumPy trains it" in (chosen.reason or "")
    assert pick_engine("numpy", binary_head(), x, config=config).reason == "training.engine is numpy"
    assert pick_engine("auto", binary_head(), x, config=config, on_gpu=True).name == "fast"
    assert pick_engine("fast", binary_head(), x, config=config).name == "fast"
    columns = {"a": np.zeros((4, 1), np.float32)}
    assert pick_engine("auto", binary_head(), columns, config=config).name != "numpy"


def test_the_evaluator_scores_as_the_fast_engine_does(tmp_path):
    from dlrecap.model import Head
    from dlrecap.train.fast_engine import FastEngine
    from dlrecap.train.numpy_engine import NumpyEngine

    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(7, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    head = Head(3, "softmax", "sparse_categorical_crossentropy", False, ("accuracy",))
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = rng.integers(0, 3, 300).astype(np.int32)
    mine = NumpyEngine().evaluator(model, head)(x, y)
    theirs = FastEngine().evaluator(model, head)(x, y)
    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        assert mine[key] == pytest.approx(value, rel=1e-5), key


def small_model(activation: str, head_activation: str, units: int, l1: float = 0.0,
                l2: float = 0.0, dropout: float = 0.0) -> Any:
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if l1 or l2 else None
    layers: list[Any] = [keras.Input((4,)),
                         keras.layers.Dense(6, activation=activation, kernel_regularizer=regularizer)]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers += [keras.layers.Dense(5, activation=activation, kernel_regularizer=regularizer),
               keras.layers.Dense(units, activation=head_activation, kernel_regularizer=regularizer)]
    keras.utils.set_random_seed(1)
    return keras.Sequential(layers)


@pytest.mark.parametrize(("activation", "head"), [
    ("tanh", ("sigmoid", "binary_crossentropy", 1)),
    ("relu", ("softmax", "sparse_categorical_crossentropy", 3)),
    ("sigmoid", ("linear", "mse", 2)),
    ("linear", ("sigmoid", "binary_crossentropy", 1)),
])
def test_gradients_equal_finite_differences_with_dropout_and_penalties(activation, head):
    """The backward pass, dropout masks and L1/L2 included, against the loss' slope."""
    from dlrecap.model import Head
    from dlrecap.train.numpy_engine import _targets
    from dlrecap.train.numpy_net import DenseStack

    out, loss, units = head
    model = small_model(activation, out, units, l1=0.01, l2=0.02, dropout=0.3)
    h = Head(units, out, loss, False, ("accuracy",) if loss != "mse" else ("mae",))
    stack = DenseStack.of(model, h)
    rng = np.random.default_rng(0)
    x = stack.inputs(rng.normal(size=(16, 4)).astype(np.float32))
    y = _targets(h, rng.integers(0, units, 16) if loss != "mse" else rng.normal(size=(16, units)))
    weight = rng.uniform(0.5, 2.0, 16).astype(np.float32)

    def loss_at(w: np.ndarray) -> float:
        stack.weights[:] = w
        _, _, z = stack.forward(x, np.random.default_rng(7))  # the same masks each time
        return float(np.mean(stack.row_losses(z, y).astype(np.float64) * weight) + stack.penalty())

    start = stack.weights.copy()
    inputs, masks, z = stack.forward(x, np.random.default_rng(7))
    stack.backward(inputs, masks, stack.logits_grad(z, y, weight))
    grad = stack.grad.copy()
    here, kinks = loss_at(start), 0
    for i in rng.choice(len(start), 25, replace=False):
        step = np.zeros_like(start)
        step[i] = 1e-3
        right, left = (loss_at(start + step) - here) / 1e-3, (here - loss_at(start - step)) / 1e-3
        if abs(right - left) > 0.02 * max(abs(right), abs(left)) + 2e-3:
            kinks += 1  # a relu unit or |w| switched within the step: no slope to compare
            continue
        assert grad[i] == pytest.approx((right + left) / 2, rel=0.03, abs=3e-3), i
    assert kinks <= 5


def test_asking_for_numpy_where_it_cannot_train_is_a_config_error_at_the_key(tmp_path):
    from helpers import invoke

    path = tmp_path / "bn.yaml"
    path.write_text("seed: 0\ndata:\n  dataset: xor\nmodel:\n  layers: [4]\n  batch_norm: true\n"
                    "training:\n  engine: numpy\n  epochs: 2\n")
    result = invoke("train", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert (f"{path}:8:11: training.engine: the numpy engine cannot train this config: "
            "batch normalization") in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()


def test_a_callback_not_known_to_be_chunk_safe_sees_every_epochs_weights(tmp_path):
    from dlrecap.train.numpy_engine import NumpyEngine

    config = load_config(write_config(tmp_path, epochs=4)).config
    model = small_model("tanh", "sigmoid", 1)
    engine = NumpyEngine()
    engine.compile(model, binary_head(), config, train_rows=64)
    seen: list[np.ndarray] = []

    class Reader(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            seen.append(self.model.get_weights()[0].copy())

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    first = model.get_weights()[0].copy()
    engine.fit(model, binary_head(), config, (x, y), None, [Reader()])
    assert len(seen) == 4
    for before, after in zip([first, *seen], seen, strict=False):
        assert not np.array_equal(before, after)  # each epoch's own weights, not stale ones
    np.testing.assert_array_equal(seen[-1], model.get_weights()[0])
