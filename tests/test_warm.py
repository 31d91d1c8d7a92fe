"""A run trained in the model kept from an earlier run of its shape (`train.warm`) is the run
a fresh model trains: the same history, diagnostics, frames and weights, to the last bit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from dlrecap.config.load import load_config
from dlrecap.pipeline import train

keras = pytest.importorskip("keras")

BASE: dict[str, Any] = {
    "name": "warm",
    "seed": 2,
    "data": {"dataset": "moons", "samples": 240, "noise": 0.2},
    "model": {"layers": [8, 6], "dropout": 0.1, "batch_norm": True},
    "training": {"learning_rate": 0.02, "batch_size": 32, "epochs": 24,
                 "early_stopping": {"patience": 4}, "keep": "best", "class_weight": "balanced"},
}


@pytest.fixture
def warm(monkeypatch):
    from dlrecap.train import warm

    warm.forget()
    monkeypatch.setattr(warm, "ENABLED", False)
    yield warm
    warm.forget()


def config_file(folder: Path, name: str, **training: Any) -> Path:
    config = json.loads(json.dumps(BASE))
    config["name"] = name
    config["training"].update(training)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def files(run_dir: Path) -> dict[str, Any]:
    has_frames = (run_dir / "boundary_frames.npz").is_file()
    frames = np.load(run_dir / "boundary_frames.npz") if has_frames else {
        "frames": np.zeros(0), "kept_epoch": -1}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    return {"history": (run_dir / "history.csv").read_text(), "name": model.name,
            "diagnostics": (run_dir / "diagnostics.csv").read_text(),
            "frames": frames["frames"], "kept_epoch": int(frames["kept_epoch"]),
            "weights": model.get_weights(),
            "scores": {split: metrics[split] for split in ("train", "validation", "test")},
            "best_epoch": metrics["best_epoch"]}


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key in ("history", "name", "diagnostics", "kept_epoch", "scores", "best_epoch"):
        assert got[key] == want[key], key
    np.testing.assert_array_equal(got["frames"], want["frames"])
    for a, b in zip(got["weights"], want["weights"], strict=True):
        np.testing.assert_array_equal(a, b)


# Each changes BASE (two features: frames; dropout, batch norm, class weights, keep best).
SHAPES = {
    "classifier": {},
    # A standardized target, stopped on its error in target units; no frames (10 features).
    "regression": {"data": {"dataset": "diabetes"}, "model": {"layers": [8]},
                   "training": {"class_weight": None, "metrics": ["mae", "rmse"],
                                "early_stopping": {"monitor": "val_rmse", "patience": 3}}},
    # The rate changes between epochs: one epoch per call, the rate variable restored.
    "plateau": {"training": {"lr_schedule": {"name": "reduce_on_plateau", "patience": 1,
                                              "factor": 0.5}}},
}


@pytest.mark.parametrize("shape", SHAPES)
def test_a_run_in_the_kept_model_equals_a_fresh_run(tmp_path, warm, monkeypatch, shape):
    from dlrecap.train.fast_engine import _StepFunctions

    for section, values in SHAPES[shape].items():  # a data set replaces BASE's
        monkeypatch.setitem(BASE, section, values if section == "data" else {**BASE[section], **values})
    target = config_file(tmp_path, "target")
    fresh = files(train(load_config(target), tmp_path / "fresh").run_dir)

    warm.ENABLED = True
    other = config_file(tmp_path, "other", learning_rate=0.2, epochs=9)  # same shape
    first = train(load_config(other), tmp_path / "warm")
    (kept,) = warm._kept.values()
    steps = getattr(kept, _StepFunctions.KEPT_AS)
    again = train(load_config(target), tmp_path / "warm")
    assert warm._kept == {next(iter(warm._kept)): kept}  # trained in the same model
    assert getattr(kept, _StepFunctions.KEPT_AS) is steps
    assert steps.train_epoch.experimental_get_tracing_count() == 1  # traced once for both runs
    assert len(steps.loops) == (0 if shape == "plateau" else 1)
    assert_same(files(again.run_dir), fresh)
    assert first.metrics["epochs_run"] <= 9


def test_a_run_of_another_shape_gets_a_model_of_its_own(tmp_path, warm):
    warm.ENABLED = True
    train(load_config(config_file(tmp_path, "a")), tmp_path / "runs")
    (first,) = warm._kept.values()
    path = tmp_path / "b.yaml"
    config = yaml.safe_load(config_file(tmp_path, "b").read_text())
    config["model"]["layers"] = [8, 5]
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    train(load_config(path), tmp_path / "runs")
    (second,) = warm._kept.values()
    assert second is not first


def test_a_decaying_schedule_keeps_the_rate_in_the_shape(tmp_path):
    from dlrecap.pipeline import load_data
    from dlrecap.train.warm import shape_key

    def key(name: str, **training: Any) -> str:
        loaded = load_config(config_file(tmp_path, name, **training))
        return shape_key(loaded.config, *load_data(loaded))

    schedule = {"name": "exponential", "decay_rate": 0.5, "decay_epochs": 4}
    assert key("s1", learning_rate=0.01, lr_schedule=schedule) != key(
        "s2", learning_rate=0.02, lr_schedule=schedule)
    assert key("c1", learning_rate=0.01) == key("c2", learning_rate=0.02, epochs=50)
    assert key("c3", learning_rate=0.01) != key("c4", learning_rate=0.01, batch_size=16)


def test_a_model_no_run_keeps_is_freed_with_its_compiled_functions(tmp_path, warm):
    import gc
    import weakref

    warm.ENABLED = True
    train(load_config(config_file(tmp_path, "a")), tmp_path / "runs")
    (first,) = warm._kept.values()
    gone = weakref.ref(first)
    del first
    warm.forget()  # as when a run of another shape takes its place
    gc.collect()
    assert gone() is None


def test_a_kept_model_gets_a_compiled_loop_per_stopping_rule():
    # The rule's numbers are constants of the loop: runs of one network whose targets are
    # scaled differently (another factor) must not share it.
    from types import SimpleNamespace

    from dlrecap.train.chunks import StopRule, epoch_chunks

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    steps = SimpleNamespace(model=model, loops={})
    rules = [StopRule(column=1, factor=factor, min_delta=0.0, maximize=False, patience=3,
                      keep_weights=True) for factor in (1.0, 10.0, 1.0)]
    loops = [epoch_chunks(steps, rule, [])[0] for rule in rules]
    assert loops[0] is not loops[1] and loops[1].rule.factor == 10.0
    assert loops[2] is loops[0]  # the same rule again: the loop already made
