"""The training pipeline end to end on tiny configs: run directory, early stopping, engines, NaN, expect."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dlrecap.config.load import load_config
from dlrecap.errors import Interrupted, TrainingError
from dlrecap.expect import unmet_expectations
from dlrecap.pipeline import train

from helpers import CtrlCAfter, write_prices

BASE = {
    "name": "tiny",
    "seed": 3,
    "data": {"dataset": "moons", "samples": 200, "noise": 0.25},
    "model": {"layers": [16]},
    "training": {"learning_rate": 0.05, "batch_size": 16, "epochs": 30},
}


def _config(tmp_path: Path, **sections) -> Path:
    data = json.loads(json.dumps(BASE))
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("engine", ["numpy", "fast", "keras"])
def test_early_stopping_restores_the_best_epoch(tmp_path, engine):
    path = _config(tmp_path, training={"epochs": 200, "learning_rate": 0.1, "engine": engine,
                                       "early_stopping": {"patience": 3}},
                   model={"layers": [64, 64]})
    result = train(load_config(path), tmp_path / "runs")
    m = result.metrics
    rows = _history(result.run_dir)
    assert m["status"] == "completed" and m["engine"] == engine
    assert m["stopped_early"] is True
    assert len(rows) == m["epochs_run"] < 200
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    val_losses = [float(r["val_loss"]) for r in rows]
    # best_epoch is the epoch of the lowest val_loss, and training ran `patience` beyond it
    assert m["best_epoch"] == val_losses.index(min(val_losses)) + 1
    assert m["epochs_run"] == m["best_epoch"] + 3
    # restore_best_weights: the final validation loss is the best epoch's
    assert m["validation"]["loss"] == pytest.approx(min(val_losses), rel=1e-3, abs=1e-5)


def test_engines_agree(tmp_path):
    # One batch of all training rows: the engines' shuffles differ, so mini-batches would
    # take different paths; a full batch makes every step the same, and the metrics too.
    scores, histories = {}, {}
    for engine in ("numpy", "fast", "keras"):
        path = _config(tmp_path, training={"engine": engine, "epochs": 100, "batch_size": 512})
        result = train(load_config(path), tmp_path / engine)
        scores[engine] = result.metrics
        scores[engine + "_files"] = sorted(p.name for p in result.run_dir.iterdir())
        assert {"config.yaml", "history.csv", "metrics.json", "model.keras",
                "learning_curves.png"} <= set(scores[engine + "_files"])
        histories[engine] = _history(result.run_dir)
        assert list(histories[engine][0]) == [
            "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    assert scores["numpy_files"] == scores["fast_files"] == scores["keras_files"]
    keras_ = scores["keras"]
    for engine in ("numpy", "fast"):
        mine = scores[engine]
        assert mine["epochs_run"] == keras_["epochs_run"] == 100
        for split in ("train", "validation", "test"):
            for name, value in keras_[split].items():
                assert mine[split][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (engine, split, name)
        for row, theirs in zip(histories[engine], histories["keras"], strict=True):
            assert {k: float(v) for k, v in row.items()} == pytest.approx(
                {k: float(v) for k, v in theirs.items()}, rel=1e-4, abs=1e-6)
        assert mine["test"]["accuracy"] > 0.85


def test_same_seed_same_metrics(tmp_path):
    path = _config(tmp_path, model={"layers": [8], "dropout": 0.2}, training={"epochs": 5})
    first = train(load_config(path), tmp_path / "a").metrics
    second = train(load_config(path), tmp_path / "b").metrics
    for split in ("train", "validation", "test"):
        assert first[split] == second[split]
    other = train(load_config(path, ["seed=4"]), tmp_path / "c").metrics
    assert other["train"] != first["train"]


@pytest.mark.parametrize("engine", ["numpy", "fast", "keras"])
def test_divergence_fails_naming_the_epoch(tmp_path, engine):
    path = _config(tmp_path, data={"dataset": "linear", "samples": 100, "noise": 0.1},
                   model={"layers": [32, 32], "activation": "relu", "initializer":
                          {"name": "random_normal", "stddev": 3.0}},
                   training={"optimizer": "sgd", "learning_rate": 50.0, "engine": engine,
                             "epochs": 20})
    with pytest.raises(TrainingError, match=r"epoch \d+") as caught:
        train(load_config(path), tmp_path / "runs")
    assert "learning_rate" in caught.value.render()
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert str(run_dir) in caught.value.render()  # where to look at what went wrong
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert metrics["weights_epoch"] == metrics["epochs_run"]  # the last finite epoch's
    # the saved model holds the last finite epoch's weights, not the diverged ones
    import keras

    weights = keras.models.load_model(run_dir / "model.keras", compile=False).get_weights()
    assert all(np.isfinite(w).all() for w in weights)


def test_unmet_expectations_are_listed(tmp_path):
    path = _config(tmp_path, training={"epochs": 2},
                   expect={"test_accuracy": ">= 1.01", "train_loss": "< 100"})
    result = train(load_config(path), tmp_path / "runs")
    assert len(result.unmet) == 1 and result.unmet[0].startswith("test_accuracy >= 1.01: got")
    assert result.metrics["status"] == "completed"


def test_no_validation_rows_monitors_training_loss(tmp_path):
    warnings = []
    path = _config(tmp_path, data={"validation_split": 0.0},
                   training={"epochs": 4, "early_stopping": 2})
    result = train(load_config(path), tmp_path / "runs", on_warning=warnings.append)
    assert result.metrics["monitor"] == "loss"
    assert result.metrics["validation"] is None
    assert any("val_loss" in w for w in warnings)
    assert "val_loss" not in _history(result.run_dir)[0]


def test_regression_head_and_metrics(tmp_path):
    path = _config(tmp_path, data={"dataset": "sine", "samples": 200, "noise": 0.05},
                   model={"layers": [16, 16], "activation": "tanh"},
                   training={"epochs": 3, "metrics": ["mae", "rmse"]})
    m = train(load_config(path), tmp_path / "runs").metrics
    assert m["task"] == "regression" and m["engine"] == "numpy"  # auto, on the CPU
    assert set(m["test"]) == {"loss", "mae", "rmse"}
    assert m["test"]["rmse"] == pytest.approx(m["test"]["loss"] ** 0.5, rel=1e-4)


def test_without_restore_the_last_weights_stay(tmp_path):
    path = _config(tmp_path, training={"epochs": 200, "learning_rate": 0.1,
                                       "early_stopping": {"patience": 3,
                                                          "restore_best_weights": False}},
                   model={"layers": [64, 64]})
    result = train(load_config(path), tmp_path / "runs")
    last = float(_history(result.run_dir)[-1]["val_loss"])
    assert result.metrics["stopped_early"]
    assert result.metrics["validation"]["loss"] == pytest.approx(last, rel=1e-3, abs=1e-5)



# --- the best epoch, early stopping and its resumed state ---------------------------------


def test_without_early_stopping_the_best_epoch_has_the_lowest_val_loss(tmp_path):
    path = _config(tmp_path, training={"epochs": 8})
    result = train(load_config(path), tmp_path / "runs")
    val_losses = [float(r["val_loss"]) for r in _history(result.run_dir)]
    assert min(val_losses) < max(val_losses)  # else any choice of epoch would pass
    assert result.metrics["monitor"] == "val_loss" and result.metrics["stopped_early"] is False
    assert result.metrics["best_epoch"] == val_losses.index(min(val_losses)) + 1


def test_early_stopping_on_val_accuracy_keeps_the_highest(tmp_path):
    path = _config(tmp_path, training={"epochs": 40, "learning_rate": 0.01,
                                       "early_stopping": {"monitor": "val_accuracy",
                                                          "patience": 8}})
    result = train(load_config(path), tmp_path / "runs")
    m = result.metrics
    accuracies = [float(r["val_accuracy"]) for r in _history(result.run_dir)]
    assert max(accuracies) > accuracies[0]  # it improved, so min and max epochs differ
    assert m["monitor"] == "val_accuracy"
    assert m["best_epoch"] == accuracies.index(max(accuracies)) + 1
    assert m["validation"]["accuracy"] == pytest.approx(max(accuracies), abs=1e-6)


@pytest.mark.parametrize("interrupt_after", [None, 2])
def test_min_delta_and_patience_count_across_a_resume(tmp_path, interrupt_after):
    # After epoch 1 no val_loss can be lower by 100: epochs 2-5 are the patience of 4.
    path = _config(tmp_path, training={"epochs": 30, "early_stopping": {"patience": 4,
                                                                        "min_delta": 100}})
    if interrupt_after:
        with pytest.raises(Interrupted, match=f"after epoch {interrupt_after}"):
            train(load_config(path), tmp_path / "runs", progress=CtrlCAfter(interrupt_after))
        (run_dir,) = (tmp_path / "runs").iterdir()
        result = train(load_config(path), tmp_path / "runs", resume=run_dir)
        assert result.metrics["resumed_from_epoch"] == interrupt_after
    else:
        result = train(load_config(path), tmp_path / "runs")
    m = result.metrics
    assert (m["epochs_run"], m["best_epoch"], m["stopped_early"]) == (5, 1, True)
    assert len(_history(result.run_dir)) == 5


# --- expectations --------------------------------------------------------------------------


@pytest.mark.parametrize("text, met", [
    (">= 0.9", True), ("> 0.9", False), ("<= 0.9", True), ("< 0.9", False), ("== 0.9", True),
    (">= 0.91", False), ("> 0.89", True), ("<= 0.89", False), ("< 0.91", True),
])
def test_an_expectation_at_its_bound(text, met):
    metrics = {"test": {"accuracy": 0.9}}
    unmet = unmet_expectations({"test_accuracy": text}, metrics)
    assert unmet == ([] if met else [f"test_accuracy {text}: got 0.9"])


@pytest.mark.parametrize("value, met", [(1000.0000001, True), (1000.001, False), (1e-13, True)])
def test_an_equality_expectation_allows_for_rounding_only(value, met):
    bound = "0" if value < 1 else "1000"
    unmet = unmet_expectations({"test_mae": f"== {bound}"}, {"test": {"mae": value}})
    assert unmet == ([] if met else [f"test_mae == {bound}: got {value:.4g}"])


def test_an_expectation_on_a_missing_metric_is_unmet():
    assert unmet_expectations({"validation_auc": ">= 0.5"}, {"validation": None}) == [
        "validation_auc >= 0.5: the run has no validation auc"]


def test_an_expectation_on_one_class_checks_its_score(tmp_path):
    path = _config(tmp_path, training={"epochs": 2, "metrics": ["accuracy", "recall"]},
                   expect={"test_recall_1": ">= 1.01", "validation_recall_0": ">= 0"})
    result = train(load_config(path), tmp_path / "runs")
    m = result.metrics
    checks = {c["key"]: c for c in m["expect"]["checks"]}
    assert checks["test_recall_1"]["value"] == m["test"]["recall_1"]
    assert checks["validation_recall_0"]["value"] == m["validation"]["recall_0"]
    assert [c["met"] for c in checks.values()] == [False, True]
    assert result.unmet == [f"test_recall_1 >= 1.01: got {m['test']['recall_1']:.4g}"]


@pytest.mark.parametrize("key, message, fix", [
    ("test_recall_2", "no class is labelled '2'",
     "this run's per-class keys are: test_recall_0, test_recall_1"),
    ("test_f1_1", "the run does not compute f1 (training.metrics: accuracy, recall)",
     "add f1 to training.metrics"),
])
def test_an_expectation_on_an_unknown_class_score_exits_2_at_its_key(tmp_path, key, message, fix):
    from helpers import invoke

    path = _config(tmp_path, training={"epochs": 2, "metrics": ["accuracy", "recall"]},
                   expect={key: ">= 0.5"})
    line = path.read_text().splitlines().index(f"  {key}: '>= 0.5'") + 1
    result = invoke("train", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {path}:{line}:{len(key) + 5}: expect.{key}: unknown expectation {key!r}: {message} ({fix})")
    assert not (tmp_path / "runs").exists()


def test_the_expect_outcome_is_recorded(tmp_path):
    path = _config(tmp_path, training={"epochs": 2},
                   expect={"test_accuracy": ">= 1.01", "train_loss": "< 100"})
    m = train(load_config(path), tmp_path / "runs").metrics
    assert m["expect"]["met"] is False
    first, second = m["expect"]["checks"]
    assert first == {"key": "test_accuracy", "op": ">=", "threshold": 1.01,
                     "value": m["test"]["accuracy"], "met": False}
    assert second == {"key": "train_loss", "op": "<", "threshold": 100.0,
                      "value": m["train"]["loss"], "met": True}
    saved = json.loads((tmp_path / "runs" / next((tmp_path / "runs").iterdir()).name /
                        "metrics.json").read_text())
    assert saved["expect"] == m["expect"]
    met = train(load_config(path, ["expect={train_loss: '< 100'}"]), tmp_path / "runs2").metrics
    assert met["expect"]["met"] is True
    assert "expect" not in train(load_config(path, ["expect={}"]), tmp_path / "runs3").metrics


# --- regression targets in their own units ------------------------------------------------


@pytest.mark.parametrize("engine", ["numpy", "fast", "keras"])
def test_a_target_in_the_tens_of_thousands_is_learned_in_its_own_units(tmp_path, engine):
    write_prices(tmp_path / "prices.csv")
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"path": "prices.csv", "target": "price"}, "model": {"layers": [16]},
        "training": {"engine": engine, "epochs": 60, "learning_rate": 0.01, "early_stopping": 10},
    }))
    result = train(load_config(path), tmp_path / "runs")
    m = result.metrics
    # The trivial predictor (the training mean) is off by about 2,900; the network, by ~400.
    assert m["test"]["mae"] < 0.3 * m["baseline"]["test"]["mae"]
    assert 15_000 < m["target_scale"]["mean"] < 25_000
    rows = _history(result.run_dir)
    kept = rows[m["weights_epoch"] - 1]
    # history.csv's mae is in the target's units (its loss on the standardized scale) ...
    assert float(kept["val_mae"]) == pytest.approx(m["validation"]["mae"], rel=1e-3)
    assert float(rows[0]["loss"]) < 10
    # ... and model.keras answers in them too.
    import keras

    model = keras.models.load_model(result.run_dir / "model.keras", compile=False, safe_mode=True)
    guess = float(np.asarray(model(np.array([[0.0, 0.0]], dtype="float32")))[0, 0])
    assert guess == pytest.approx(20_000, abs=1_500)


def test_standardize_target_false_trains_on_the_raw_target(tmp_path):
    path = _config(tmp_path, data={"dataset": "linear", "samples": 100,
                                   "standardize_target": False}, training={"epochs": 2})
    result = train(load_config(path), tmp_path / "runs")
    assert "target_scale" not in result.metrics
    import keras

    model = keras.models.load_model(result.run_dir / "model.keras", compile=False)
    assert model.layers[-1].name == "output"


# --- the trivial baseline ------------------------------------------------------------------


def test_metrics_json_has_the_baseline_of_each_split(tmp_path):
    from dlrecap.data import load_splits

    path = _config(tmp_path, data={"validation_split": 0.0}, training={"epochs": 2})
    loaded = load_config(path)
    m = train(loaded, tmp_path / "runs").metrics
    assert m["baseline"]["validation"] is None  # no rows, no score: like the model's
    assert set(m["baseline"]["test"]) == set(m["test"]) == {"loss", "accuracy"}
    splits = load_splits(loaded.config.data, loaded.config.seed)
    majority = np.bincount(splits.y_train).argmax()
    assert m["baseline"]["test"]["accuracy"] == pytest.approx(np.mean(splits.y_test == majority))
    assert m["baseline"]["train"]["accuracy"] == pytest.approx(np.mean(splits.y_train == majority))


# --- which weights were kept ---------------------------------------------------------------


def test_early_stopping_keeps_the_best_epochs_weights_and_says_which(tmp_path):
    path = _config(tmp_path, training={"epochs": 200, "learning_rate": 0.1,
                                       "early_stopping": {"patience": 3}},
                   model={"layers": [64, 64]})
    m = train(load_config(path), tmp_path / "runs").metrics
    assert m["stopped_early"] and m["weights_epoch"] == m["best_epoch"] < m["epochs_run"]


@pytest.mark.parametrize("how", [{"keep": "last"},
                                 {"early_stopping": {"patience": 3, "restore_best_weights": False}}])
def test_keep_last_keeps_the_last_epochs_weights_and_says_which(tmp_path, how):
    training = {"epochs": 200, "learning_rate": 0.1, "early_stopping": {"patience": 3}, **how}
    path = _config(tmp_path, training=training, model={"layers": [64, 64]})
    result = train(load_config(path), tmp_path / "runs")
    m = result.metrics
    assert m["stopped_early"] and m["best_epoch"] < m["epochs_run"] == m["weights_epoch"]
    last = float(_history(result.run_dir)[-1]["val_loss"])
    assert m["validation"]["loss"] == pytest.approx(last, rel=1e-3, abs=1e-5)


def test_keep_best_without_early_stopping_survives_a_resume(tmp_path):
    # A noisy, small data set with a large step: val_loss jumps about, and the last epoch
    # is far from the best.
    path = _config(tmp_path, data={"samples": 80, "noise": 0.4},
                   model={"layers": [64, 64]},
                   training={"epochs": 15, "learning_rate": 0.1, "keep": "best"})
    whole = train(load_config(path), tmp_path / "whole")
    val_losses = [float(r["val_loss"]) for r in _history(whole.run_dir)]
    best = val_losses.index(min(val_losses)) + 1
    assert whole.metrics["weights_epoch"] == whole.metrics["best_epoch"] == best < 15
    assert whole.metrics["validation"]["loss"] == pytest.approx(min(val_losses), rel=1e-3)

    # Interrupted right after the best epoch: the resumed run must remember its weights.
    with pytest.raises(Interrupted):
        train(load_config(path), tmp_path / "runs", progress=CtrlCAfter(best))
    (run_dir,) = (tmp_path / "runs").iterdir()
    resumed = train(load_config(path), tmp_path / "runs", resume=run_dir).metrics
    assert resumed["weights_epoch"] == best
    assert resumed["validation"]["loss"] == pytest.approx(whole.metrics["validation"]["loss"],
                                                          rel=1e-4)


def test_the_result_comes_before_the_pictures_and_completed_after_them(tmp_path):
    seen = []

    def on_result(result):
        seen.append((json.loads((result.run_dir / "metrics.json").read_text())["status"],
                     sorted(p.name for p in result.run_dir.glob("*.png")), result.metrics["test"]))

    path = _config(tmp_path, training={"epochs": 2})
    result = train(load_config(path), tmp_path / "runs", on_result=on_result)
    [(status, pictures, test)] = seen
    assert status == "running" and pictures == [] and test["loss"] > 0
    assert (result.run_dir / "model.keras").is_file()
    assert json.loads((result.run_dir / "metrics.json").read_text())["status"] == "completed"
    assert (result.run_dir / "learning_curves.png").is_file()
