"""Tests for dlrecap.train.health: dead and saturated units, gradient norms, warnings, the CSV."""

from __future__ import annotations

import csv

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from dlrecap.train.health import COLUMNS, MAX_ROWS, HealthMonitor  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 3)).astype("float32")
Y = (X[:, :1] > 0).astype("float32")


def stack(*layers, inputs: int = 3) -> keras.Model:
    """A plain stack like dlrecap's builder makes: Input -> layers -> sigmoid output."""
    x = first = keras.Input(shape=(inputs,))
    for layer in layers:
        x = layer(x)
    out = keras.layers.Dense(1, activation="sigmoid", name="output")(x)
    return keras.Model(first, out)


def run_epochs(model, monitor, epochs: int = 1):
    """Drive the monitor the way a custom loop (like dlrecap's fast engine) does."""
    hooks = keras.callbacks.CallbackList([monitor], model=model)
    hooks.on_train_begin()
    for epoch in range(epochs):
        hooks.on_epoch_begin(epoch)
        hooks.on_epoch_end(epoch, {"loss": 0.5})
    hooks.on_train_end()
    return monitor


def direct_grad_norms(model, x) -> list[float]:
    """Each Dense layer's gradient norm (kernel and bias together), computed the plain way."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.binary_crossentropy(Y, model(x, training=False)))
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    grads = tape.gradient(loss, [v for layer in dense for v in (layer.kernel, layer.bias)])
    return [float(np.sqrt(np.sum(grads[2 * i] ** 2) + np.sum(grads[2 * i + 1] ** 2)))
            for i in range(len(dense))]


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_dead_relu_layer_is_measured_and_warned(tmp_path):
    # A bias of -100 keeps every unit of layer 2 below zero for inputs of this size.
    model = stack(keras.layers.Dense(8, activation="relu", name="hidden_1"),
                  keras.layers.Dense(6, activation="relu", name="hidden_2",
                                     bias_initializer=keras.initializers.Constant(-100.0)))
    monitor = run_epochs(model, HealthMonitor(X, tmp_path / "d.csv", y_sample=Y,
                                              loss_fn="binary_crossentropy"))
    rows = {r["layer"]: r for r in monitor.rows}
    assert rows["2"]["dead_share"] == 1.0
    assert rows["1"]["dead_share"] < 0.5
    assert monitor.warnings == ["layer 2: 100% of ReLU units never activate (epoch 1); "
                                "try a lower learning rate or leaky_relu"]


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_saturated_units_are_measured_and_warned(tmp_path, activation):
    big = keras.initializers.Constant(50.0)
    model = stack(keras.layers.Dense(4, activation=activation, kernel_initializer=big,
                                     bias_initializer=big, name="hidden_1"))
    x = np.abs(X) + 0.5  # every pre-activation is far from zero
    monitor = run_epochs(model, HealthMonitor(x, tmp_path / "d.csv"))
    assert monitor.rows[0]["saturated_share"] == 1.0
    assert monitor.rows[0]["dead_share"] is None
    assert len(monitor.warnings) == 1
    assert monitor.warnings[0].startswith(f"layer 1: 100% of {activation} units are saturated")


def test_healthy_network_gives_no_warning_and_the_output_is_not_judged(tmp_path):
    keras.utils.set_random_seed(1)
    model = stack(keras.layers.Dense(16, activation="relu", name="hidden_1"),
                  keras.layers.Dense(8, activation="tanh", name="hidden_2"))
    monitor = run_epochs(model, HealthMonitor(X, tmp_path / "d.csv", y_sample=Y,
                                              loss_fn="binary_crossentropy"))
    assert monitor.warnings == []
    output = monitor.rows[-1]
    assert output["layer"] == "output" and output["saturated_share"] is None
    assert 0 <= monitor.rows[0]["dead_share"] < 0.5
    assert monitor.rows[1]["saturated_share"] < 0.5


def test_gradient_norms_match_a_direct_computation(tmp_path):

    keras.utils.set_random_seed(2)
    model = stack(keras.layers.Dense(5, activation="relu", name="hidden_1"),
                  keras.layers.Dropout(0.5), keras.layers.Dense(3, activation="tanh"))
    monitor = run_epochs(model, HealthMonitor(X, tmp_path / "d.csv", y_sample=Y,
                                              loss_fn="binary_crossentropy"))
    expected = direct_grad_norms(model, X)
    got = [r["grad_norm"] for r in monitor.rows]
    assert [r["layer"] for r in monitor.rows] == ["1", "2", "output"]
    assert got == pytest.approx(expected, rel=1e-4)
    assert all(g > 0 for g in got)


def test_csv_gets_one_row_per_layer_and_epoch_during_fit(tmp_path):
    keras.utils.set_random_seed(3)
    model = stack(keras.layers.Dense(4, activation="relu", name="hidden_1"))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    path = tmp_path / "diagnostics.csv"
    monitor = HealthMonitor(X, path, y_sample=Y, loss_fn="binary_crossentropy")
    model.fit(X, Y, epochs=3, batch_size=16, verbose=0, callbacks=[monitor])
    rows = read(path)
    assert list(rows[0]) == COLUMNS
    assert [(r["epoch"], r["layer"]) for r in rows] == [
        (str(e), layer) for e in (1, 2, 3) for layer in ("1", "output")]
    assert all(float(r["grad_norm"]) > 0 for r in rows)
    assert rows[0]["saturated_share"] == "" and rows[0]["dead_share"] != ""


def test_every_n_epochs_and_append(tmp_path):
    model = stack(keras.layers.Dense(4, activation="relu"))
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    path = tmp_path / "d.csv"
    model.fit(X, Y, epochs=5, verbose=0,
              callbacks=[HealthMonitor(X, path, y_sample=Y, loss_fn="binary_crossentropy",
                                       every=2)])
    assert sorted({int(r["epoch"]) for r in read(path)}) == [2, 4, 5]  # the last one always
    monitor = HealthMonitor(X, path, append=True)
    monitor.set_model(model)
    monitor.on_train_begin()
    monitor.on_epoch_end(5)
    rows = read(path)
    assert [int(r["epoch"]) for r in rows][-2:] == [6, 6]
    assert rows[-1]["grad_norm"] == ""  # no targets given: no gradients


def test_warnings_are_deduplicated_and_reported_as_they_appear(tmp_path):
    seen = []
    model = stack(keras.layers.Dense(6, activation="relu",
                                     bias_initializer=keras.initializers.Constant(-100.0)))
    monitor = run_epochs(model, HealthMonitor(X, tmp_path / "d.csv", on_warning=seen.append),
                         epochs=4)
    assert len(monitor.rows) == 8
    assert len(monitor.warnings) == 1 and seen == monitor.warnings


def test_vanishing_and_exploding_gradients_are_named(tmp_path):
    monitor = HealthMonitor(X, tmp_path / "d.csv")

    def row(layer, norm):
        return {"epoch": 7, "layer": layer, "name": layer, "activation": "sigmoid", "units": 4,
                "dead_share": None, "saturated_share": 0.0, "grad_norm": norm}

    monitor._judge(7, [row("1", 1e-9), row("2", 0.5), row("output", 0.2)])
    assert len(monitor.warnings) == 1
    assert monitor.warnings[0].startswith("layer 1: gradient norm 1e-09 is 5e-09 of the output")
    monitor._judge(8, [row("1", 3e5), row("2", 0.5), row("output", 0.2)])
    assert monitor.warnings[1].startswith("layer 1: gradient norm 3e+05 (epoch 8): gradients explode")


def test_a_model_that_is_not_a_plain_stack_is_skipped_with_a_warning(tmp_path):
    inputs = keras.Input(shape=(3,))
    hidden = keras.layers.Dense(3, activation="relu")(inputs)
    joined = keras.layers.Add()([inputs, hidden])  # a skip connection
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(joined))
    path = tmp_path / "d.csv"
    monitor = run_epochs(model, HealthMonitor(X, path, y_sample=Y, loss_fn="binary_crossentropy"))
    assert monitor.rows == [] and not path.exists()
    assert monitor.warnings == ["diagnostics skipped: the model is not a plain stack of Dense "
                                "layers"]


def test_a_failing_probe_switches_itself_off_instead_of_ending_training(tmp_path):
    model = stack(keras.layers.Dense(4, activation="relu"))

    def broken_loss(y_true, y_pred):
        raise ValueError("shapes do not match")

    monitor = run_epochs(model, HealthMonitor(X, tmp_path / "d.csv", y_sample=Y,
                                              loss_fn=broken_loss), epochs=3)
    assert monitor.rows == []
    assert monitor.warnings == ["diagnostics stopped in epoch 1: ValueError: shapes do not match"]


def test_large_samples_are_cut_to_max_rows(tmp_path):
    x = np.arange(3000, dtype="float32").reshape(1000, 3)
    monitor = HealthMonitor(x, tmp_path / "d.csv", y_sample=np.arange(1000), loss_fn="mse")
    assert len(monitor.x) == len(monitor.y) == MAX_ROWS
    # rows stay paired with their targets
    assert np.array_equal(monitor.x[:, 0] / 3, monitor.y.astype("float32"))


def test_a_model_taking_a_dict_of_columns_is_probed_after_its_preprocessing(tmp_path):

    keras.utils.set_random_seed(4)
    colour = np.array([["red"], ["blue"], ["red"], ["green"]] * 16, dtype=object)
    x = {"a": X[:, :1], "b": X[:, 1:2], "colour": colour}
    inputs = {"a": keras.Input(shape=(1,), name="a"), "b": keras.Input(shape=(1,), name="b"),
              "colour": keras.Input(shape=(1,), dtype="string", name="colour")}
    lookup = keras.layers.StringLookup(vocabulary=["red", "blue", "green"], output_mode="one_hot")
    joined = keras.layers.Concatenate()([inputs["a"], inputs["b"], lookup(inputs["colour"])])
    hidden = keras.layers.Dense(5, activation="relu", name="hidden_1")(joined)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="output")(hidden))
    path = tmp_path / "d.csv"
    monitor = run_epochs(model, HealthMonitor(x, path, y_sample=Y, loss_fn="binary_crossentropy"))
    assert monitor.warnings == []
    assert [r["layer"] for r in monitor.rows] == ["1", "output"]
    assert [r["grad_norm"] for r in monitor.rows] == pytest.approx(direct_grad_norms(model, x),
                                                                    rel=1e-4)
    assert [(r["epoch"], r["layer"]) for r in read(path)] == [("1", "1"), ("1", "output")]
