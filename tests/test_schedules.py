"""Learning-rate schedules, batch normalization and gradient clipping, in both engines.

The rates a run records are checked against Keras' own schedule objects and callback; the
runs are tiny (iris, a few epochs) and shared among the tests through module fixtures.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from dlrecap.config.load import load_config
from dlrecap.config.schema import Config
from dlrecap.errors import Interrupted

from helpers import CtrlCAfter, invoke

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

ROWS = 90  # iris: 150 rows, 60% of them for training
BASE = {
    "name": "s",
    "seed": 2,
    "data": {"dataset": "iris"},
    "model": {"layers": [6]},
    "training": {"learning_rate": 0.05, "batch_size": 16, "epochs": 6},
}
STEPS = math.ceil(ROWS / 16)


def write_config(folder: Path, name: str, model: dict | None = None, **training) -> Path:
    data = json.loads(json.dumps(BASE))
    data["name"] = name
    data["model"].update(model or {})
    data["training"].update(training)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def history(run_dir: Path) -> dict[str, list[float]]:
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {key: [float(r[key]) for r in rows] for key in rows[0]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Trained runs: cosine + batch norm + clipnorm in each engine (one full batch, so the
    engines take identical steps), exponential under Keras fit, and reduce_on_plateau
    uninterrupted, then interrupted after epoch 3 and resumed."""
    from dlrecap.pipeline import train

    folder = tmp_path_factory.mktemp("schedules")
    cosine = {"lr_schedule": {"name": "cosine", "warmup_epochs": 2, "decay_epochs": 3,
                              "min_lr": 0.005},
              "clipnorm": 0.5, "batch_size": 128}
    found = {}
    for engine in ("fast", "keras"):
        path = write_config(folder, f"cosine_{engine}", {"batch_norm": True}, engine=engine, **cosine)
        found[f"cosine_{engine}"] = train(load_config(path), folder / "runs").run_dir
    path = write_config(folder, "exponential", engine="keras",
                        lr_schedule={"name": "exponential", "decay_rate": 0.5, "decay_epochs": 2})
    found["exponential"] = train(load_config(path), folder / "runs").run_dir
    plateau = {"name": "reduce_on_plateau", "patience": 1, "factor": 0.5, "monitor": "loss"}
    path = write_config(folder, "plateau", lr_schedule=plateau, epochs=10, learning_rate=0.5)
    found["plateau"] = train(load_config(path), folder / "runs").run_dir
    with pytest.raises(Interrupted):
        train(load_config(path), folder / "cut", progress=CtrlCAfter(5))
    (cut,) = (folder / "cut").iterdir()
    found["resumed"] = train(load_config(path), folder / "cut", resume=cut).run_dir
    return found


# --- step-wise schedules: Keras' schedule objects, advanced per mini-batch ----------------


@pytest.mark.slow  # the shared runs train six small models
def test_cosine_with_warmup_follows_keras_cosine_decay_per_step(runs):
    rates = history(runs["cosine_fast"])["learning_rate"]
    # One step per epoch (a full batch): the rate at epoch e's last step is step e - 1's.
    reference = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=3, alpha=0.005 / 0.05, warmup_target=0.05, warmup_steps=2)
    expected = [float(reference(step)) for step in range(6)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5)
    assert rates[-1] == pytest.approx(0.005)  # decayed to min_lr, then held


@pytest.mark.slow  # the shared runs train six small models
def test_exponential_follows_keras_exponential_decay_per_step(runs):
    rates = history(runs["exponential"])["learning_rate"]
    reference = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=2 * STEPS,
                                                            decay_rate=0.5)
    expected = [float(reference(epoch * STEPS - 1)) for epoch in range(1, 7)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5)  # float32 steps
    # Continuous, not staircase: it falls at every step, not once per decay_epochs.
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))


@pytest.mark.slow  # the shared runs train six small models
def test_history_holds_the_learning_rate_last(runs):
    with open(runs["exponential"] / "history.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]


@pytest.mark.slow  # the shared runs train six small models
def test_the_learning_curves_get_a_rate_panel_when_the_rate_changes(runs, tmp_path):
    from PIL import Image

    from dlrecap.plots import learning_curves, read_history

    info = json.loads((runs["exponential"] / "metrics.json").read_text())
    changing = Image.open(learning_curves(read_history(runs["exponential"]), info,
                                          tmp_path / "a.png"))
    flat = read_history(runs["exponential"])
    flat["learning_rate"] = [0.05] * len(flat["learning_rate"])
    constant = Image.open(learning_curves(flat, info, tmp_path / "b.png"))
    assert changing.width > constant.width * 1.2  # a third panel


# --- batch normalization and clipping: both engines ---------------------------------------


@pytest.mark.slow  # the shared runs train six small models
def test_batch_norm_sits_between_the_dense_layer_and_its_activation(runs):
    model = keras.saving.load_model(runs["cosine_fast"] / "model.keras")
    names = [layer.name for layer in model.layers]
    assert names[names.index("hidden_1"):names.index("output")] == [
        "hidden_1", "batch_norm_1", "activation_1"]
    dense = model.get_layer("hidden_1")
    assert not dense.use_bias and dense.get_config()["activation"] == "linear"
    assert model.get_layer("activation_1").get_config()["activation"] == "relu"
    # Trained in training mode: the moving variance left its initial 1.
    variance = model.get_layer("batch_norm_1").moving_variance.numpy()
    assert np.abs(variance - 1).max() > 1e-3


@pytest.mark.slow  # the shared runs train six small models
def test_engines_agree_with_batch_norm_clipping_and_a_schedule(runs):
    fast, slow = (history(runs[f"cosine_{e}"]) for e in ("fast", "keras"))
    for key in fast:
        np.testing.assert_allclose(fast[key], slow[key], rtol=1e-4, atol=1e-6, err_msg=key)
    metrics = [json.loads((runs[f"cosine_{e}"] / "metrics.json").read_text())
               for e in ("fast", "keras")]
    assert [m["engine"] for m in metrics] == ["fast", "keras"]
    assert metrics[0]["engine_reason"] is None
    assert metrics[1]["engine_reason"] == "training.engine is keras"
    assert metrics[0]["test"]["loss"] == pytest.approx(metrics[1]["test"]["loss"], rel=1e-4)


@pytest.mark.parametrize("engine", ["fast", "keras"])
@pytest.mark.parametrize("clip", [{"clipvalue": 1e-3}, {"clipnorm": 1e-3}])
def test_a_tiny_clip_bounds_each_update_as_keras_does(engine, clip):
    from dlrecap.data import load_splits
    from dlrecap.model import build_model, encode_targets, plan_head
    from dlrecap.train.fast_engine import FastEngine
    from dlrecap.train.keras_engine import KerasEngine

    config = Config.model_validate({
        **BASE, "training": {"optimizer": "sgd", "learning_rate": 1.0, "batch_size": 256,
                             "epochs": 1, **clip}})
    splits = load_splits(config.data, config.seed)
    head = plan_head(config, splits.task, splits.n_classes)
    keras.utils.set_random_seed(0)
    model = build_model(config, splits, head)
    trainer = FastEngine() if engine == "fast" else KerasEngine()
    trainer.compile(model, head, config, len(splits.x_train))
    before = [w.numpy().copy() for w in model.trainable_weights]
    y = encode_targets(splits.y_train, head)
    # The gradient without clipping, from the same weights: what Keras' clipping acts on.
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.get(head.loss)(y, model(splits.x_train, training=True)))
    grads = [g.numpy() for g in tape.gradient(loss, model.trainable_weights)]
    trainer.fit(model, head, config, (splits.x_train, y), None, [])
    for w, old, g in zip(model.trainable_weights, before, grads, strict=True):
        update = old - w.numpy()
        if "clipvalue" in clip:
            expected = np.clip(g, -1e-3, 1e-3)
        else:
            expected = g * min(1.0, 1e-3 / np.linalg.norm(g))
        # Weights near 1 hold updates near 1e-7 to float32's resolution there.
        np.testing.assert_allclose(update, expected, rtol=1e-3, atol=2e-7)
        assert np.abs(update).max() <= 1e-3 * (1 + 1e-5)


# --- reduce_on_plateau: Keras' callback, per epoch, state kept over a resume ---------------


def test_reduce_on_plateau_matches_keras_on_a_scripted_loss_sequence():
    from dlrecap.train.callbacks import ResumableReduceLROnPlateau

    losses = [1.0, 0.9, 0.95, 0.93, 0.89, 0.89, 0.9, 0.91, 0.5, 0.6, 0.7]
    settings = {"monitor": "loss", "mode": "min", "factor": 0.5, "patience": 2, "min_lr": 0.1}

    def rates(callbacks) -> list[float]:
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
        seen = []
        for cb in callbacks:
            cb.set_model(model)
        callbacks[0].on_train_begin()
        for epoch, loss in enumerate(losses):
            if epoch == 5 and len(callbacks) > 1:  # a resume: a new callback, the saved state
                callbacks[1].initial_state = callbacks[0].state()
                callbacks.pop(0).on_train_end()
                callbacks[0].on_train_begin()
            callbacks[0].on_epoch_end(epoch, {"loss": loss})
            seen.append(float(model.optimizer.learning_rate))
        return seen

    mine = rates([ResumableReduceLROnPlateau(**settings)])
    theirs = rates([keras.callbacks.ReduceLROnPlateau(**settings)])
    resumed = rates([ResumableReduceLROnPlateau(**settings), ResumableReduceLROnPlateau(**settings)])
    assert mine == theirs == resumed
    # Two epochs without a new best (0.95, 0.93) halve it; 0.89 is one; the floor is min_lr.
    assert mine == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125]


@pytest.mark.slow  # the shared runs train six small models
def test_reduce_on_plateau_lowers_the_rate_in_a_run(runs):
    h = history(runs["plateau"])
    rates, losses = h["learning_rate"], h["loss"]
    assert rates[0] == 0.5 and min(rates) < 0.5
    for epoch in range(1, len(rates)):  # patience 1: a cut follows an epoch with no new best
        if rates[epoch] < rates[epoch - 1]:
            assert rates[epoch] == pytest.approx(rates[epoch - 1] * 0.5)
            assert losses[epoch - 1] >= min(losses[:epoch - 1]) - 1e-4


@pytest.mark.slow  # the shared runs train six small models
def test_a_resumed_run_keeps_the_plateau_state(runs):
    whole, resumed = history(runs["plateau"]), history(runs["resumed"])
    assert len(resumed["epoch"]) == len(whole["epoch"]) == 10
    assert resumed["learning_rate"] == whole["learning_rate"]
    np.testing.assert_allclose(resumed["loss"], whole["loss"], rtol=1e-5)
    assert whole["learning_rate"][5] != whole["learning_rate"][-1]  # cut after the resume too
    metrics = json.loads((runs["resumed"] / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == 5


# --- bad configs and teaching warnings -----------------------------------------------------


@pytest.mark.parametrize(("training", "where", "message"), [
    ("lr_schedule: cosin", "training.lr_schedule.name", "did you mean 'cosine'"),
    ("lr_schedule: {name: cosine, decay_rate: 0.5}", "training.lr_schedule.decay_rate",
     "does not apply to lr_schedule 'cosine'"),
    ("lr_schedule: {name: exponential, decay_rate: 1.5}", "training.lr_schedule.decay_rate",
     "less than 1"),
    ("lr_schedule: {name: cosine, min_lr: 0.5}", "training.lr_schedule",
     "must be below training.learning_rate"),
    ("lr_schedule: {name: reduce_on_plateau, monitor: val_los}",
     "training.lr_schedule.monitor", "did you mean 'val_loss'"),
    ("lr_schedule: {name: reduce_on_plateau, monitor: val_mae}",
     "training.lr_schedule.monitor", "not a computed metric"),
    ("lr_schedule: {decay_rate: 0.5}", "training.lr_schedule.name", "missing required key"),
    ("clipvalue: 1.0\n  clipnorm: 1.0", "training.clipvalue", "not both"),
    ("clipnorm: -1", "training.clipnorm", "greater than 0"),
])
def test_bad_settings_exit_2_at_their_line(tmp_path, training, where, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"data: {{dataset: iris}}\nmodel: {{batch_norm: true}}\n"
                    f"training:\n  learning_rate: 0.01\n  {training}\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 2, result.output
    assert f"{path}:5:" in result.stderr and where in result.stderr and message in result.stderr
    assert "Traceback" not in result.output


def test_batch_norm_must_be_a_boolean(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {dataset: iris}\nmodel:\n  layers:\n    - {units: 4, batch_norm: sure}\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 2
    assert f"{path}:4:" in result.stderr and "model.layers[0].batch_norm" in result.stderr


@pytest.mark.parametrize(("training", "key", "message"), [
    ({"epochs": 10, "lr_schedule": {"name": "exponential", "decay_epochs": 40}},
     "training.lr_schedule.decay_epochs", "ends at 84% of learning_rate"),
    ({"epochs": 10, "lr_schedule": {"name": "cosine", "warmup_epochs": 10}},
     "training.lr_schedule.warmup_epochs", "before it reaches learning_rate"),
    ({"epochs": 10, "lr_schedule": {"name": "cosine", "decay_epochs": 20}},
     "training.lr_schedule.decay_epochs", "the rate ends at 0.0005, not min_lr 0"),
    ({"epochs": 10, "lr_schedule": {"name": "reduce_on_plateau", "patience": 10}},
     "training.lr_schedule.patience", "never reduced"),
    ({"epochs": 50, "early_stopping": 5, "lr_schedule": "reduce_on_plateau"},
     "training.lr_schedule.patience", "training stops before the rate is ever reduced"),
])
def test_lint_says_when_a_schedule_cannot_do_its_work(training, key, message):
    from dlrecap.config.lint import lint

    config = Config.model_validate({"data": {"dataset": "iris"}, "training": training})
    assert any(k == key and message in m for k, m in lint(config)), lint(config)


def test_lint_says_clipping_acts_per_replica_under_a_strategy():
    from dlrecap.config.lint import lint

    config = Config.model_validate({"data": {"dataset": "iris"}, "training": {
        "clipnorm": 1.0, "distribute": "mirrored"}})
    assert [k for k, m in lint(config) if "replica's share" in m] == ["training.clipnorm"]
    config = Config.model_validate({"data": {"dataset": "iris"}, "training": {"clipnorm": 1.0}})
    assert not [k for k, m in lint(config) if "replica's share" in m]


def test_lint_is_quiet_about_a_schedule_that_fits():
    from dlrecap.config.lint import lint

    config = Config.model_validate({"data": {"dataset": "iris"}, "training": {
        "epochs": 100, "lr_schedule": {"name": "cosine", "warmup_epochs": 5}}})
    assert not [k for k, _ in lint(config) if k.startswith("training.lr_schedule")]


def test_model_batch_norm_that_every_layer_overrides_has_no_effect():
    from dlrecap.config.lint import lint

    config = Config.model_validate({"data": {"dataset": "iris"}, "model": {
        "batch_norm": True, "layers": [{"units": 4, "batch_norm": False}]}})
    assert ("model.batch_norm", "has no effect: every layer sets its own batch_norm "
            "(remove batch_norm from the layers to let this one apply)") in lint(config)


def test_the_json_schema_takes_a_bare_schedule_name_or_its_section():
    schema = Config.model_json_schema()
    forms = schema["$defs"]["TrainingConfig"]["properties"]["lr_schedule"]["anyOf"]
    assert {"enum": ["constant", "exponential", "cosine", "reduce_on_plateau"]} in forms
    assert {"$ref": "#/$defs/LrScheduleConfig"} in forms
    assert set(schema["$defs"]["LrScheduleConfig"]["properties"]) == {
        "name", "decay_rate", "decay_epochs", "min_lr", "warmup_epochs", "factor", "patience",
        "monitor"}


@pytest.mark.parametrize(("schedule", "decay_steps"), [
    ({"name": "cosine"}, 6 * 4),  # decays over every epoch by default
    ({"name": "cosine", "warmup_epochs": 2}, (6 - 2) * 4),  # over the epochs after the warmup
    ({"name": "cosine", "decay_epochs": 0.01}, 1),  # less than a step: one step
])
def test_cosine_decays_over_the_epochs_left_in_whole_steps(tmp_path, schedule, decay_steps):
    from dlrecap.model import make_optimizer

    config = load_config(write_config(tmp_path, "c", lr_schedule=schedule)).config
    built = make_optimizer(config, steps_per_epoch=4)._learning_rate
    assert built.decay_steps == decay_steps
    assert float(built(decay_steps + built.warmup_steps)) == pytest.approx(
        config.training.lr_schedule.setting("min_lr"), abs=1e-9)
