"""`dlrecap step`: its NumPy numbers against TensorFlow's GradientTape and Keras' optimizers.

The reference side uses only dlrecap's model builder, Keras' own loss (`compute_loss`,
regularization included) and `dlrecap.model.make_optimizer`; nothing of `dlrecap.step`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlrecap.config.load import load_config
from dlrecap.step import Step, from_config

from helpers import invoke

ROOT = Path(__file__).resolve().parent.parent
RTOL, ATOL = 1e-5, 1e-6
OPTIMIZERS = {
    "sgd": ["training.optimizer=sgd"],
    "momentum": ["training.optimizer=sgd", "training.momentum=0.9"],
    "adam": ["training.optimizer=adam"],
}
# xor with tanh (binary cross-entropy); iris with two relu layers, l1 and l2 (softmax and
# sparse categorical cross-entropy); sine with dropout (mse on standardized targets); iris
# with mae.
CASES = {
    "xor": ("configs/xor.yaml", []),
    "iris": ("configs/iris.yaml", ["model.layers=[6,5]", "model.activation=relu",
                                   "model.l2=0.01", "model.l1=0.001",
                                   "training.learning_rate=0.1"]),
    "sine": ("configs/sine_mse.yaml", ["model.layers=[5,4]", "model.dropout=0.3",
                                       "data.samples=100", "training.learning_rate=0.05"]),
    # mae on one-hot targets after a softmax: the softmax's Jacobian, and gelu's erf
    "iris_mae": ("configs/iris.yaml", ["training.loss=mae", "model.layers=[4]",
                                       "model.activation=gelu"]),
    # every other hidden activation, one layer each
    "activations": ("configs/iris.yaml", ["model.layers=[" + ", ".join(
        f"{{units: 4, activation: {name}}}" for name in (
            "selu", "mish", "relu6", "hard_sigmoid", "softsign", "softplus", "elu", "swish",
            "silu", "leaky_relu", "sigmoid", "linear", "exponential")) + "]"]),
}


def keras_reference(loaded, step: Step, seed: int) -> dict[str, list[np.ndarray] | float]:
    """The same step by TensorFlow: the model from dlrecap's builder, tape, Keras optimizer."""
    import keras
    import tensorflow as tf

    from dlrecap.model import build_model, encode_targets, make_optimizer, target_scale
    from dlrecap.pipeline import load_data

    config = loaded.config
    splits, head = load_data(loaded)
    with tf.device("/CPU:0"):
        keras.utils.set_random_seed(seed)
        model = build_model(config, splits, head)
        optimizer = make_optimizer(config)
        model.compile(optimizer=optimizer, loss=head.loss)
        target = encode_targets(step.y, head, target_scale(config, splits))
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        x = tf.constant(step.x_raw)
        zs, acts = [], []
        with tf.GradientTape() as tape:
            a = model.get_layer("standardize")(x)
            for layer, ours in zip(dense, step.layers, strict=True):
                z = tf.matmul(a, layer.kernel) + layer.bias
                a = layer.activation(z)
                zs.append(z.numpy())
                acts.append(a.numpy())
                if ours.mask is not None:  # the step's mask, scaled as Keras' Dropout scales
                    a = a * (1 / (1 - ours.rate)) * ours.mask
            if all(layer.mask is None for layer in step.layers):
                np.testing.assert_allclose(a.numpy(), model(x, training=True).numpy(),
                                           rtol=RTOL, atol=ATOL)
            loss = model.compute_loss(x=x, y=tf.constant(target), y_pred=a, training=True)
        weights = model.trainable_weights
        grads = tape.gradient(loss, weights)
        optimizer.apply_gradients(zip(grads, weights, strict=True))
        return {"z": zs, "a": acts, "loss": float(loss), "grads": [g.numpy() for g in grads],
                "new": [w.numpy() for w in weights]}


@pytest.fixture(scope="module")
def pairs():
    """(step, keras) for every case and optimizer, each from the same seed."""
    out = {}
    for case, (path, sets) in CASES.items():
        for name, opt in OPTIMIZERS.items():
            loaded = load_config(ROOT / path, [*sets, *opt])
            seed = 3
            step = from_config(loaded, batch=8, seed=seed, dropout=case == "sine")
            out[case, name] = step, keras_reference(loaded, step, seed)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_step_equals_tensorflow(pairs, case, optimizer):
    step, ref = pairs[case, optimizer]
    close = {"rtol": RTOL, "atol": ATOL}
    for i, layer in enumerate(step.layers):
        np.testing.assert_allclose(layer.z, ref["z"][i], **close, err_msg=f"z{i + 1}")
        np.testing.assert_allclose(layer.a, ref["a"][i], **close, err_msg=f"a{i + 1}")
    np.testing.assert_allclose(step.total_loss, ref["loss"], **close, err_msg="loss")
    ours_grads = [g for layer in step.layers for g in (layer.grad_w, layer.grad_b)]
    ours_new = [w for layer in step.layers for w in (layer.new_w, layer.new_b)]
    for i, (g, r) in enumerate(zip(ours_grads, ref["grads"], strict=True)):
        np.testing.assert_allclose(g, r, **close, err_msg=f"gradient {i}")
    for i, (w, r) in enumerate(zip(ours_new, ref["new"], strict=True)):
        np.testing.assert_allclose(w, r, **close, err_msg=f"updated weight {i}")
    # The step did move the weights: a test of updates must not pass on a no-op.
    assert not np.allclose(ours_new[0], step.layers[0].w)


@pytest.mark.slow
def test_cases_cover_what_they_claim(pairs):
    iris, _ = pairs["iris", "adam"]
    assert iris.loss == "sparse_categorical_crossentropy" and iris.penalty > 0
    assert [layer.activation for layer in iris.layers] == ["relu", "relu", "softmax"]
    sine, _ = pairs["sine", "momentum"]
    assert sine.loss == "mse" and all(layer.mask is not None for layer in sine.layers[:-1])
    assert 0 < sine.layers[0].mask.mean() < 1
    zoo, _ = pairs["activations", "adam"]
    assert len({layer.activation for layer in zoo.layers}) == 14
    assert np.abs(zoo.layers[0].grad_w).max() > 0  # the gradient reached the first layer
    xor, _ = pairs["xor", "sgd"]
    assert xor.loss == "binary_crossentropy" and xor.layers[0].activation == "tanh"
    assert xor.layers[0].slots == {} and set(pairs["xor", "adam"][0].layers[0].slots) == {"m", "v"}


def test_step_prints_the_formulas():
    result = invoke("step", str(ROOT / "configs/xor.yaml"), "--batch", "3", "--seed", "1")
    assert result.exit_code == 0, result.output
    for text in ("z1 = x̂ W1 + b1", "a1 = tanh(z1)", "δ2 = dJ/dz2 = (p - t) / n",
                 "dJ/dW1 = x̂ᵀ δ1", "lr_t = lr * sqrt(1 - β2^t) / (1 - β1^t)", "W1 new  (2x8)",
                 "target t  (3x1)"):
        assert text in result.stdout, text
    assert "…" in result.stdout  # W1 has 8 columns: cut to 6 and an ellipsis
    plain = invoke("step", str(ROOT / "configs/sine_mse.yaml"), "--batch", "2",
                   "--set", "data.standardize=false")
    assert plain.exit_code == 0, plain.output
    assert "x̂ = x (data.standardize is off)" in plain.stdout and "x̂  (" not in plain.stdout
    assert "t = (y - mean) / std of the training targets" in plain.stdout


@pytest.mark.parametrize("sets, key", [
    (["training.optimizer=rmsprop"], "training.optimizer"),
    (["training.loss=huber", "data.dataset=sine"], "training.loss"),
    (["model.output_activation=tanh"], "model.output_activation"),
])
def test_what_the_step_cannot_show_is_refused(sets, key):
    args = [a for s in sets for a in ("--set", s)]
    result = invoke("step", str(ROOT / "configs/xor.yaml"), *args)
    assert result.exit_code == 2, result.output
    assert key in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""


def test_step_flags_that_change_nothing_are_named():
    result = invoke("step", str(ROOT / "configs/xor.yaml"), "--batch", "100000", "--dropout",
                    "--set", "data.samples=40")
    assert result.exit_code == 0, result.output
    assert "--batch 100000: the training split has 24 rows" in result.stderr
    assert "--dropout has no effect" in result.stderr
    assert "24 training rows" in result.stdout



@pytest.mark.parametrize("model, training, key", [
    ({"batch_norm": True}, {}, "model.batch_norm"),
    ({"layer_norm": True}, {}, "model.layers[1].batch_norm"),
    ({}, {"lr_schedule": "cosine"}, "training.lr_schedule"),
    ({}, {"clipnorm": 1.0}, "training.clipnorm"),
    ({}, {"class_weight": "balanced"}, "training.class_weight"),
])
def test_settings_of_newer_configs_are_refused_by_key(model, training, key):
    # Batch normalization, schedules and clipping are keys of newer configs: the step reads
    # them with getattr, so they are stood in for here by plain objects.
    from types import SimpleNamespace

    from dlrecap.step import _refuse_newer_settings

    layers = [SimpleNamespace(), SimpleNamespace(batch_norm=model.pop("layer_norm", None))]
    schedule = SimpleNamespace(name=training.pop("lr_schedule", "constant"))
    config = SimpleNamespace(model=SimpleNamespace(layers=layers, **model),
                             training=SimpleNamespace(lr_schedule=schedule, **training))
    refused = []
    _refuse_newer_settings(config, lambda message, k, fix: refused.append(k))
    assert refused[:1] == [key]
    plain = SimpleNamespace(model=SimpleNamespace(layers=[SimpleNamespace()]),
                            training=SimpleNamespace())
    _refuse_newer_settings(plain, lambda message, k, fix: refused.append("plain " + k))
    assert not any(r.startswith("plain") for r in refused)
