"""Tests for dlrecap.model: output heads, parameter counts, initializers, regularizers."""

from __future__ import annotations

import numpy as np
import pytest

from dlrecap.config.schema import Config
from dlrecap.data import load_splits
from dlrecap.data.split import Splits
from dlrecap.errors import ConfigError
from dlrecap.model import (
    TARGET_LAYER,
    Head,
    TargetScale,
    build_model,
    encode_targets,
    in_target_units,
    make_optimizer,
    parameter_count,
    plan_head,
    target_scale,
)

keras = pytest.importorskip("keras")


def config(dataset: str = "xor", model: dict | None = None, training: dict | None = None,
           **data) -> Config:
    """A validated config; synthetic sets get few rows to keep the tests quick."""
    if dataset not in ("iris", "wine", "breast_cancer", "digits", "diabetes"):
        data.setdefault("samples", 60)
    return Config.model_validate({
        "name": "t", "data": {"dataset": dataset, **data},
        "model": model or {}, "training": training or {},
    })


def built(cfg: Config):
    splits = load_splits(cfg.data, cfg.seed)
    head = plan_head(cfg, splits.task, splits.n_classes)
    return build_model(cfg, splits, head), splits, head


# --- output heads ------------------------------------------------------------------------


def test_binary_head():
    assert plan_head(config(), "binary", 2) == Head(1, "sigmoid", "binary_crossentropy", False,
                                                   ("accuracy",))


def test_multiclass_head():
    assert plan_head(config("iris"), "multiclass", 3) == Head(
        3, "softmax", "sparse_categorical_crossentropy", False, ("accuracy",))


def test_regression_head():
    assert plan_head(config("linear"), "regression", None) == Head(1, "linear", "mse", False, ("mae",))


@pytest.mark.parametrize("loss", ["mae", "huber"])
def test_regression_head_keeps_the_chosen_loss(loss):
    assert plan_head(config("linear", training={"loss": loss}), "regression", None).loss == loss


def test_categorical_crossentropy_takes_integer_labels():
    head = plan_head(config("iris", training={"loss": "categorical_crossentropy"}), "multiclass", 3)
    assert (head.units, head.activation, head.loss) == (3, "softmax", "sparse_categorical_crossentropy")
    y = np.array([2, 0, 1])
    assert encode_targets(y, head).tolist() == [2, 0, 1]


def test_categorical_crossentropy_on_labels_that_were_strings():
    # Bundled sets arrive as class indices with string label names: the loss never sees strings.
    cfg = config("iris", training={"loss": "categorical_crossentropy"})
    splits = load_splits(cfg.data, cfg.seed)
    assert all(isinstance(name, str) for name in splits.label_names)
    head = plan_head(cfg, splits.task, splits.n_classes)
    encoded = encode_targets(splits.y_train, head)
    assert encoded.dtype == np.int32 and set(encoded.tolist()) == {0, 1, 2}


def test_categorical_crossentropy_on_a_binary_task_is_binary_crossentropy():
    head = plan_head(config(training={"loss": "categorical_crossentropy"}), "binary", 2)
    assert (head.units, head.activation, head.loss) == (1, "sigmoid", "binary_crossentropy")


def test_mse_on_multiclass_one_hot_encodes():
    head = plan_head(config("iris", training={"loss": "mse"}), "multiclass", 3)
    assert (head.units, head.activation, head.loss, head.one_hot) == (3, "softmax", "mse", True)
    assert encode_targets(np.array([2, 0]), head).tolist() == [[0, 0, 1], [1, 0, 0]]


def test_softmax_output_on_a_binary_task_gets_two_units():
    head = plan_head(config(model={"output_activation": "softmax"}), "binary", 2)
    assert (head.units, head.activation) == (2, "softmax")


def test_binary_crossentropy_on_multiclass_is_refused():
    with pytest.raises(ConfigError) as info:
        plan_head(config("iris", training={"loss": "binary_crossentropy"}), "multiclass", 3)
    assert info.value.key == "training.loss"


def test_binary_targets_are_float_columns():
    head = plan_head(config(), "binary", 2)
    encoded = encode_targets(np.array([0, 1, 1]), head)
    assert encoded.shape == (3, 1) and encoded.dtype == np.float32


# --- parameter counts --------------------------------------------------------------------


def test_perceptron_on_two_features_has_three_parameters():
    model, _, _ = built(config("pass_fail", model={"layers": []}))
    assert parameter_count(model) == 3
    assert [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dense)] == ["output"]


def test_one_hidden_tanh_layer_on_xor():
    model, _, _ = built(config(model={"layers": [{"units": 8, "activation": "tanh"}]}))
    assert parameter_count(model) == (2 + 1) * 8 + (8 + 1) * 1 == 33
    assert model.get_layer("hidden_1").activation.__name__ == "tanh"


def test_two_hidden_layers_on_digits():
    model, splits, _ = built(config("digits", model={"layers": [64, 64]}))
    assert splits.n_features == 64 and splits.n_classes == 10
    assert parameter_count(model) == (64 + 1) * 64 + (64 + 1) * 64 + (64 + 1) * 10
    assert model.output_shape == (None, 10)


def test_regression_on_diabetes():
    model, _, _ = built(config("diabetes", model={"layers": [16]}))
    assert parameter_count(model) == (10 + 1) * 16 + (16 + 1) * 1
    assert model.get_layer("output").activation.__name__ == "linear"


def test_default_activation_applies_to_layers_naming_none():
    model, _, _ = built(config(model={"layers": [4, {"units": 3, "activation": "elu"}],
                                      "activation": "selu"}))
    assert model.get_layer("hidden_1").activation.__name__ == "selu"
    assert model.get_layer("hidden_2").activation.__name__ == "elu"


# --- initializers, dropout, standardization, penalties -----------------------------------


def test_random_normal_initializer_honours_mean_and_stddev():
    cfg = config("digits", model={
        "layers": [512], "initializer": {"name": "random_normal", "mean": 0.5, "stddev": 0.2}})
    keras.utils.set_random_seed(0)
    model, _, _ = built(cfg)
    kernel = np.asarray(model.get_layer("hidden_1").kernel)
    assert kernel.shape == (64, 512)
    assert kernel.mean() == pytest.approx(0.5, abs=0.01)
    assert kernel.std() == pytest.approx(0.2, rel=0.03)


def test_layer_initializer_overrides_the_model_one():
    cfg = config(model={"layers": [{"units": 4, "initializer": "zeros"}, 4],
                        "initializer": "ones"})
    model, _, _ = built(cfg)
    assert not np.asarray(model.get_layer("hidden_1").kernel).any()
    assert (np.asarray(model.get_layer("hidden_2").kernel) == 1).all()
    assert (np.asarray(model.get_layer("output").kernel) == 1).all()


def test_dropout_layers_follow_their_hidden_layers():
    cfg = config(model={"layers": [{"units": 4, "dropout": 0.3}, 4, {"units": 4, "dropout": 0.0}],
                        "dropout": 0.1})
    model, _, _ = built(cfg)
    rates = {layer.name: layer.rate for layer in model.layers
             if isinstance(layer, keras.layers.Dropout)}
    assert rates == {"dropout_1": 0.3, "dropout_2": 0.1}
    names = [layer.name for layer in model.layers]
    assert names.index("dropout_1") == names.index("hidden_1") + 1


def test_no_dropout_layers_by_default():
    model, _, _ = built(config(model={"layers": [4, 4]}))
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)


def test_normalization_uses_training_rows_only():
    model, splits, _ = built(config("wine"))
    layer = model.get_layer("standardize")
    np.testing.assert_allclose(np.ravel(layer.mean), splits.x_train.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(np.ravel(layer.variance), splits.x_train.var(axis=0), rtol=1e-4)
    everything = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    assert not np.allclose(np.ravel(layer.mean), everything.mean(axis=0), rtol=1e-5)
    scaled = np.asarray(layer(splits.x_train))
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-4)


def splits_with_a_constant_column(text_column: bool) -> Splits:
    """Binary splits whose feature `flat` is 3.0 in every training row."""
    rng = np.random.default_rng(0)
    columns = {"spread": rng.normal(5, 2, (40, 1)).astype("float32"),
               "flat": np.full((40, 1), 3.0, dtype="float32")}
    if text_column:
        columns["colour"] = np.array([["red"], ["blue"]] * 20, dtype=object)
    x = columns if text_column else np.hstack(list(columns.values()))
    y = np.array([0, 1] * 20)
    empty = {k: v[:0] for k, v in columns.items()} if text_column else x[:0]
    return Splits("binary", list(columns), ["0", "1"], x, y, empty, y[:0], empty, y[:0],
                  categorical=("colour",) if text_column else ())


@pytest.mark.parametrize("text_column", [False, True])
def test_a_constant_column_is_centred_but_not_scaled(text_column):
    splits = splits_with_a_constant_column(text_column)
    cfg = config()
    model = build_model(cfg, splits, plan_head(cfg, "binary", 2))
    layer = model.get_layer("standardize")
    assert np.ravel(layer.variance)[1] == 1.0  # not 0: no division by ~0
    # a new row where the constant column differs: it keeps its raw distance from the mean
    scaled = np.asarray(layer(np.array([[5.0, 3.0], [5.0, 5.5]], dtype="float32")))
    assert np.isfinite(scaled).all()
    np.testing.assert_allclose(scaled[:, 1], [0.0, 2.5], atol=1e-6)
    rows = splits.x_train if text_column else splits.x_train[:4]
    assert np.isfinite(np.asarray(model(rows))).all()


def test_standardize_false_has_no_normalization_layer():
    model, _, _ = built(config(standardize=False))
    assert not any(isinstance(layer, keras.layers.Normalization) for layer in model.layers)


@pytest.mark.parametrize(("l1", "l2"), [(0.1, 0.0), (0.0, 0.2), (0.1, 0.2)])
def test_l1_l2_add_penalties_on_every_kernel(l1, l2):
    model, _, _ = built(config(model={"layers": [4, 3], "l1": l1, "l2": l2}))
    kernels = [np.asarray(model.get_layer(n).kernel) for n in ("hidden_1", "hidden_2", "output")]
    expected = sum(l1 * np.abs(k).sum() + l2 * np.square(k).sum() for k in kernels)
    assert len(model.losses) == 3
    assert float(sum(np.asarray(loss) for loss in model.losses)) == pytest.approx(expected, rel=1e-5)


def test_no_penalties_by_default():
    model, _, _ = built(config(model={"layers": [4]}))
    assert model.losses == []


# --- optimizers and metrics --------------------------------------------------------------


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "nadam", "rmsprop", "adagrad", "adadelta"])
def test_every_contract_optimizer(name):
    optimizer = make_optimizer(config(training={"optimizer": name, "learning_rate": 0.03}))
    # Keras numbers optimizer names (adam_29) when several exist in one process: use the class.
    assert type(optimizer).__name__.lower() == name
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(0.03)


def test_sgd_momentum():
    optimizer = make_optimizer(config(training={"optimizer": "sgd", "momentum": 0.9}))
    assert optimizer.momentum == pytest.approx(0.9)


def test_metric_names_match_history_columns():
    head = plan_head(config(training={"metrics": ["accuracy", "auc", "precision"]}), "binary", 2)
    from dlrecap.train.metrics import make_metrics

    assert [m.name for m in make_metrics(head)] == ["accuracy", "auc", "precision"]


@pytest.mark.parametrize("activation", [
    "linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "swish",
    "softplus", "softsign", "hard_sigmoid",
])
def test_every_contract_activation_builds(activation):
    model, splits, _ = built(config(model={"layers": [{"units": 3, "activation": activation}]}))
    out = np.asarray(model(splits.x_train[:5]))
    assert out.shape == (5, 1) and np.isfinite(out).all()


# --- regression targets in their own units -----------------------------------------------


def test_regression_targets_are_standardized_by_default_and_classes_never():
    regression = config("linear")
    splits = load_splits(regression.data, regression.seed)
    scale = target_scale(regression, splits)
    assert scale == TargetScale(pytest.approx(float(splits.y_train.mean())),
                                pytest.approx(float(splits.y_train.std())))
    y = encode_targets(splits.y_train, plan_head(regression, "regression", None), scale)
    assert y.mean() == pytest.approx(0.0, abs=1e-5) and y.std() == pytest.approx(1.0, rel=1e-4)
    assert target_scale(config("linear", standardize_target=False), splits) is None
    xor = config("xor", standardize_target=True)  # ignored: classes are not numbers to scale
    assert target_scale(xor, load_splits(xor.data, xor.seed)) is None


def test_a_constant_target_is_only_shifted():
    splits = Splits("regression", ["x"], None, np.zeros((4, 1), "float32"),
                    np.full(4, 7.0, "float32"), *[np.zeros((0, 1), "float32"), np.zeros(0)] * 2)
    assert target_scale(config("linear"), splits) == TargetScale(7.0, 1.0)


def test_the_saved_model_answers_in_target_units_and_loads_in_safe_mode(tmp_path):
    model, splits, _ = built(config("linear", model={"layers": [4]}))
    scale = TargetScale(mean=30_000.0, std=2_500.0)
    kept = in_target_units(model, scale)
    assert kept.layers[-1].name == TARGET_LAYER and parameter_count(kept) == parameter_count(model)
    x = splits.x_test[:5]
    expected = np.asarray(model(x)) * 2_500.0 + 30_000.0
    np.testing.assert_allclose(np.asarray(kept(x)), expected, rtol=1e-6)
    kept.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x)), expected, rtol=1e-6)
    assert in_target_units(model, None) is model


def test_a_table_model_keeps_its_inputs_by_column_in_target_units(tmp_path):
    path = tmp_path / "flats.csv"
    path.write_text("area,district,rent\n" + "".join(
        f"{30 + i},{'ab'[i % 2]},{1000 + 10 * i}\n" for i in range(20)), encoding="utf-8")
    cfg = Config.model_validate({"name": "t", "data": {"path": str(path), "target": "rent",
                                                       "task": "regression"}})
    model, splits, _ = built(cfg)
    kept = in_target_units(model, target_scale(cfg, splits))
    assert isinstance(kept.input, dict) and set(kept.input) == {"area", "district"}
