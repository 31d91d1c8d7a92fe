"""Tests for dlrecap.config.lint: each teaching warning fires on its config, and only there."""

from __future__ import annotations

import pytest

from dlrecap.config import load_config
from dlrecap.config.lint import lint

from helpers import invoke

CLEAN = "data:\n  dataset: xor\nmodel:\n  layers: [{units: 8, activation: tanh}]\n"


def warnings_of(tmp_path, text: str, *overrides: str) -> list[tuple[str, str]]:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return lint(load_config(path, overrides).config)


@pytest.mark.parametrize("text", [
    CLEAN,
    "data:\n  dataset: iris\n",
    "data:\n  dataset: diabetes\ntraining:\n  loss: mae\n",
    "data:\n  dataset: pass_fail\nmodel:\n  layers: []\n",  # a perceptron is linear on purpose
    CLEAN + "training:\n  optimizer: sgd\n  learning_rate: 0.1\n  momentum: 0.9\n"
    "  early_stopping: {patience: 5, monitor: loss}\n",
    "data:\n  dataset: xor\n  validation_split: 0\nmodel:\n  layers: [8]\n",  # no early stopping
    CLEAN.replace("8,", "8, dropout: 0.5,"),
    CLEAN.replace("xor\n", "xor\n  features: [x2]\n  derive: [x1, x1*x2]\n"),  # x1 is no input
])
def test_clean_configs_get_no_warning(tmp_path, text):
    assert warnings_of(tmp_path, text) == []


@pytest.mark.parametrize(("text", "key", "words"), [
    ("data:\n  dataset: xor\nmodel:\n  layers: [8, 8]\n  activation: linear\n",
     "model.layers", "every hidden activation is linear"),
    ("data:\n  dataset: xor\nmodel:\n  layers: [{units: 8, activation: linear}]\n",
     "model.layers", "one linear function whatever its depth"),
    ("data:\n  dataset: iris\nmodel:\n  output_activation: sigmoid\n",
     "model.output_activation", "softmax gives class probabilities"),
    (CLEAN + "  output_activation: softmax\n", "model.output_activation", "softmax on a binary task"),
    (CLEAN + "training:\n  loss: mse\n", "training.loss", "mse on a classification task"),
    ("data:\n  dataset: iris\ntraining:\n  loss: huber\n", "training.loss", "classification"),
    (CLEAN + "training:\n  epochs: 10\n  early_stopping: 10\n",
     "training.early_stopping.patience", "patience 10 >= epochs 10"),
    ("data:\n  dataset: xor\n  validation_split: 0\n" + CLEAN[CLEAN.index("model"):]
     + "training:\n  early_stopping: 5\n", "training.early_stopping", "validation_split is 0"),
    (CLEAN + "training:\n  learning_rate: 0.5\n", "training.learning_rate", "expect divergence"),
    (CLEAN + "training:\n  optimizer: sgd\n  learning_rate: 0.000001\n",
     "training.learning_rate", "very slow learning"),
    (CLEAN + "  dropout: 0.8\n", "model.dropout", "dropout 0.8 drops most activations"),
    (CLEAN.replace("tanh}", "tanh, dropout: 0.9}"), "model.layers[0].dropout", "dropout 0.9"),
    ("data:\n  dataset: xor\n  samples: 100\n" + CLEAN[CLEAN.index("model"):]
     + "training:\n  batch_size: 64\n", "training.batch_size", "more than the 60 training rows"),
    ("data:\n  dataset: iris\ntraining:\n  batch_size: 128\n", "training.batch_size",
     "one full-batch step"),
    (CLEAN + "training:\n  momentum: 0.9\n", "training.momentum", "momentum applies to sgd only"),
    (CLEAN.replace("xor\n", "xor\n  standardize_target: true\n"), "data.standardize_target",
     "has no effect: a classification target is classes"),
    ("data:\n  path: d.csv\n  target: y\n  task: binary\ntraining:\n  loss: mse\n",
     "training.loss", "mse on a classification task"),  # a file's task, when set, is known
    (CLEAN.replace("xor\n", "xor\n  derive: [x1*x2, x2]\n"), "data.derive[1]",
     "x2 is a raw input already (if it is a column of the data: every raw column"),
    (CLEAN.replace("xor\n", "xor\n  features: [x1]\n  derive: [x1^2, x1]\n"), "data.derive[1]",
     "x1 is a raw input already (data.features lists it)"),
])
def test_each_warning_fires_on_its_config(tmp_path, text, key, words):
    found = warnings_of(tmp_path, text)
    assert [k for k, _ in found] == [key], found
    assert words in found[0][1]


def test_model_dropout_unused_when_every_layer_sets_its_own(tmp_path):
    text = ("data:\n  dataset: xor\nmodel:\n  layers: [{units: 8, activation: tanh, dropout: 0.1}]\n"
            "  dropout: 0.9\n")
    # Not "0.9 drops most activations" (no layer takes it), but: it does nothing.
    assert warnings_of(tmp_path, text) == [
        ("model.dropout", "has no effect: every layer sets its own dropout "
                          "(remove dropout from the layers to let this one apply)")]


@pytest.mark.parametrize("text, key", [
    ("model:\n  layers: [{units: 8, activation: tanh}]\n  activation: relu\n", "model.activation"),
    ("model:\n  layers: []\n  activation: relu\n", "model.activation"),
])
def test_shadowed_settings_are_named(tmp_path, text, key):
    assert [k for k, _ in warnings_of(tmp_path, "data:\n  dataset: xor\n" + text)] == [key]


@pytest.mark.parametrize("layers", ["[{units: 4, initializer: he_normal}]", "[]"])
def test_model_initializer_is_never_shadowed_the_output_layer_takes_it(tmp_path, layers):
    text = f"data:\n  dataset: xor\nmodel:\n  layers: {layers}\n  initializer: lecun_normal\n"
    assert warnings_of(tmp_path, text) == []


def test_a_model_default_some_layer_takes_is_no_warning(tmp_path):
    text = "data:\n  dataset: xor\nmodel:\n  layers: [{units: 8, activation: tanh}, 4]\n  activation: relu\n"
    assert warnings_of(tmp_path, text) == []


def test_warnings_can_stack(tmp_path):
    text = CLEAN + "  dropout: 0.85\ntraining:\n  loss: mse\n  learning_rate: 5\n"
    assert {k for k, _ in warnings_of(tmp_path, text)} == {
        "model.dropout", "training.loss", "training.learning_rate"}


def test_a_known_task_from_the_caller_is_used(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  path: d.csv\n  target: y\ntraining:\n  loss: mse\n")
    config = load_config(path).config
    assert lint(config) == []  # a file's task is not known before it is read
    assert [k for k, _ in lint(config, task="binary")] == ["training.loss"]
    assert [k for k, _ in lint(config, task="regression", train_rows=10)] == ["training.batch_size"]


def test_a_warning_points_at_its_line_through_the_cli(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CLEAN + "training:\n  learning_rate: 0.5\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 0
    assert result.stderr == (
        f"warning: {path}:6:18: training.learning_rate: 0.5 is far outside the usual 1e-05..0.1 "
        "for adam: expect divergence\n")
