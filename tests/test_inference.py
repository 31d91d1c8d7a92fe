"""The NumPy inference path against Keras: every supported layer and activation, to 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

from dlrecap.inference import ACTIVATIONS, Unsupported, load_light

keras = pytest.importorskip("keras")

RNG = np.random.default_rng(0)
X = (RNG.normal(size=(64, 3)) * 3).astype("float32")  # wide enough to reach every activation's tails


def saved(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    return path


def assert_same(model, path, x):
    light = load_light(path)
    expected = np.asarray(model(x, training=False))
    np.testing.assert_allclose(light(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", sorted(set(ACTIVATIONS) - {"softmax"}))
def test_each_hidden_activation(tmp_path, activation):
    inputs = keras.Input((3,), name="features")
    x = keras.layers.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.0, 9.0])(inputs)
    x = keras.layers.Dense(7, activation=activation, name="hidden_1")(x)
    x = keras.layers.Dropout(0.5, name="dropout_1")(x)
    x = keras.layers.Dense(5, activation=activation, name="hidden_2")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="output")(x)
    model = keras.Model(inputs, outputs)
    assert_same(model, saved(model, tmp_path), X)


@pytest.mark.parametrize("output", ["sigmoid", "linear", "softmax"])
def test_output_heads_and_the_target_rescaling(tmp_path, output):
    inputs = keras.Input((3,), name="features")
    x = keras.layers.Dense(4, activation="tanh")(inputs)
    x = keras.layers.Dense(1 if output != "softmax" else 3, activation=output, name="output")(x)
    if output == "linear":  # a regression target standardized in training, mapped back
        x = keras.layers.Rescaling(scale=2500.0, offset=30000.0, name="target")(x)
    model = keras.Model(inputs, x)
    assert_same(model, saved(model, tmp_path), X)


def test_batch_normalization_in_inference_mode(tmp_path):
    inputs = keras.Input((3,))
    x = keras.layers.Dense(6)(inputs)
    norm = keras.layers.BatchNormalization(epsilon=0.01)
    x = keras.layers.Activation("relu")(norm(x))
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    # Moving statistics away from their initial 0 and 1, as after training.
    gamma, beta, mean, variance = norm.get_weights()
    norm.set_weights([gamma * 1.5, beta + 0.3, mean + 0.7, variance * 2.0])
    assert_same(model, saved(model, tmp_path), X)


def test_the_batch_normalized_layers_dlrecap_builds(tmp_path):
    from dlrecap.config.schema import Config
    from dlrecap.data import load_splits
    from dlrecap.model import build_model, plan_head

    config = Config.model_validate({"data": {"dataset": "iris"}, "model": {
        "batch_norm": True, "activation": "tanh", "dropout": 0.2,
        "layers": [5, {"units": 4, "batch_norm": False}, {"units": 3, "activation": "relu"}]}})
    splits = load_splits(config.data, config.seed)
    model = build_model(config, splits, plan_head(config, splits.task, splits.n_classes))
    assert [type(layer).__name__ for layer in model.layers[2:5]] == [
        "Dense", "BatchNormalization", "Activation"]
    for i in (1, 3):  # moving statistics and scale away from their initial values
        norm = model.get_layer(f"batch_norm_{i}")
        gamma, beta, mean, variance = norm.get_weights()
        norm.set_weights([gamma * 1.5, beta + 0.3, mean + 0.7, variance * 2.0])
    assert_same(model, saved(model, tmp_path), splits.x_test.astype("float32"))


def test_text_columns_with_the_unknown_slot_and_the_weight_penalty(tmp_path):
    inputs = {"area": keras.Input((1,), name="area"), "rooms": keras.Input((1,), name="rooms"),
              "district": keras.Input((1,), dtype="string", name="district")}
    numeric = keras.layers.Concatenate(name="numeric")([inputs["area"], inputs["rooms"]])
    numeric = keras.layers.Normalization(mean=[70.0, 2.5], variance=[600.0, 1.0])(numeric)
    lookup = keras.layers.StringLookup(vocabulary=["centre", "river"], output_mode="one_hot",
                                       name="categories_2")(inputs["district"])
    x = keras.layers.Concatenate(name="features")([numeric, lookup])
    penalty = keras.regularizers.L1L2(l1=0.01, l2=0.02)
    x = keras.layers.Dense(4, activation="relu", kernel_regularizer=penalty)(x)
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_regularizer=penalty)(x))
    rows = {"area": np.array([[50.0], [90.0], [70.0]], dtype="float32"),
            "rooms": np.array([[1.0], [4.0], [2.0]], dtype="float32"),
            "district": np.array([["centre"], ["harbour"], ["river"]], dtype=object)}
    path = saved(model, tmp_path)
    light = load_light(path)
    import tensorflow as tf

    expected = np.asarray(model.predict(tf.data.Dataset.from_tensor_slices(
        {k: v.astype(str) if v.dtype == object else v for k, v in rows.items()}).batch(8), verbose=0))
    np.testing.assert_allclose(light(rows), expected, rtol=1e-5, atol=1e-5)
    assert light.vocabularies == {"categories_2": ["centre", "river"]}
    keras_penalty = float(sum(np.asarray(loss) for loss in model.losses))
    assert light.weight_penalty() == pytest.approx(keras_penalty, rel=1e-5)


def test_an_unknown_layer_is_unsupported(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GaussianNoise(0.1)(inputs)))
    with pytest.raises(Unsupported, match="GaussianNoise"):
        load_light(saved(model, tmp_path))
