"""Tests for dlrecap.config: defaults, every error kind with its file:line:col, `--set`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlrecap.config import load_config
from dlrecap.config.schema import parse_expectation
from dlrecap.errors import ConfigError

MINIMAL = "data:\n  dataset: xor\n"


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, *overrides: str) -> ConfigError:
    """The ConfigError that loading `text` (plus overrides) raises."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value


def rendered(tmp_path: Path, text: str, *overrides: str) -> str:
    """The error line after `error: `, with the temporary folder shortened to `c.yaml`."""
    return error_of(tmp_path, text, *overrides).render().replace(str(tmp_path / "c.yaml"), "c.yaml")


def resolved(tmp_path: Path, text: str = MINIMAL, *overrides: str) -> dict:
    return load_config(write(tmp_path, text), overrides).config.resolved()


# --- defaults ----------------------------------------------------------------------------


def test_every_contract_key_has_its_default(tmp_path):
    r = resolved(tmp_path)
    assert {"name", "seed", "data", "model", "training", "expect"} <= set(r)
    assert r["name"] == "c"
    assert r["seed"] == 0
    assert r["expect"] == {}
    assert r["data"] == {
        "dataset": "xor", "path": None, "target": None, "features": None,
        "samples": 400, "noise": 0.1, "recipe": None, "derive": None,
        "validation_split": 0.2, "test_split": 0.2,
        "standardize": True, "standardize_target": None, "task": "auto", "missing": "error",
    }
    assert r["model"] == {
        "layers": [{"units": 8, "activation": None, "dropout": None, "initializer": None,
                    "batch_norm": None}],
        "activation": "relu", "dropout": 0.0, "output_activation": "auto",
        "initializer": "glorot_uniform", "l1": 0.0, "l2": 0.0, "batch_norm": False,
    }
    assert r["training"] == {
        "loss": "auto", "optimizer": "adam", "learning_rate": 0.001, "lr_schedule": "constant",
        "momentum": 0.0, "clipnorm": None, "clipvalue": None, "batch_size": 32, "epochs": 100,
        "early_stopping": None, "metrics": "auto", "class_weight": None,
        "engine": "auto", "precision": "float32", "distribute": "auto", "tensorboard": False,
        "keep": None,
    }


def test_early_stopping_section_defaults(tmp_path):
    r = resolved(tmp_path, MINIMAL + "training:\n  early_stopping: {}\n")
    assert r["training"]["early_stopping"] == {
        "patience": 10, "monitor": "val_loss", "min_delta": 0.0, "restore_best_weights": True,
    }


@pytest.mark.parametrize("training, keeps_best", [
    ("{}", False),                                            # no early stopping: the last epoch
    ("{early_stopping: 5}", True),                            # it restores the best weights
    ("{early_stopping: {restore_best_weights: false}}", False),
    ("{keep: best}", True),
    ("{keep: last, early_stopping: 5}", False),               # keep decides
])
def test_which_weights_are_kept(tmp_path, training, keeps_best):
    loaded = load_config(write(tmp_path, MINIMAL), [f"training={training}"])
    assert loaded.config.training.keeps_best() is keeps_best


def test_keep_takes_last_or_best(tmp_path):
    assert "unknown weights to keep 'bset' (did you mean 'best'?)" in rendered(
        tmp_path, MINIMAL + "training:\n  keep: bset\n")


@pytest.mark.parametrize("value, task, on", [
    (None, "regression", True), (None, "binary", False), (True, "multiclass", False),
    (False, "regression", False), (True, "regression", True),
])
def test_the_target_is_standardized_for_regression_unless_turned_off(tmp_path, value, task, on):
    text = MINIMAL + ("" if value is None else f"  standardize_target: {str(value).lower()}\n")
    assert load_config(write(tmp_path, text)).config.data.standardizes_target(task) is on


def test_synthetic_noise_default_is_the_data_sets_own(tmp_path):
    r = resolved(tmp_path, "data:\n  dataset: gaussian\n")
    assert r["data"]["noise"] == 0.5
    assert r["data"]["samples"] == 400


def test_bundled_set_keeps_samples_and_noise_unset(tmp_path):
    r = resolved(tmp_path, "data:\n  dataset: iris\n")
    assert r["data"]["samples"] is None and r["data"]["noise"] is None


def test_contract_example_values_are_accepted(tmp_path):
    text = """\
name: xor
seed: 3
data:
  dataset: xor
  samples: 400
  noise: 0.1
  validation_split: 0.25
  test_split: 0.15
  standardize: false
  task: binary
model:
  layers:
    - units: 8
      activation: tanh
      dropout: 0.1
      batch_norm: true
  activation: elu
  dropout: 0.2
  output_activation: sigmoid
  initializer: {name: random_normal, mean: 0.0, stddev: 0.05}
  l1: 0.001
  l2: 0.01
training:
  loss: binary_crossentropy
  optimizer: sgd
  learning_rate: 0.1
  lr_schedule: {name: exponential, decay_rate: 0.9, decay_epochs: 5}
  momentum: 0.9
  clipnorm: 1.0
  batch_size: 16
  epochs: 50
  early_stopping:
    patience: 5
    monitor: val_accuracy
    min_delta: 0.001
    restore_best_weights: false
  metrics: [accuracy, auc]
expect:
  test_accuracy: ">= 0.95"
"""
    r = resolved(tmp_path, text)
    assert r["seed"] == 3
    assert r["data"]["validation_split"] == 0.25 and r["data"]["standardize"] is False
    assert r["model"]["layers"] == [
        {"units": 8, "activation": "tanh", "dropout": 0.1, "initializer": None,
         "batch_norm": True}]
    assert r["training"]["lr_schedule"] == {"name": "exponential", "decay_rate": 0.9,
                                            "decay_epochs": 5.0}
    assert r["training"]["clipnorm"] == 1.0 and r["training"]["clipvalue"] is None
    assert r["model"]["initializer"] == {"name": "random_normal", "mean": 0.0, "stddev": 0.05}
    assert r["training"]["early_stopping"]["monitor"] == "val_accuracy"
    assert r["training"]["metrics"] == ["accuracy", "auc"]
    assert r["expect"] == {"test_accuracy": ">= 0.95"}


def test_int_shorthand_for_layers(tmp_path):
    r = resolved(tmp_path, MINIMAL + "model:\n  layers: [16, {units: 4, activation: tanh}, 2]\n")
    assert [layer["units"] for layer in r["model"]["layers"]] == [16, 4, 2]
    assert r["model"]["layers"][1]["activation"] == "tanh"


def test_empty_layers_is_a_perceptron(tmp_path):
    assert resolved(tmp_path, MINIMAL + "model:\n  layers: []\n")["model"]["layers"] == []


@pytest.mark.parametrize(("value", "expected"), [
    ("7", {"patience": 7, "monitor": "val_loss", "min_delta": 0.0, "restore_best_weights": True}),
    ("null", None),
    ("false", None),
])
def test_early_stopping_shorthand(tmp_path, value, expected):
    r = resolved(tmp_path, MINIMAL + f"training:\n  early_stopping: {value}\n")
    assert r["training"]["early_stopping"] == expected


def test_name_defaults_to_the_file_stem(tmp_path):
    path = write(tmp_path, MINIMAL, "my lesson.yaml")
    assert load_config(path).config.name == "my-lesson"


def test_name_null_takes_the_file_stem(tmp_path):
    path = write(tmp_path, "name: null\n" + MINIMAL, "lesson.yaml")
    assert load_config(path).config.name == "lesson"


def test_long_file_stem_still_gives_a_valid_name(tmp_path):
    path = write(tmp_path, MINIMAL, "x" * 120 + ".yaml")
    name = load_config(path).config.name
    assert name and len(name) <= 80 and name.startswith("xxx")


def test_paths_resolve_against_the_config_folder_whatever_the_cwd(tmp_path, monkeypatch):
    folder = tmp_path / "lessons"
    folder.mkdir()
    path = write(folder, "data:\n  path: data/students.csv\n  target: passed\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    got = load_config(Path(os.path.relpath(path, elsewhere))).config.data.path
    assert got == str(folder / "data" / "students.csv")


def test_expectation_parser():
    assert parse_expectation(">= 0.95") == (">=", 0.95)
    assert parse_expectation("<1e-3") == ("<", 0.001)
    assert parse_expectation(" == 2 ") == ("==", 2.0)
    with pytest.raises(ValueError):
        parse_expectation("=> 0.9")


# --- errors: exact file:line:col, key and message ----------------------------------------


def test_unknown_key_with_did_you_mean(tmp_path):
    text = MINIMAL + "model:\n  layers:\n    - units: 8\n      actvation: tanh\n"
    assert rendered(tmp_path, text) == (
        "c.yaml:6:7: model.layers[0].actvation: unknown key 'actvation' "
        "(did you mean 'activation'?)")


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path):
    line = rendered(tmp_path, MINIMAL + "zzz: 1\n")
    assert line.startswith("c.yaml:3:1: zzz: unknown key 'zzz' (known keys: name, seed, data, model")


def test_unknown_top_level_key_did_you_mean(tmp_path):
    assert rendered(tmp_path, MINIMAL + "trainng:\n  epochs: 3\n") == (
        "c.yaml:3:1: trainng: unknown key 'trainng' (did you mean 'training'?)")


def test_wrong_type(tmp_path):
    assert rendered(tmp_path, MINIMAL + "training:\n  epochs: ten\n") == (
        "c.yaml:4:11: training.epochs: Input should be a valid integer, unable to parse "
        "string as an integer, got 'ten'")


def test_wrong_type_for_a_section_names_no_internal_class(tmp_path):
    line = rendered(tmp_path, "data: 3\n")
    assert line == "c.yaml:1:7: data: Input should be a valid dictionary, got 3"


def test_out_of_range(tmp_path):
    assert rendered(tmp_path, MINIMAL + "training:\n  epochs: 0\n") == (
        "c.yaml:4:11: training.epochs: Input should be greater than or equal to 1, got 0")


def test_out_of_range_in_a_list_item(tmp_path):
    text = MINIMAL + "model:\n  layers:\n    - 8\n    - units: 4\n      dropout: 1.5\n"
    assert rendered(tmp_path, text) == (
        "c.yaml:7:16: model.layers[1].dropout: Input should be less than 1, got 1.5")


@pytest.mark.parametrize(("text", "where", "message"), [
    (MINIMAL + "model:\n  activation: rleu\n", "4:15: model.activation",
     "unknown activation 'rleu' (did you mean 'relu'?)"),
    (MINIMAL + "model:\n  layers:\n    - units: 8\n      activation: tahn\n",
     "6:19: model.layers[0].activation", "unknown activation 'tahn' (did you mean 'tanh'?)"),
    (MINIMAL + "model:\n  output_activation: sofmax\n", "4:22: model.output_activation",
     "unknown output activation 'sofmax' (did you mean 'softmax'?)"),
    (MINIMAL + "training:\n  loss: binary_crossentropyy\n", "4:9: training.loss",
     "unknown loss 'binary_crossentropyy' (did you mean 'binary_crossentropy'?)"),
    (MINIMAL + "training:\n  optimizer: adamm\n", "4:14: training.optimizer",
     "unknown optimizer 'adamm' (did you mean 'adam'?)"),
    (MINIMAL + "model:\n  initializer: random_normall\n", "4:16: model.initializer.name",
     "unknown initializer 'random_normall' (did you mean 'random_normal'?)"),
    (MINIMAL + "model:\n  initializer: {name: he_normall}\n", "4:23: model.initializer.name",
     "unknown initializer 'he_normall' (did you mean 'he_normal'?)"),
    ("data:\n  dataset: xorr\n", "2:12: data.dataset", "unknown data set 'xorr' (did you mean 'xor'?)"),
    ("data:\n  dataset: iriss\n", "2:12: data.dataset", "unknown data set 'iriss' (did you mean 'iris'?)"),
])
def test_unknown_names_with_did_you_mean(tmp_path, text, where, message):
    assert rendered(tmp_path, text) == f"c.yaml:{where}: {message}"


def test_unknown_name_without_a_close_match_lists_the_options(tmp_path):
    line = rendered(tmp_path, MINIMAL + "training:\n  optimizer: qqqqqq\n")
    assert line.startswith("c.yaml:4:14: training.optimizer: unknown optimizer 'qqqqqq' (choose one of: sgd,")


def test_unknown_data_set_without_a_close_match_names_the_command(tmp_path):
    assert rendered(tmp_path, "data:\n  dataset: qqqqqq\n") == (
        "c.yaml:2:12: data.dataset: unknown data set 'qqqqqq' (`dlrecap datasets` lists them)")


@pytest.mark.parametrize(("text", "message"), [
    (MINIMAL + "model:\n  layers: [8, 0]\n",
     "c.yaml:4:15: model.layers[1].units: Input should be greater than or equal to 1, got 0"),
    (MINIMAL + "training:\n  early_stopping: -1\n",
     "c.yaml:4:19: training.early_stopping.patience: Input should be greater than or equal to 0, "
     "got -1"),
])
def test_errors_inside_a_shorthand_name_the_full_key(tmp_path, text, message):
    assert rendered(tmp_path, text) == message


def test_unknown_metric_in_a_list(tmp_path):
    assert rendered(tmp_path, MINIMAL + "training:\n  metrics: [accuracy, acuracy]\n") == (
        "c.yaml:4:23: training.metrics[1]: unknown metric 'acuracy' (did you mean 'accuracy'?)")


def test_one_metric_is_a_list_of_one(tmp_path):
    assert resolved(tmp_path, MINIMAL + "training:\n  metrics: auc\n")["training"]["metrics"] == ["auc"]
    assert rendered(tmp_path, MINIMAL + "training:\n  metrics: acuracy\n") == (
        "c.yaml:4:12: training.metrics: unknown metric 'acuracy' (did you mean 'accuracy'?)")


def test_duplicate_key(tmp_path):
    text = MINIMAL + "training:\n  epochs: 3\n  epochs: 4\n"
    assert rendered(tmp_path, text) == (
        "c.yaml:5:3: training.epochs: duplicate key 'epochs' (keep one of them)")


def test_tabs(tmp_path):
    line = rendered(tmp_path, "data:\n\tdataset: xor\n")
    assert line.startswith("c.yaml:2:1: invalid YAML: ")
    assert line.endswith("indent with spaces, not tabs")


def test_invalid_yaml(tmp_path):
    line = rendered(tmp_path, MINIMAL + "model: [8,\n")
    assert line.startswith("c.yaml:4:1: invalid YAML: ")


def test_empty_file(tmp_path):
    assert rendered(tmp_path, "# nothing here\n") == (
        "c.yaml: the config is empty (start from configs/xor.yaml)")


def test_top_level_list(tmp_path):
    assert rendered(tmp_path, "- data\n- model\n") == (
        "c.yaml:1:1: the config must be a mapping of keys, not a list")


def test_missing_data(tmp_path):
    assert rendered(tmp_path, "seed: 1\n") == "c.yaml:1:1: data: missing required key"


@pytest.mark.parametrize("text", [
    "data:\n  dataset: xor\n  path: a.csv\n",
    "data:\n  validation_split: 0.1\n",
])
def test_both_or_neither_of_dataset_and_path(tmp_path, text):
    assert rendered(tmp_path, text) == (
        "c.yaml:2:3: data: give exactly one of data.dataset and data.path "
        "(e.g. dataset: xor, or path: students.csv)")


@pytest.mark.parametrize("key", ["samples", "noise"])
def test_samples_or_noise_on_a_bundled_set(tmp_path, key):
    assert rendered(tmp_path, f"data:\n  dataset: iris\n  {key}: 100\n") == (
        f"c.yaml:3:{5 + len(key)}: data.{key}: applies to synthetic data sets only; "
        "iris has fixed rows (remove it)")


@pytest.mark.parametrize("key", ["samples", "noise"])
def test_samples_or_noise_on_a_data_file(tmp_path, key):
    assert rendered(tmp_path, f"data:\n  path: a.csv\n  target: y\n  {key}: 100\n") == (
        f"c.yaml:4:{5 + len(key)}: data.{key}: applies to built-in synthetic sets only; "
        "a data file has its own rows (remove it)")


def test_file_keys_on_a_built_in_set(tmp_path):
    assert rendered(tmp_path, "data:\n  dataset: xor\n  target: y\n") == (
        "c.yaml:3:11: data.target: applies to data files only, not to built-in sets (remove it)")


def test_split_sum_too_large(tmp_path):
    text = "data:\n  dataset: xor\n  validation_split: 0.5\n  test_split: 0.45\n"
    assert rendered(tmp_path, text) == (
        "c.yaml:4:15: data.test_split: validation_split + test_split = 0.95 leaves too few "
        "training rows (keep their sum <= 0.9)")


def test_loss_that_cannot_serve_the_task(tmp_path):
    text = "data:\n  dataset: diabetes\ntraining:\n  loss: binary_crossentropy\n"
    assert rendered(tmp_path, text) == (
        "c.yaml:4:9: training.loss: binary_crossentropy needs class labels, but this is a "
        "regression task (use mse, mae or huber (or auto))")


def test_monitor_of_a_metric_not_computed(tmp_path):
    text = MINIMAL + "training:\n  early_stopping: {monitor: val_mae}\n"
    assert rendered(tmp_path, text).startswith(
        "c.yaml:4:29: training.early_stopping.monitor: monitor 'val_mae' is not a computed metric")


def test_initializer_parameter_that_does_not_apply(tmp_path):
    text = MINIMAL + "model:\n  initializer: {name: he_normal, stddev: 0.1}\n"
    assert rendered(tmp_path, text) == (
        "c.yaml:4:42: model.initializer.stddev: stddev does not apply to initializer 'he_normal'")


# --- expect ------------------------------------------------------------------------------


def test_expect_value_not_quoted(tmp_path):
    assert rendered(tmp_path, MINIMAL + "expect:\n  test_accuracy: 0.9\n") == (
        "c.yaml:4:18: expect.test_accuracy: quote a comparison such as \">= 0.95\", got 0.9")


def test_expect_value_malformed(tmp_path):
    assert rendered(tmp_path, MINIMAL + "expect:\n  test_accuracy: \"about 0.9\"\n") == (
        "c.yaml:4:18: expect.test_accuracy: expected '<op> <number>' such as '>= 0.95', "
        "got 'about 0.9'")


def test_expect_unknown_name(tmp_path):
    line = rendered(tmp_path, MINIMAL + "expect:\n  tset_accuracy: \">= 0.9\"\n")
    assert line.startswith("c.yaml:4:3: expect.tset_accuracy: unknown expectation 'tset_accuracy'")


def test_expect_names_one_class_score(tmp_path):
    text = MINIMAL + "training:\n  metrics: [recall]\nexpect:\n  test_recall_1: \">= 0.9\"\n"
    assert resolved(tmp_path, text)["expect"] == {"test_recall_1": ">= 0.9"}
    for key in ("test_recall_", "test_auc_1", "test_accuracy_1"):
        line = rendered(tmp_path, MINIMAL + f"expect:\n  {key}: \">= 0.9\"\n")
        assert line.startswith(f"c.yaml:4:3: expect.{key}: unknown expectation {key!r}: use"), line


def test_expect_on_one_class_needs_its_metric_and_classes(tmp_path):
    assert rendered(tmp_path, MINIMAL + "expect:\n  test_f1_1: \">= 0.9\"\n") == (
        "c.yaml:4:14: expect.test_f1_1: unknown expectation 'test_f1_1': the run does not "
        "compute f1 (training.metrics: accuracy) (add f1 to training.metrics)")
    regression = "data:\n  dataset: diabetes\nexpect:\n  test_recall_1: \">= 0.9\"\n"
    assert rendered(tmp_path, regression) == (
        "c.yaml:4:18: expect.test_recall_1: unknown expectation 'test_recall_1': a regression "
        "task has no per-class scores (use a whole split's score, e.g. test_mae)")


def test_expect_not_a_mapping(tmp_path):
    assert rendered(tmp_path, MINIMAL + "expect: 3\n") == (
        "c.yaml:3:9: expect: Input should be a valid dictionary, got 3")


# --- --set overrides ---------------------------------------------------------------------


def test_set_scalar(tmp_path):
    r = resolved(tmp_path, MINIMAL, "training.learning_rate=0.1", "seed=7")
    assert r["training"]["learning_rate"] == 0.1 and r["seed"] == 7


def test_set_list(tmp_path):
    r = resolved(tmp_path, MINIMAL, "model.layers=[16,16]")
    assert [layer["units"] for layer in r["model"]["layers"]] == [16, 16]


def test_set_index(tmp_path):
    text = MINIMAL + "model:\n  layers:\n    - units: 8\n      activation: tanh\n"
    r = resolved(tmp_path, text, "model.layers[0].units=4")
    assert r["model"]["layers"][0] == {"units": 4, "activation": "tanh", "dropout": None,
                                       "initializer": None, "batch_norm": None}


def test_set_index_into_int_shorthand(tmp_path):
    r = resolved(tmp_path, MINIMAL + "model:\n  layers: [8, 8]\n", "model.layers[1].activation=tanh")
    assert r["model"]["layers"][1]["units"] == 8 and r["model"]["layers"][1]["activation"] == "tanh"


def test_set_new_nested_key(tmp_path):
    r = resolved(tmp_path, MINIMAL, "training.early_stopping.patience=4")
    assert r["training"]["early_stopping"]["patience"] == 4


def test_set_replaces_a_file_value(tmp_path):
    r = resolved(tmp_path, MINIMAL + "training:\n  epochs: 3\n", "training.epochs=5")
    assert r["training"]["epochs"] == 5


def test_set_bad_yaml_value(tmp_path):
    line = rendered(tmp_path, MINIMAL, "model.layers=[16")
    assert line.startswith("--set model.layers=[16: value is not valid YAML: ")


def test_set_text_that_yaml_misreads_suggests_quotes(tmp_path):
    line = rendered(tmp_path, MINIMAL, "expect.test_accuracy=>= 0.9")
    assert line.endswith("""(for text, quote it: expect.test_accuracy='">= 0.9"')""")
    r = resolved(tmp_path, MINIMAL, 'expect.test_accuracy=">= 0.9"')
    assert r["expect"] == {"test_accuracy": ">= 0.9"}


def test_set_index_into_the_default_layers(tmp_path):
    r = resolved(tmp_path, MINIMAL, "model.layers[0].units=4")
    assert [layer["units"] for layer in r["model"]["layers"]] == [4]
    r = resolved(tmp_path, MINIMAL, "model.layers[1]=16")
    assert [layer["units"] for layer in r["model"]["layers"]] == [8, 16]


def test_set_without_equals(tmp_path):
    assert rendered(tmp_path, MINIMAL, "epochs") == (
        "--set epochs: expected KEY=VALUE, e.g. training.learning_rate=0.01")


def test_set_bad_key(tmp_path):
    assert rendered(tmp_path, MINIMAL, "training..epochs=3").startswith(
        "--set training..epochs=3: bad key 'training..epochs'")


def test_set_unknown_key_names_the_set_source(tmp_path):
    assert rendered(tmp_path, MINIMAL, "training.epoch=3") == (
        "--set training.epoch=3: training.epoch: unknown key 'epoch' (did you mean 'epochs'?)")


def test_set_wrong_value_names_the_set_source(tmp_path):
    assert rendered(tmp_path, MINIMAL + "training:\n  epochs: 3\n", "training.epochs=-1") == (
        "--set training.epochs=-1: training.epochs: Input should be greater than or equal to 1, "
        "got -1")


def test_set_below_a_scalar_names_the_set_source(tmp_path):
    line = rendered(tmp_path, MINIMAL, "data.dataset.x=3")
    assert line.startswith("--set data.dataset.x=3: ")


def test_set_index_out_of_range(tmp_path):
    assert rendered(tmp_path, MINIMAL + "model:\n  layers: [8]\n", "model.layers[3].units=4") == (
        "--set model.layers[3].units=4: model.layers[3] does not exist")


def test_set_non_ascii_section_key_does_not_crash(tmp_path):
    line = rendered(tmp_path, MINIMAL, "data={dataset: xor, ключ: 1}")
    assert "unknown key 'ключ'" in line


# --- odd YAML -----------------------------------------------------------------------------


def test_anchor_and_alias(tmp_path):
    text = "data:\n  dataset: xor\nmodel:\n  layers: [&l {units: 4}, *l]\n"
    assert [la["units"] for la in resolved(tmp_path, text)["model"]["layers"]] == [4, 4]


def test_merge_key(tmp_path):
    assert resolved(tmp_path, "data:\n  <<: {dataset: circles}\n  samples: 40\n")["data"][
        "dataset"] == "circles"


@pytest.mark.parametrize(("text", "where"), [
    (MINIMAL + "1: 1\n", "3:1"),
    (MINIMAL + "null: 1\n", "3:1"),
    (MINIMAL + "true: 1\n", "3:1"),
    (MINIMAL + "? [a, b]\n: 1\n", "3:3"),
])
def test_non_string_keys(tmp_path, text, where):
    assert rendered(tmp_path, text) == f"c.yaml:{where}: keys must be plain names"


def test_unsafe_tag_is_refused(tmp_path):
    assert rendered(tmp_path, "!!python/object:os.system\n").startswith(
        "c.yaml:1:1: invalid YAML: could not determine a constructor")


@pytest.mark.parametrize(("text", "message"), [
    (MINIMAL + "training:\n  learning_rate: 1e400\n", "training.learning_rate: "),
    (MINIMAL + "training:\n  learning_rate: .inf\n", "training.learning_rate: "),
    (MINIMAL + "seed: 100000000000000000000000000000\n", "seed: "),
    (MINIMAL + "seed: .nan\n", "seed: "),
])
def test_huge_and_non_finite_numbers(tmp_path, text, message):
    assert message in rendered(tmp_path, text)


def test_not_utf8(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\xfe\x00data")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.render().endswith("c.yaml: not UTF-8 text (invalid start byte)")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_bad_run_name(tmp_path):
    line = rendered(tmp_path, "name: héllo wörld\n" + MINIMAL)
    assert line.startswith("c.yaml:1:7: name: ")
    assert "letters, digits" in line


def test_config_is_frozen(tmp_path):
    config = load_config(write(tmp_path, MINIMAL)).config
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        config.seed = 3
