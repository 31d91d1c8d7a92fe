"""Class weights and the class metrics (precision, recall, F1, AUC) against Keras and scikit-learn."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score
from sklearn.utils.class_weight import compute_class_weight

from dlrecap.config.schema import Config
from dlrecap.model import Head
from dlrecap.scoring import balanced_weights, class_scores

from helpers import invoke

METRICS = ("precision", "recall", "f1", "auc")


def _binary_case(seed: int = 0, rows: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.2).astype(np.int64)
    # Rounded to two decimals: many ties, which the exact AUC must share out as sklearn does.
    p = np.round(np.clip(0.3 * y + rng.random(rows) * 0.7, 0, 1), 2)
    return p.reshape(-1, 1), y


def _multiclass_case(seed: int = 1, rows: int = 300, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, rows)
    logits = rng.normal(size=(rows, k)) + 1.5 * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return p, y


# --- exact scores (NumPy) against scikit-learn ---------------------------------------------


def test_binary_scores_equal_sklearns():
    p, y = _binary_case()
    found = class_scores(METRICS, p, y, ["no", "yes"])
    predicted = (p[:, 0] > 0.5).astype(int)
    assert found["precision"] == pytest.approx(precision_score(y, predicted))
    assert found["recall"] == pytest.approx(recall_score(y, predicted))
    assert found["f1"] == pytest.approx(f1_score(y, predicted))
    assert found["auc"] == pytest.approx(roc_auc_score(y, p[:, 0]), abs=1e-12)
    for name, score in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        per_class = score(y, predicted, average=None)
        assert [found[f"{name}_no"], found[f"{name}_yes"]] == pytest.approx(list(per_class))


def test_multiclass_scores_are_sklearns_macro_averages():
    p, y = _multiclass_case()
    labels = ["a", "b", "c", "d"]
    found = class_scores(METRICS, p, y, labels)
    predicted = p.argmax(axis=1)
    for name, score in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        assert found[name] == pytest.approx(score(y, predicted, average="macro"))
        per_class = score(y, predicted, average=None)
        assert [found[f"{name}_{label}"] for label in labels] == pytest.approx(list(per_class))
    assert found["auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))


def test_a_class_never_predicted_scores_zero_precision_as_sklearn_does():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.eye(3)[[0, 0, 1, 0, 1, 1]]  # class 2 is never predicted
    found = class_scores(("precision", "f1"), p, y)
    predicted = p.argmax(axis=1)
    assert found["precision"] == pytest.approx(
        precision_score(y, predicted, average="macro", zero_division=0))
    assert found["f1"] == pytest.approx(f1_score(y, predicted, average="macro", zero_division=0))


def test_balanced_weights_equal_sklearns_compute_class_weight():
    y = np.array([0] * 23 + [1] * 2 + [2] * 7)
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=y)
    assert balanced_weights(y, 3) == pytest.approx(list(expected))
    # a class without training rows weighs 1; the others as among the classes present
    assert balanced_weights(y, 4) == pytest.approx([*expected, 1.0])


def test_a_class_absent_from_rows_and_predictions_is_left_out_of_the_macro_average():
    p, y = _multiclass_case()
    p = np.hstack([p, np.zeros((len(p), 1))])  # a fifth class: no row, never predicted
    found = class_scores(METRICS, p, y, ["a", "b", "c", "d", "e"])
    for name, score in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        assert found[name] == pytest.approx(score(y, p.argmax(axis=1), average="macro"))


# --- per-epoch metrics (the engines') against Keras' own metric objects ----------------------


def _counted(name: str, head: Head, y: np.ndarray, p: np.ndarray) -> float:
    from dlrecap.train.metrics import make_metrics

    metric = make_metrics(Head(head.units, head.activation, head.loss, head.one_hot, (name,)))[0]
    metric.update_state(y, p.astype("float32"))
    return float(metric.result())


@pytest.mark.slow
def test_epoch_metrics_equal_keras_metrics_for_a_binary_head():
    import keras

    p, y = _binary_case(seed=3)
    head = Head(1, "sigmoid", "binary_crossentropy", False, METRICS)
    yt = y.astype("float32").reshape(-1, 1)
    for name, reference in (("precision", keras.metrics.Precision()),
                            ("recall", keras.metrics.Recall()),
                            ("f1", keras.metrics.F1Score(threshold=0.5)),
                            ("auc", keras.metrics.AUC())):
        reference.update_state(yt, p.astype("float32"))
        assert _counted(name, head, yt, p) == pytest.approx(float(np.squeeze(reference.result())),
                                                            abs=1e-6), name


def test_epoch_metrics_equal_keras_macro_metrics_for_a_multiclass_head():
    import keras

    p, y = _multiclass_case(seed=4)
    head = Head(4, "softmax", "sparse_categorical_crossentropy", False, METRICS)
    one_hot = np.eye(4, dtype="float32")[y]
    f1 = keras.metrics.F1Score(average="macro")
    f1.update_state(one_hot, p.astype("float32"))
    auc = keras.metrics.AUC(multi_label=True, num_labels=4)
    auc.update_state(one_hot, p.astype("float32"))
    sparse = y.astype("int32")
    assert _counted("f1", head, sparse, p) == pytest.approx(float(f1.result()), abs=1e-6)
    assert _counted("auc", head, sparse, p) == pytest.approx(float(auc.result()), abs=1e-6)
    predicted = p.argmax(axis=1)
    assert _counted("recall", head, sparse, p) == pytest.approx(
        recall_score(y, predicted, average="macro"), abs=1e-6)


@pytest.mark.slow
def test_the_fast_engine_scores_as_the_keras_engine():
    from test_fast_engine import passing_through

    from dlrecap.train.fast_engine import FastEngine
    from dlrecap.train.keras_engine import KerasEngine

    p, y = _multiclass_case(seed=5, rows=120, k=3)
    head = Head(3, "softmax", "sparse_categorical_crossentropy", False, ("accuracy", *METRICS))
    model = passing_through(3)
    x, sparse = p.astype("float32"), y.astype("int32")
    fast = FastEngine().evaluator(model, head)(x, sparse)
    slow = KerasEngine().evaluator(model, head)(x, sparse)
    assert fast == pytest.approx(slow, rel=1e-5)


# --- class weights change the loss as Keras' fit(class_weight=...) does ---------------------


def _one_epoch(engine_name: str, weights: tuple[float, ...] | None) -> tuple[float, list[np.ndarray]]:
    """Train a small model for one epoch from fixed weights; its loss and its weights after."""
    import keras

    from dlrecap.train.fast_engine import FastEngine
    from dlrecap.train.keras_engine import KerasEngine

    config = Config.model_validate({"name": "cw", "seed": 7, "data": {"dataset": "moons"},
                                    "training": {"epochs": 1, "batch_size": 16,
                                                 "learning_rate": 0.05}})
    rng = np.random.default_rng(7)
    x = rng.normal(size=(100, 3)).astype("float32")
    y = (x[:, 0] + 0.5 * rng.normal(size=100) > 1.0).astype("float32").reshape(-1, 1)
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(1, activation="sigmoid")])
    head = Head(1, "sigmoid", "binary_crossentropy", False, ("accuracy",), weights)
    engine = FastEngine() if engine_name == "fast" else KerasEngine()
    engine.compile(model, head, config, train_rows=len(x))
    logs: dict[str, float] = {}
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda _epoch, row: logs.update(row))
    engine.fit(model, head, config, (x, y), None, [keep])
    return float(logs["loss"]), model.get_weights()


@pytest.fixture(scope="module")
def one_epoch() -> dict[tuple[str, bool], tuple[float, list[np.ndarray]]]:
    weights = (0.6, 3.0)
    return {(engine, weighted): _one_epoch(engine, weights if weighted else None)
            for engine, weighted in (("fast", True), ("keras", True), ("fast", False))}


@pytest.mark.slow
def test_class_weights_change_the_loss_as_keras_class_weight_does(one_epoch):
    fast_loss, fast_weights = one_epoch[("fast", True)]
    keras_loss, keras_weights = one_epoch[("keras", True)]
    assert fast_loss == pytest.approx(keras_loss, rel=1e-5)
    for a, b in zip(fast_weights, keras_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # ... and they do change it: the unweighted epoch ends elsewhere.
    plain_loss, plain_weights = one_epoch[("fast", False)]
    assert plain_loss != pytest.approx(fast_loss, rel=1e-3)
    assert not np.allclose(plain_weights[0], fast_weights[0])


# --- end to end: metrics.json, eval, engine_reason, bad configs -----------------------------


def _write_data(folder: Path) -> Path:
    """120 customers, 15% churners; a text column `plan` with three values."""
    rng = np.random.default_rng(11)
    path = folder / "churn.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["tenure", "calls", "plan", "churned", "tier"])
        for i in range(120):
            churn = i % 7 == 0
            tenure = rng.normal(10 if churn else 25, 8)
            out.writerow([round(tenure, 1), rng.poisson(3 if churn else 1),
                          ("basic", "plus", "max")[i % 3], "yes" if churn else "no",
                          ("low", "mid", "high")[int(tenure > 15) + int(tenure > 30)]])
    return path


def _config(folder: Path, **training) -> Path:
    spec = {"name": "churn", "seed": 2,
            "data": {"path": "churn.csv", "target": "churned", "features": ["tenure", "calls"]},
            "model": {"layers": [8]},
            "training": {"epochs": 4, "learning_rate": 0.05, "batch_size": 16,
                         "metrics": ["accuracy", *METRICS], **training}}
    path = folder / "churn.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One multiclass run whose text column sends it to the Keras engine, balanced weights."""
    folder = tmp_path_factory.mktemp("imbalance")
    _write_data(folder)
    result = invoke("train", str(_config(folder)), "--runs-dir", str(folder / "runs"),
                    "--set", "data.target=tier", "--set", "data.features=[calls, plan]",
                    "--set", "training.class_weight=balanced", "--set", "training.epochs=2")
    assert result.exit_code == 0, result.output
    return next((folder / "runs").iterdir())


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_metrics_json_holds_macro_and_per_class_scores(run):
    info = _metrics(run)
    for split in ("train", "validation", "test"):
        assert {"recall_low", "recall_mid", "recall_high", "f1_mid", "precision_low"} <= set(info[split])
    assert {"recall_low", "f1_high"} <= set(info["baseline"]["test"])
    # The macro average is the mean over the classes that occur.
    test = info["test"]
    assert test["recall"] == pytest.approx(np.mean([test[f"recall_{c}"] for c in info["labels"]]))
    history = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"f1", "val_f1", "auc", "val_auc", "precision", "recall"} <= set(history)


@pytest.mark.slow
def test_the_report_shows_a_per_class_table(run):
    result = invoke("report", str(run))
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    table = page[page.index("<h3>Per class</h3>"):]
    for label in ("low", "mid", "high"):
        assert f"<td>{label}</td>" in table
    # The main table keeps one column per metric, not one per class.
    main = page[page.index("<h2>Metrics</h2>"):page.index("<h3>Per class</h3>")]
    assert "recall_low" not in main and ">recall<" in main


@pytest.mark.slow
def test_the_fallback_to_keras_is_explained_in_metrics_json(run):
    info = _metrics(run)
    assert info["engine"] == "keras" and "text columns" in info["engine_reason"]


def test_the_fast_engine_has_no_reason_and_keras_by_request_says_so():
    from dlrecap.train.engines import pick_engine

    head = Head(1, "sigmoid", "binary_crossentropy", False, METRICS, (1.0, 3.0))
    x = np.zeros((4, 2), dtype="float32")
    assert pick_engine("auto", head, x).reason is None
    assert pick_engine("keras", head, x).reason == "training.engine is keras"
    assert "text columns" in pick_engine("auto", head, {"a": x[:, :1]}).reason
    assert "class weights" in pick_engine("auto", head, x, distribute="mirrored").reason


@pytest.mark.slow
def test_eval_without_tensorflow_gives_the_final_scores_and_sklearns(run):
    from dlrecap.evaluate import load_run, model_outputs
    from dlrecap.inference import LightModel

    result = invoke("eval", str(run), "--json")
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)["metrics"]
    assert scored == pytest.approx(_metrics(run)["test"], rel=1e-4, abs=1e-6)
    _, splits, _, model = load_run(run)
    assert isinstance(model, LightModel)  # the NumPy path, no TensorFlow
    outputs = model_outputs(model, splits.x_test)
    predicted = outputs.argmax(axis=1)
    assert scored["f1"] == pytest.approx(f1_score(splits.y_test, predicted, average="macro"))
    assert scored["auc"] == pytest.approx(roc_auc_score(splits.y_test, outputs, multi_class="ovr"))


@pytest.mark.parametrize("setting, where, words", [
    ("{maybe: 2}", "training.class_weight.maybe", "no class is labelled 'maybe'"),
    ("{yes: -1}", "training.class_weight.yes", "greater than 0"),
    ("balance", "training.class_weight", "balanced"),
])
def test_bad_class_weights_exit_2_naming_the_key(tmp_path, setting, where, words):
    _write_data(tmp_path)
    config = _config(tmp_path)
    # Written as text: YAML reads `yes:` as a boolean, which dlrecap keeps as the label yes.
    config.write_text(config.read_text() + f"  class_weight: {setting}\n")
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert f"{config}:" in line and where in line and words in line
    assert not (tmp_path / "runs").exists()


def test_an_unknown_label_is_located_at_its_key(tmp_path):
    _write_data(tmp_path)
    config = _config(tmp_path)
    text = config.read_text() + "  class_weight:\n    no: 1\n    1: 3\n"
    config.write_text(text)
    line = len(text.splitlines())
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert (f"{config}:{line}:8: training.class_weight.1: no class is labelled '1' "
            "(the labels are: no, yes)") in result.stderr


def test_class_weight_on_a_regression_task_exits_2(tmp_path):
    config = tmp_path / "r.yaml"
    config.write_text("data:\n  dataset: diabetes\ntraining:\n  class_weight: balanced\n")
    result = invoke("validate", str(config))
    assert result.exit_code == 2
    assert "training.class_weight" in result.stderr and "regression" in result.stderr


def test_a_mapping_by_number_weighs_those_classes_and_leaves_the_others_at_1(tmp_path):
    from dlrecap.config.checks import check_task
    from dlrecap.config.load import load_config
    from dlrecap.model import plan_head, weigh_classes

    path = tmp_path / "c.yaml"
    path.write_text("data:\n  dataset: iris\ntraining:\n  class_weight:\n    1: 2.5\n    2.0: 4\n")
    config = load_config(path).config
    labels = ["0", "1", "2"]
    check_task(config, "multiclass", labels)
    head = weigh_classes(plan_head(config, "multiclass", 3), config, np.array([0, 1, 2]), labels)
    assert head.class_weights == (1.0, 2.5, 4.0)
