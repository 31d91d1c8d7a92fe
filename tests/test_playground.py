"""`init --from-playground`, `data.derive` and the Playground's data recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from dlrecap.config.load import load_config
from dlrecap.data.synthetic import PLAYGROUND
from dlrecap.playground import DEFAULT_URL

from helpers import invoke

PG = "https://playground.tensorflow.org/#"
REGRESSION_URL = (PG + "activation=relu&batchSize=20&regDataset=reg-gauss&learningRate=0.01"
                  "&regularization=L2&regularizationRate=0.003&noise=10&networkShape=6,3"
                  "&percTrainData=70&problem=regression&seed=0.5&playButton_hide=true&initZero=true")
DERIVED_URL = (PG + "activation=sigmoid&dataset=spiral&networkShape=8,5&x=false&y=true"
               "&xSquared=true&ySquared=true&xTimesY=true&sinX=true&sinY=false&cosX=true"
               "&regularization=L1&regularizationRate=0.001&noise=25&learningRate=0.1"
               "&batchSize=5&percTrainData=80")

PLAYGROUND_INIT = {"name": "random_uniform", "minval": -0.5, "maxval": 0.5}
EXPECTED = {
    "default": {
        "seed": 0,
        "data": {"dataset": "circles", "recipe": "playground", "samples": 500, "noise": 0,
                 "validation_split": 0.0, "test_split": 0.5, "standardize": False},
        "model": {"layers": [4, 2], "activation": "tanh", "initializer": PLAYGROUND_INIT},
        "training": {"optimizer": "sgd", "learning_rate": 0.03, "batch_size": 10, "epochs": 100},
    },
    "regression": {
        "seed": 0,
        "data": {"dataset": "bumps", "recipe": "playground", "samples": 1200, "noise": 0.1,
                 "validation_split": 0.0, "test_split": 0.3, "standardize": False,
                 "standardize_target": False},
        "model": {"layers": [6, 3], "activation": "relu", "initializer": "zeros", "l2": 0.0015},
        "training": {"optimizer": "sgd", "learning_rate": 0.01, "batch_size": 20, "epochs": 100},
    },
    "derived": {
        "seed": 0,
        "data": {"dataset": "spiral", "recipe": "playground", "samples": 500, "noise": 0.25,
                 "features": ["x2"], "derive": ["x1^2", "x2^2", "x1*x2", "sin(x1)", "cos(x1)"],
                 "validation_split": 0.0, "test_split": 0.2, "standardize": False},
        "model": {"layers": [8, 5], "activation": "sigmoid", "initializer": PLAYGROUND_INIT,
                  "l1": 0.001},
        "training": {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 5, "epochs": 100},
    },
}
URLS = {"default": DEFAULT_URL, "regression": REGRESSION_URL, "derived": DERIVED_URL}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("playground")
    paths = {}
    for case, url in URLS.items():
        paths[case] = folder / f"{case}.yaml"
        result = invoke("init", "--from-playground", url, "--output", str(paths[case]))
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == str(paths[case])
    return paths


@pytest.mark.parametrize("case", list(URLS))
def test_addresses_become_the_expected_configs(written, case):
    text = written[case].read_text(encoding="utf-8")
    assert yaml.safe_load(text) == EXPECTED[case]
    assert URLS[case] in text  # the address it came from, as a comment
    load_config(written[case])  # validates


@pytest.mark.slow
def test_the_configs_train_and_predict_from_raw_columns(written, tmp_path):
    runs_dir = tmp_path / "runs"
    for case in URLS:
        result = invoke("train", str(written[case]), "--set", "training.epochs=2",
                        "--runs-dir", str(runs_dir), "--quiet")
        assert result.exit_code == 0, result.output
    run = Path(result.stdout.strip())  # the derived one: raw x2, then 5 derived features
    data = EXPECTED["derived"]["data"]
    assert json.loads((run / "metrics.json").read_text())["features"] == \
        data["features"] + data["derive"]
    raw = np.array([[1.0, -2.0], [0.5, 3.0], [-4.0, 0.25]])
    (tmp_path / "rows.csv").write_text("x1,x2\n" + "\n".join(f"{a},{b}" for a, b in raw))
    result = invoke("predict", str(run), str(tmp_path / "rows.csv"))
    assert result.exit_code == 0, result.output
    predicted = np.loadtxt(result.stdout.splitlines()[1:], delimiter=",")[:, -1]
    import keras

    x1, x2 = raw[:, 0], raw[:, 1]
    derived = np.stack([x2, x1**2, x2**2, x1 * x2, np.sin(x1), np.cos(x1)], axis=1)
    model = keras.models.load_model(run / "model.keras")
    np.testing.assert_allclose(predicted, model.predict(derived, verbose=0)[:, 0], atol=1e-5)
    assert len(set(np.round(predicted, 6))) == 3  # each row its own answer
    # eval rebuilds the splits, derives again, and scores with the NumPy inference path
    scored = json.loads(invoke("eval", str(run), "--json").stdout)["metrics"]
    trained = json.loads((run / "metrics.json").read_text())["test"]
    assert scored["accuracy"] == pytest.approx(trained["accuracy"])
    assert scored["loss"] == pytest.approx(trained["loss"], rel=1e-4)
    # eval --data derives from raw columns too; labels written as numbers (1.0) are the run's
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("x1,x2,target\n" + "\n".join(
        f"{a},{b},{float(p > 0.5)}" for (a, b), p in zip(raw, predicted, strict=True)))
    result = invoke("eval", str(run), "--data", str(labelled), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["accuracy"] == 1.0


@pytest.mark.parametrize("url, parameter", [
    (PG + "activation=softplus", "activation=softplus"),
    (PG + "dataset=moons", "dataset=moons"),
    (PG + "problem=regression&regDataset=circle", "regDataset=circle"),
    (PG + "networkShape=4,,2", "networkShape=4,,2"),
    (PG + "learningRate=fast", "learningRate=fast"),
    (PG + "noise=80", "noise=80"),
    (PG + "percTrainData=50.5", "percTrainData=50.5"),
    (PG + "regularization=L3", "regularization=L3"),
    (PG + "x=false&y=false", "x=false"),
    (PG + "optimizer=adam", "optimizer=adam"),
    ("https://example.org/#activation=tanh", "not a playground.tensorflow.org address"),
])
def test_what_cannot_be_mapped_is_refused_by_name(tmp_path, url, parameter):
    output = tmp_path / "out.yaml"
    result = invoke("init", "--from-playground", url, "--output", str(output))
    assert result.exit_code == 2, result.output
    assert parameter in result.stderr and "Traceback" not in result.output
    assert not output.exists() and list(tmp_path.iterdir()) == []


def test_a_network_without_hidden_layers(tmp_path):
    url = PG + "x=false&y=false&xSquared=true&ySquared=true&networkShape=&activation=relu"
    output = tmp_path / "p.yaml"
    assert invoke("init", "--from-playground", url, "-o", str(output)).exit_code == 0
    model = yaml.safe_load(output.read_text())["model"]
    assert model == {"layers": [], "initializer": PLAYGROUND_INIT}  # no activation to apply
    data = yaml.safe_load(output.read_text())["data"]
    assert data["features"] == [] and data["derive"] == ["x1^2", "x2^2"]
    assert invoke("validate", str(output), "--strict").exit_code == 0


def test_init_takes_a_data_file_or_an_address_not_both(tmp_path):
    result = invoke("init", "data.csv", "--from-playground", DEFAULT_URL)
    assert result.exit_code == 2 and "no DATA_FILE" in result.stderr
    result = invoke("init", "data.csv")
    assert result.exit_code == 2 and "--target" in result.stderr


def _config(tmp_path: Path, data: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n{data}model:\n  layers: [3]\ntraining:\n  epochs: 1\n")
    return path


@pytest.mark.parametrize("data, where, message", [
    ("  dataset: xor\n  derive: [x1, x1+x2]\n", "c.yaml:3:16: data.derive[1]", "cannot read 'x1+x2'"),
    ("  dataset: xor\n  derive:\n    - x1\n    - __import__('os')\n", "c.yaml:5:7: data.derive[1]",
     "cannot read"),
    ("  dataset: xor\n  derive: [x1*x2, x2 * x1, x1 *x2]\n", "data.derive", "[2] x1*x2 repeats [0]"),
    ("  dataset: xor\n  derive: []\n", "data.derive", "at least 1"),
    ("  dataset: xor\n  features: []\n", "c.yaml:3:13: data.features", "no feature columns"),
    ("  path: d.csv\n  target: y\n  features: []\n", "c.yaml:4:13: data.features",
     "add data.derive"),
    ("  dataset: moons\n  recipe: playground\n", "c.yaml:3:11: data.recipe", "no moons set"),
    ("  dataset: iris\n  recipe: playground\n", "data.recipe", "fixed rows"),
])
def test_bad_derive_and_recipe_are_located(tmp_path, data, where, message):
    result = invoke("validate", str(_config(tmp_path, data)))
    assert result.exit_code == 2, result.output
    assert where in result.stderr and message in result.stderr, result.stderr


def test_a_derived_feature_of_an_unknown_column_is_located_at_load(tmp_path):
    path = _config(tmp_path, "  dataset: xor\n  samples: 40\n  derive: [x1, sin(x3)]\n")
    result = invoke("train", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert "c.yaml:4:16: data.derive[1]: 'sin(x3)': no feature 'x3'" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("features, keep", [(None, [0, 1]), ("[x2]", [1]), ("[]", [])])
def test_derive_adds_its_features_after_the_selected_raw_ones(tmp_path, features, keep):
    from dlrecap.data import load_splits

    raw = load_config(_config(tmp_path, "  dataset: xor\n  samples: 40\n")).config
    chosen = "" if features is None else f"  features: {features}\n"
    derived = load_config(_config(tmp_path, f"  dataset: xor\n  samples: 40\n{chosen}"
                                  "  derive: [x1^2, x1*x2, cos(x2)]\n")).config
    a, b = load_splits(raw.data, 0), load_splits(derived.data, 0)
    # x1 is read by the derived features even where it is no input itself
    assert b.feature_names == [["x1", "x2"][i] for i in keep] + ["x1^2", "x1*x2", "cos(x2)"]
    assert b.n_features == len(keep) + 3
    for name in ("x_train", "x_val", "x_test"):
        x, d = getattr(a, name).astype(np.float64), getattr(b, name)
        want = np.concatenate([x[:, keep], np.stack(
            [x[:, 0] ** 2, x[:, 0] * x[:, 1], np.cos(x[:, 1])], axis=1)], axis=1)
        np.testing.assert_allclose(d, want.astype(np.float32))
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_features_select_raw_columns_of_a_built_in_set(tmp_path):
    from dlrecap.data import load_splits

    every = load_splits(load_config(_config(tmp_path, "  dataset: linear\n  samples: 40\n"))
                        .config.data, 0)
    chosen = load_splits(load_config(_config(
        tmp_path, "  dataset: linear\n  samples: 40\n  features: [x3, x1]\n")).config.data, 0)
    assert every.feature_names == ["x1", "x2", "x3"] and chosen.feature_names == ["x3", "x1"]
    np.testing.assert_array_equal(chosen.x_train, every.x_train[:, [2, 0]])
    np.testing.assert_array_equal(chosen.y_val, every.y_val)


def test_a_data_file_derives_from_columns_it_does_not_take_raw(tmp_path):
    from dlrecap.data import load_splits

    rows = np.arange(1, 61, dtype=np.float64).reshape(20, 3)
    (tmp_path / "d.csv").write_text("a,b,c,y\n" + "\n".join(
        f"{a:g},{b:g},{c:g},{a + b + 0.5:g}" for a, b, c in rows))  # regression
    config = load_config(_config(tmp_path, "  path: d.csv\n  target: y\n  features: [c]\n"
                                 "  derive: [a*b]\n")).config
    splits = load_splits(config.data, 0)
    assert splits.feature_names == ["c", "a*b"]
    x, y = splits.x_train.astype(np.float64), splits.y_train
    np.testing.assert_allclose(x[:, 0] - 2, (y - 1.5) / 2)  # c is the row's a + 2; y = 2a + 1.5
    np.testing.assert_allclose(x[:, 1], (x[:, 0] - 2) * (x[:, 0] - 1))


@pytest.mark.parametrize("features, where, message", [
    ("[x1, x3]", "c.yaml:4:18: data.features[1]", "no column 'x3' in the data"),
    ("[x2, x2]", "c.yaml:4:18: data.features[1]", "'x2' is listed twice"),
])
def test_unknown_raw_columns_of_a_built_in_set_are_located_at_load(tmp_path, features, where,
                                                                   message):
    path = _config(tmp_path, f"  dataset: xor\n  samples: 40\n  features: {features}\n")
    result = invoke("train", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert f"{where}: {message}" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_playground_recipes_draw_its_square_and_labels():
    rng = np.random.default_rng(0)
    for name, make in PLAYGROUND.items():
        x, y, features, labels = make(500, 0.0, rng)
        assert x.shape == (500, 2) and np.abs(x).max() <= 6 and features == ["x1", "x2"], name
        assert np.abs(x).max() > 4, name  # it fills the square, not the unit disc
    x, y, _, _ = PLAYGROUND["circles"](400, 0.0, rng)
    np.testing.assert_array_equal(y, np.hypot(x[:, 0], x[:, 1]) < 2.5)
    assert y.sum() == 200
    x, y, _, _ = PLAYGROUND["xor"](400, 0.0, rng)
    np.testing.assert_array_equal(y, x[:, 0] * x[:, 1] >= 0)
    assert np.abs(x).min() >= 0.3
    x, y, _, _ = PLAYGROUND["plane"](400, 0.0, rng)
    np.testing.assert_allclose(y, (x[:, 0] + x[:, 1]) / 10, rtol=1e-5, atol=1e-6)
    x, y, _, _ = PLAYGROUND["bumps"](4000, 0.0, rng)
    near = np.hypot(x[:, 0] - 4, x[:, 1] - 2.5) < 0.5  # a positive bump's top
    assert near.any() and (y[near] > 0.7).all() and np.abs(y).max() <= 1
    _, y_noisy, _, _ = PLAYGROUND["circles"](400, 0.5, np.random.default_rng(1))
    x_clean, y_clean, _, _ = PLAYGROUND["circles"](400, 0.0, np.random.default_rng(1))
    assert (y_noisy != y_clean).any()  # noise flips labels near the rim


@pytest.mark.parametrize("text, readable", [
    ("x1", True), ("x1^2", True), (" x1 * cos( x2 ) ", True), ("x1^2*sin(x2)", True),
    ("x1+x2", False), ("x1^3", False), ("sin(x1^2)", False), ("x1**2", False),
    ("__import__('os')", False), ("", False),
])
def test_the_schema_pattern_reads_what_the_parser_reads(text, readable):
    import re

    from dlrecap.derive import PATTERN, parse

    assert bool(re.match(PATTERN, text)) is readable
    if readable:
        parse(text)
    else:
        with pytest.raises(ValueError):
            parse(text)
