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
    # batch normalization on every hidden layer, and on one layer of two (with l2)
    "xor_bn": ("configs/xor.yaml", ["model.batch_norm=true", "model.layers=[4,3]"]),
    "iris_bn_layer": ("configs/iris.yaml", ["model.layers=[{units: 6, batch_norm: true}, 5]",
                                            "model.activation=tanh", "model.l2=0.01"]),
}
BATCH_NORM = ("xor_bn", "iris_bn_layer")


def params(layer) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(gradients, updated values) of one step layer, in Keras' trainable_weights order."""
    grads, new = [layer.grad_w], [layer.new_w]
    if layer.bn is None:
        return [*grads, layer.grad_b], [*new, layer.new_b]
    return [*grads, layer.bn.grad_gamma, layer.bn.grad_beta], [*new, layer.bn.new_gamma,
                                                                 layer.bn.new_beta]


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
        zs, acts, normed = [], [], []
        with tf.GradientTape() as tape:
            a = model.get_layer("standardize")(x)
            for k, (layer, ours) in enumerate(zip(dense, step.layers, strict=True), start=1):
                z = tf.matmul(a, layer.kernel) + (layer.bias if layer.use_bias else 0)
                zs.append(z.numpy())
                if layer.use_bias:
                    a = layer.activation(z)
                else:  # Keras' own BatchNormalization in training mode, then the activation
                    y = model.get_layer(f"batch_norm_{k}")(z, training=True)
                    normed.append(y.numpy())
                    a = model.get_layer(f"activation_{k}")(y)
                acts.append(a.numpy())
                if ours.mask is not None:  # the step's mask, scaled as Keras' Dropout scales
                    a = a * (1 / (1 - ours.rate)) * ours.mask
            moving = [(bn.moving_mean.numpy(), bn.moving_variance.numpy()) for bn in model.layers
                      if isinstance(bn, keras.layers.BatchNormalization)]
            if all(layer.mask is None for layer in step.layers):
                np.testing.assert_allclose(a.numpy(), model(x, training=True).numpy(),
                                           rtol=RTOL, atol=ATOL)
            loss = model.compute_loss(x=x, y=tf.constant(target), y_pred=a, training=True)
        weights = model.trainable_weights
        grads = tape.gradient(loss, weights)
        optimizer.apply_gradients(zip(grads, weights, strict=True))
        return {"z": zs, "a": acts, "y": normed, "moving": moving, "loss": float(loss),
                "grads": [g.numpy() for g in grads], "new": [w.numpy() for w in weights]}


def keras_train_step(loaded, step: Step, seed: int) -> dict[str, list[np.ndarray]]:
    """One `train_on_batch` of the step's rows: the weights and moving statistics after it."""
    import keras
    import tensorflow as tf

    from dlrecap.model import build_model, encode_targets, make_optimizer, target_scale
    from dlrecap.pipeline import load_data

    config = loaded.config
    splits, head = load_data(loaded)
    with tf.device("/CPU:0"):
        keras.utils.set_random_seed(seed)
        model = build_model(config, splits, head)
        model.compile(optimizer=make_optimizer(config), loss=head.loss)
        model.train_on_batch(step.x_raw, encode_targets(step.y, head, target_scale(config, splits)))
        return {"new": [w.numpy() for w in model.trainable_weights],
                "moving": [(bn.moving_mean.numpy(), bn.moving_variance.numpy())
                           for bn in model.layers if isinstance(bn, keras.layers.BatchNormalization)]}


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
            if case in BATCH_NORM:
                out[case, name, "train"] = keras_train_step(loaded, step, seed)
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
    normed = [layer.bn for layer in step.layers if layer.bn is not None]
    for i, (bn, y) in enumerate(zip(normed, ref["y"], strict=True)):
        np.testing.assert_allclose(bn.y, y, **close, err_msg=f"batch norm {i + 1}: y")
    np.testing.assert_allclose(step.total_loss, ref["loss"], **close, err_msg="loss")
    ours_grads = [g for layer in step.layers for g in params(layer)[0]]
    ours_new = [w for layer in step.layers for w in params(layer)[1]]
    for i, (g, r) in enumerate(zip(ours_grads, ref["grads"], strict=True)):
        np.testing.assert_allclose(g, r, **close, err_msg=f"gradient {i}")
    for i, (w, r) in enumerate(zip(ours_new, ref["new"], strict=True)):
        np.testing.assert_allclose(w, r, **close, err_msg=f"updated weight {i}")
    # The step did move the weights: a test of updates must not pass on a no-op.
    assert not np.allclose(ours_new[0], step.layers[0].w)


@pytest.mark.slow
@pytest.mark.parametrize("case", BATCH_NORM)
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_batch_norm_equals_a_keras_train_step(pairs, case, optimizer):
    """The moving statistics and the weights after one `train_on_batch` of the same rows."""
    step, ref = pairs[case, optimizer]
    train = pairs[case, optimizer, "train"]
    close = {"rtol": RTOL, "atol": ATOL}
    normed = [layer.bn for layer in step.layers if layer.bn is not None]
    assert normed and len(train["moving"]) == len(normed) == len(ref["moving"])
    for i, bn in enumerate(normed):
        for ours, name in ((bn.new_moving_mean, "mean"), (bn.new_moving_var, "variance")):
            for theirs in (train["moving"][i], ref["moving"][i]):
                np.testing.assert_allclose(ours, theirs[name == "variance"], **close,
                                           err_msg=f"batch norm {i + 1}: moving {name}")
        assert not np.allclose(bn.new_moving_mean, bn.moving_mean)
    ours_new = [w for layer in step.layers for w in params(layer)[1]]
    for i, (w, r) in enumerate(zip(ours_new, train["new"], strict=True)):
        np.testing.assert_allclose(w, r, **close, err_msg=f"updated weight {i}")


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
    bn, _ = pairs["xor_bn", "sgd"]
    assert [layer.bn is not None for layer in bn.layers] == [True, True, False]
    assert bn.layers[0].b.size == 0 and bn.layers[0].bn.epsilon == pytest.approx(1e-3)
    one, _ = pairs["iris_bn_layer", "adam"]
    assert [layer.bn is not None for layer in one.layers] == [True, False, False]
    assert one.penalty > 0 and np.abs(one.layers[0].bn.grad_gamma).max() > 0


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
    normed = invoke("step", str(ROOT / "configs/xor.yaml"), "--batch", "4",
                    "--set", "model.batch_norm=true", "--set", "model.layers=[3]")
    assert normed.exit_code == 0, normed.output
    for text in ("z1 = x̂ W1 (no bias)", "ẑ1 = (z1 - μ1) / sqrt(σ²1 + 0.001)", "y1 = γ1 ẑ1 + β1",
                 "a1 = relu(y1)", "μ1  (3)", "σ²1  (3)", "ẑ1  (4x3)", "y1  (4x3)", "dJ/dγ1  (3)",
                 "dJ/dβ1  (3)", "dJ/dz1  (4x3)", "γ1 new  (3)", "β1 new  (3)",
                 "moving_mean <- 0.99 moving_mean + 0.01 μ1", "moving_variance1 new  (3)"):
        assert text in normed.stdout, text
    assert "b1  (" not in normed.stdout and "b2  (1)" in normed.stdout


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
    ({}, {"lr_schedule": "cosine"}, "training.lr_schedule"),
    ({}, {"clipnorm": 1.0}, "training.clipnorm"),
    ({}, {"class_weight": "balanced"}, "training.class_weight"),
])
def test_settings_of_newer_configs_are_refused_by_key(model, training, key):
    # Schedules, clipping and class weights are keys of newer configs: the step reads them
    # with getattr, so they are stood in for here by plain objects. Batch normalization is
    # shown, not refused.
    from types import SimpleNamespace

    from dlrecap.step import _refuse_newer_settings

    layers = [SimpleNamespace(), SimpleNamespace(batch_norm=True)]
    schedule = SimpleNamespace(name=training.pop("lr_schedule", "constant"))
    config = SimpleNamespace(model=SimpleNamespace(layers=layers, **model),
                             training=SimpleNamespace(lr_schedule=schedule, **training))
    refused = []
    _refuse_newer_settings(config, lambda message, k, fix: refused.append(k))
    assert refused[:1] == [key]
    plain = SimpleNamespace(model=SimpleNamespace(layers=[SimpleNamespace(batch_norm=True)],
                                                  batch_norm=True),
                            training=SimpleNamespace())
    _refuse_newer_settings(plain, lambda message, k, fix: refused.append("plain " + k))
    assert not any(r.startswith("plain") for r in refused)
