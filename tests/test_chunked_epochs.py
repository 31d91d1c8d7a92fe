"""Many epochs per compiled call give the run one epoch per call gives, number for number.

Each test trains one tiny config twice in the fast engine, in chunks of epochs and one
epoch per call (`fast_engine.CHUNKS`), and compares history.csv, the best epoch, the
scores and the saved weights.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlrecap.config.load import load_config
from dlrecap.errors import TrainingError
from dlrecap.pipeline import train

from helpers import config_over, whole_and_resumed

keras = pytest.importorskip("keras")

BASE: dict[str, Any] = {
    "name": "chunks",
    "seed": 5,
    "data": {"dataset": "breast_cancer"},
    "model": {"layers": [8]},
    "training": {"learning_rate": 0.01, "batch_size": 64, "epochs": 80, "engine": "fast"},
}
# Metrics that say nothing about the training itself, which may differ between the runs.
TIMINGS = {"fit_s", "epochs_per_call", "created", "finished", "wall_s", "run_dir", "name"}


@pytest.fixture(autouse=True)
def long_calls(monkeypatch):
    """Calls as long as the callbacks allow: the split into calls does not depend on speed."""
    from dlrecap.train import chunks

    monkeypatch.setattr(chunks, "CALL_SECONDS", 1e9)


def write_config(tmp_path: Path, data: dict | None = None, model: dict | None = None,
                 **training: Any) -> Path:
    return config_over(BASE, tmp_path / "chunks.yaml", data, model, **training)


def train_both(tmp_path: Path, monkeypatch, path: Path) -> dict[bool, Any]:
    """The run trained in chunks (True) and one epoch per call (False)."""
    from dlrecap.train import fast_engine

    results = {}
    for chunked in (True, False):
        monkeypatch.setattr(fast_engine, "CHUNKS", chunked)
        results[chunked] = train(load_config(path), tmp_path / f"runs-{chunked}")
    return results


def history_text(run_dir: Path) -> str:
    return (run_dir / "history.csv").read_text()


def diagnostics_text(run_dir: Path) -> str | None:
    """diagnostics.csv, or None before the first probe wrote it."""
    path = run_dir / "diagnostics.csv"
    return path.read_text() if path.is_file() else None


def history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def saved_weights(run_dir: Path) -> list[np.ndarray]:
    return keras.models.load_model(run_dir / "model.keras", compile=False).get_weights()


def assert_same_weights(a: Path, b: Path) -> None:
    for got, want in zip(saved_weights(a), saved_weights(b), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def assert_same_run(results: dict[bool, Any]) -> dict[str, Any]:
    """The chunked run equals the per-epoch one and ran several epochs per call; its metrics."""
    chunked, single = results[True], results[False]
    assert history_text(chunked.run_dir) == history_text(single.run_dir)
    # The health probes ran inside the chunked run's calls, after each probed epoch.
    assert diagnostics_text(chunked.run_dir) == diagnostics_text(single.run_dir)
    a, b = chunked.metrics, single.metrics
    for key in ("epochs_run", "best_epoch", "stopped_early", "weights_epoch", "monitor"):
        assert a[key] == b[key], key
    for split in ("train", "validation", "test"):
        assert a[split].keys() == b[split].keys()
        for name, value in a[split].items():
            assert value == pytest.approx(b[split][name], rel=1e-6, abs=1e-6), (split, name)
    assert_same_weights(chunked.run_dir, single.run_dir)
    assert b["epochs_per_call"] == 1
    assert a["epochs_per_call"] > 2, "the chunked run must run several epochs per call"
    return a


def test_binary_classification_with_counted_metrics(tmp_path, monkeypatch):
    path = write_config(tmp_path, metrics=["accuracy", "f1", "auc"])
    m = assert_same_run(train_both(tmp_path, monkeypatch, path))
    assert m["epochs_run"] == 80 and m["stopped_early"] is False


def test_the_default_call_length_trains_the_same_run(tmp_path, monkeypatch):
    from dlrecap.train import chunks

    monkeypatch.setattr(chunks, "CALL_SECONDS", 0.25)
    path = write_config(tmp_path, epochs=60)
    results = train_both(tmp_path, monkeypatch, path)
    assert history_text(results[True].run_dir) == history_text(results[False].run_dir)
    assert_same_weights(results[True].run_dir, results[False].run_dir)


def test_early_stopping_stops_inside_a_call_and_keeps_the_best_epoch(tmp_path, monkeypatch):
    # The calls run on past the health probes (every 10 epochs): the stop falls inside one.
    path = write_config(tmp_path, epochs=200, learning_rate=0.05,
                        early_stopping={"patience": 4}, keep="best")
    m = assert_same_run(train_both(tmp_path, monkeypatch, path))
    assert m["stopped_early"] and m["epochs_run"] == m["best_epoch"] + 4
    assert m["epochs_run"] % 10 and m["best_epoch"] % 10, "the stop must fall inside a call"
    assert m["weights_epoch"] == m["best_epoch"]


def test_keep_best_without_early_stopping(tmp_path, monkeypatch):
    path = write_config(tmp_path, learning_rate=0.05, keep="best")
    m = assert_same_run(train_both(tmp_path, monkeypatch, path))
    assert m["epochs_run"] == 80 and m["weights_epoch"] == m["best_epoch"] < 80


def test_early_stopping_with_min_delta(tmp_path, monkeypatch):
    path = write_config(tmp_path, data={"dataset": "iris"}, epochs=200, learning_rate=0.02,
                        batch_size=16, early_stopping={"patience": 3, "min_delta": 0.02,
                                                       "restore_best_weights": False})
    m = assert_same_run(train_both(tmp_path, monkeypatch, path))
    assert m["stopped_early"] and m["weights_epoch"] == m["epochs_run"]


def test_standardized_regression_stops_on_an_error_in_target_units(tmp_path, monkeypatch):
    # diabetes: a target with a standard deviation of about 77; min_delta is in its units.
    path = write_config(tmp_path, data={"dataset": "diabetes"}, metrics=["mae", "rmse"],
                        epochs=300, batch_size=32,
                        early_stopping={"monitor": "val_rmse", "patience": 3, "min_delta": 0.5})
    m = assert_same_run(train_both(tmp_path, monkeypatch, path))
    assert m["stopped_early"] and m["target_scale"]["std"] > 10


def test_class_weights(tmp_path, monkeypatch):
    path = write_config(tmp_path, class_weight={"malignant": 5})
    assert_same_run(train_both(tmp_path, monkeypatch, path))


@pytest.mark.parametrize("schedule", [
    {"name": "exponential", "decay_rate": 0.5, "decay_epochs": 4},
    {"name": "cosine", "warmup_epochs": 3, "decay_epochs": 20, "min_lr": 0.001},
])
def test_a_learning_rate_schedule_logs_each_epochs_rate(tmp_path, monkeypatch, schedule):
    path = write_config(tmp_path, lr_schedule=schedule)
    results = train_both(tmp_path, monkeypatch, path)
    assert_same_run(results)
    rates = [float(r["learning_rate"]) for r in history(results[True].run_dir)]
    assert len(set(rates)) > 20  # a rate per epoch, not the one after the call


def test_dropout_and_batch_norm(tmp_path, monkeypatch):
    path = write_config(tmp_path, model={"layers": [16, 8], "dropout": 0.3, "batch_norm": True})
    assert_same_run(train_both(tmp_path, monkeypatch, path))


def test_a_diverging_run_stops_with_the_last_finite_weights(tmp_path, monkeypatch):
    from dlrecap.train import fast_engine

    # The warmup raises the rate until the loss overflows, a few epochs in.
    path = write_config(tmp_path, data={"dataset": "diabetes"}, model={"layers": [32, 32]},
                        optimizer="sgd", learning_rate=5.0, epochs=100,
                        lr_schedule={"name": "cosine", "warmup_epochs": 30, "decay_epochs": 50})
    errors, run_dirs = {}, {}
    for chunked in (True, False):
        monkeypatch.setattr(fast_engine, "CHUNKS", chunked)
        with pytest.raises(TrainingError) as caught:
            train(load_config(path), tmp_path / f"runs-{chunked}")
        errors[chunked] = caught.value.message.split("; the run is in")[0]
        (run_dirs[chunked],) = (tmp_path / f"runs-{chunked}").iterdir()
    assert errors[True] == errors[False] and "epoch" in errors[True]
    assert history_text(run_dirs[True]) == history_text(run_dirs[False])
    finite_epochs = len(history(run_dirs[True]))
    # The first call trains one epoch, the second the rest: the overflow comes inside it.
    assert finite_epochs > 2, "the loss must overflow inside a call"
    assert_same_weights(run_dirs[True], run_dirs[False])
    assert all(np.isfinite(w).all() for w in saved_weights(run_dirs[True]))


@pytest.mark.slow  # three runs
def test_an_interrupted_and_resumed_run_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    from dlrecap.train.callbacks import BoundaryFrames
    from dlrecap.train.health import HealthMonitor

    # Probes read in Python, as for a callback without a compiled probe, end the calls (the
    # moons' frames every 2 epochs), so Ctrl-C is honoured a few epochs in; dropout draws
    # continue across the resume.
    for callback in (BoundaryFrames, HealthMonitor):
        monkeypatch.setattr(callback, "graph_probe", lambda self: None)
    path = write_config(tmp_path, data={"dataset": "moons", "samples": 300, "noise": 0.2},
                        model={"layers": [16], "dropout": 0.1}, epochs=120, batch_size=32,
                        early_stopping={"patience": 200})
    whole, resumed = whole_and_resumed(path, tmp_path, stop_after=7)
    assert 7 <= resumed.metrics["resumed_from_epoch"] < 120
    assert history_text(resumed.run_dir) == history_text(whole.run_dir)
    assert resumed.metrics["best_epoch"] == whole.metrics["best_epoch"]
    assert_same_weights(resumed.run_dir, whole.run_dir)


def test_reduce_on_plateau_trains_one_epoch_per_call(tmp_path):
    # The callback changes the rate between epochs, which a call of several would not see.
    path = write_config(tmp_path, data={"dataset": "iris"}, epochs=60,
                        lr_schedule={"name": "reduce_on_plateau", "patience": 1, "factor": 0.5,
                                     "monitor": "loss"})
    m = train(load_config(path), tmp_path / "runs").metrics
    assert m["epochs_run"] == 60 and m["epochs_per_call"] == 1


def test_frames_and_health_probes_run_inside_the_calls(tmp_path, monkeypatch):
    # moons: two features, so a boundary frame after every epoch of 40, and a health probe
    # every 2; the chunked run computes them inside its calls, which span many epochs.
    path = write_config(tmp_path, data={"dataset": "moons", "samples": 200, "noise": 0.2},
                        model={"layers": [6, 4]}, epochs=40, batch_size=32)
    results = train_both(tmp_path, monkeypatch, path)
    m = assert_same_run(results)
    assert m["epochs_per_call"] >= 10
    frames = {chunked: np.load(r.run_dir / "boundary_frames.npz") for chunked, r in results.items()}
    np.testing.assert_array_equal(frames[True]["epochs"], np.arange(41))
    np.testing.assert_array_equal(frames[True]["epochs"], frames[False]["epochs"])
    np.testing.assert_allclose(frames[True]["frames"], frames[False]["frames"], rtol=0, atol=1e-6)
    assert not np.allclose(frames[True]["frames"][1], frames[True]["frames"][-1])


def test_a_probe_without_a_compiled_form_ends_the_calls(tmp_path, monkeypatch):
    from dlrecap.train.health import HealthMonitor

    # Diagnostics read in Python every 4 epochs of 80: each is read at the end of a call.
    monkeypatch.setattr(HealthMonitor, "graph_probe", lambda self: None)
    m = assert_same_run(train_both(tmp_path, monkeypatch, write_config(tmp_path)))
    assert m["epochs_per_call"] <= 4
