"""Tests for `dlrecap predict`: labels and probabilities out, columns carried through, bad input.

Each trained run here is tiny (tens of rows, a few epochs); the module fixtures train once.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import invoke, students_csv, write_prices

pytestmark = pytest.mark.slow  # every test here needs a trained model


def train(folder: Path, config: str, name: str) -> Path:
    """Train `config` (written to `folder/<name>.yaml`) and return the run directory."""
    path = folder / f"{name}.yaml"
    path.write_text(config, encoding="utf-8")
    result = invoke("train", str(path), "--runs-dir", str(folder / "runs"), "--quiet")
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip())


@pytest.fixture(scope="module")
def student_run(tmp_path_factory):
    """A binary run with string labels, trained from another working directory."""
    folder = tmp_path_factory.mktemp("students")
    (folder / "data").mkdir()
    (folder / "data" / "students.csv").write_text(students_csv(60, seed=0), encoding="utf-8")
    config = ("data:\n  path: data/students.csv\n  target: passed\nmodel:\n  layers: []\n"
              "training:\n  learning_rate: 0.1\n  epochs: 5\n  batch_size: 8\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("elsewhere"))
        return train(folder, config, "students")


NEW_STUDENTS = 'id,lectures,project_hours,note\n007,30,40.0,"top, keen"\n010,0,0.50,\n'


def test_predict_returns_the_training_labels_and_their_probabilities(student_run, tmp_path):
    new = tmp_path / "new.csv"
    new.write_text(NEW_STUDENTS, encoding="utf-8")
    result = invoke("predict", str(student_run), str(new))
    assert result.exit_code == 0, result.output
    out = pd.read_csv(io.StringIO(result.stdout), dtype=str, keep_default_na=False)
    assert list(out.columns) == ["id", "lectures", "project_hours", "note", "prediction",
                                 "prob_fail", "prob_pass"]
    # the carried-through cells are the file's own text
    assert out["id"].tolist() == ["007", "010"]
    assert out["project_hours"].tolist() == ["40.0", "0.50"]
    assert out["note"].tolist() == ["top, keen", ""]
    probs = out[["prob_fail", "prob_pass"]].astype(float).to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    expected = np.where(probs[:, 1] >= 0.5, "pass", "fail")
    assert out["prediction"].tolist() == expected.tolist()
    # full marks and no work at all: even a 5-epoch perceptron tells them apart
    assert out["prediction"].tolist() == ["pass", "fail"]


def test_predict_by_config_name_to_an_output_file(student_run, tmp_path):
    new = tmp_path / "new.csv"
    new.write_text(NEW_STUDENTS, encoding="utf-8")
    output = tmp_path / "out" / "predictions.csv"
    output.parent.mkdir()
    result = invoke("predict", "students", str(new), "--output", str(output),
                    env={"DLRECAP_RUNS_DIR": str(student_run.parent)})
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "wrote 2 rows" in result.stderr
    frame = pd.read_csv(output)
    assert frame["prediction"].tolist() == ["pass", "fail"]
    assert [p.name for p in output.parent.iterdir()] == ["predictions.csv"]  # no temp file left


@pytest.mark.parametrize("taken", ["prediction", "prob_pass"])
def test_predict_parquet_input_keeps_columns_named_like_the_new_ones(student_run, tmp_path, taken):
    frame = pd.DataFrame({"lectures": [30, 0], "project_hours": [40.0, 0.5], taken: ["old", "old"]})
    frame.to_parquet(tmp_path / "new.parquet")
    result = invoke("predict", str(student_run), str(tmp_path / "new.parquet"))
    assert result.exit_code == 0, result.output
    out = pd.read_csv(io.StringIO(result.stdout))
    assert list(out.columns) == ["lectures", "project_hours", taken, "prediction_dlrecap",
                                 "prob_fail_dlrecap", "prob_pass_dlrecap"]
    assert out[taken].tolist() == ["old", "old"]
    assert out["prediction_dlrecap"].tolist() == ["pass", "fail"]


@pytest.mark.parametrize("content, message", [
    ("lectures,hours\n1,2\n",
     "no column 'project_hours', which run {run} takes as input (columns: lectures, hours) "
     "(the run's feature columns are: lectures, project_hours)"),
    ("lectures,project_hours\n1,2\n3,lots\n", "column 'project_hours', data row 2: 'lots' is not a number"),
    ("lectures,project_hours\n1,2\n,3\n", "column 'lectures', data row 2: missing value"),
    ("lectures,project_hours\n", "no data rows, only a header"),
    ("", "the file is empty"),
])
def test_predict_bad_input_exits_2_naming_file_column_and_row(student_run, tmp_path, content, message):
    path = tmp_path / "new.csv"
    path.write_text(content, encoding="utf-8")
    result = invoke("predict", str(student_run), str(path))
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    assert result.stderr.startswith(f"error: {path}: ")
    assert message.format(run=student_run.name) in result.stderr


def test_predict_unknown_run_or_format(student_run, tmp_path):
    result = invoke("predict", "nope", str(tmp_path / "x.csv"), "--runs-dir", str(student_run.parent))
    assert result.exit_code == 2 and "no run directory or run named 'nope'" in result.stderr
    result = invoke("predict", str(student_run), str(tmp_path / "x.json"))
    assert result.exit_code == 2 and "unknown file format ('.json')" in result.stderr


def predicted(run: Path, rows: str, folder: Path) -> pd.DataFrame:
    """`dlrecap predict RUN` on the CSV text `rows`, read back."""
    path = folder / "rows.csv"
    path.write_text(rows, encoding="utf-8")
    result = invoke("predict", str(run), str(path))
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout))


def test_predict_a_built_in_regression_run(tmp_path):
    run = train(tmp_path, "data:\n  dataset: linear\n  samples: 40\nmodel:\n  layers: []\n"
                "training:\n  epochs: 2\n", "linear")
    out = predicted(run, "x1,x2,x3\n0,0,0\n1,-1,0.5\n", tmp_path)
    assert list(out.columns) == ["x1", "x2", "x3", "prediction"]
    assert out["prediction"].dtype == float and out["prediction"].nunique() == 2


def test_predictions_are_in_the_targets_own_units(tmp_path):
    # Two epochs teach little, but a standardized target starts at its mean, not at 0.
    write_prices(tmp_path / "prices.csv", rows=60)
    run = train(tmp_path, "data:\n  path: prices.csv\n  target: price\nmodel:\n  layers: [4]\n"
                "training:\n  epochs: 2\n", "prices")
    out = predicted(run, "x1,x2\n0,0\n1,-1\n", tmp_path)
    assert out["prediction"].between(10_000, 30_000).all(), out


APARTMENTS = "area,district,balcony,rent\n" + "".join(
    f"{30 + 5 * i},{['centre', 'suburbs', 'river'][i % 3]},{i % 2 == 0},"
    f"{(30 + 5 * i) * (15 if i % 3 == 0 else 10) + 50 * (i % 2 == 0)}\n" for i in range(45))


@pytest.fixture(scope="module")
def apartment_run(tmp_path_factory):
    """A regression run with a text and a boolean feature, one-hot encoded in the model."""
    folder = tmp_path_factory.mktemp("apartments")
    (folder / "apartments.csv").write_text(APARTMENTS, encoding="utf-8")
    return train(folder, "data:\n  path: apartments.csv\n  target: rent\nmodel:\n  layers: [4]\n"
                 "training:\n  epochs: 3\n  batch_size: 8\n", "apartments")


def test_categorical_features_go_in_raw(apartment_run, tmp_path):
    path = tmp_path / "new.csv"
    path.write_text("district,area,balcony\nriver,50,True\ncentre,50,False\n", encoding="utf-8")
    result = invoke("predict", str(apartment_run), str(path))
    assert result.exit_code == 0, result.output
    out = pd.read_csv(io.StringIO(result.stdout))
    assert list(out.columns) == ["district", "area", "balcony", "prediction"]
    assert out["prediction"].notna().all() and out["prediction"].nunique() == 2


def test_an_unseen_category_is_predicted_with_a_warning(apartment_run, tmp_path):
    path = tmp_path / "new.csv"
    path.write_text("area,district,balcony\n50,centre,True\n60,harbour,True\n60,docks,True\n"
                    "70,harbour,False\n", encoding="utf-8")
    result = invoke("predict", str(apartment_run), str(path))
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"warning: {path}: column 'district': 2 categories not seen in training "
                             "('harbour', 'docks', in 3 rows); predicted as an unknown category\n")
    out = pd.read_csv(io.StringIO(result.stdout))
    assert len(out) == 4 and out["prediction"].notna().all()
    # Unseen categories share the one unknown slot: otherwise equal rows predict alike.
    assert out.loc[1, "prediction"] == out.loc[2, "prediction"]


def test_a_warning_on_rows_from_stdin_names_stdin(apartment_run):
    result = invoke("predict", str(apartment_run), "-",
                    stdin="area,district,balcony\n60,harbour,True\n")
    assert result.exit_code == 0, result.output
    assert result.stderr == ("warning: <stdin>: column 'district': 1 category not seen in training "
                             "('harbour', in 1 row); predicted as an unknown category\n")


def test_table_model_one_hot_widths_and_parameter_count(tmp_path):
    from dlrecap.config.load import load_config
    from dlrecap.data import load_splits
    from dlrecap.model import build_model, parameter_count, plan_head

    rows = [f"{i},{['red', 'green', 'blue'][i % 3]},{i % 4 == 0},{'ab'[i % 2]}" for i in range(30)]
    (tmp_path / "d.csv").write_text("n,colour,flag,y\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config_path = tmp_path / "c.yaml"
    config_path.write_text("data:\n  path: d.csv\n  target: y\nmodel:\n  layers: [4]\n", encoding="utf-8")
    config = load_config(config_path).config
    splits = load_splits(config.data, 0)
    model = build_model(config, splits, plan_head(config, splits.task, splits.n_classes))
    # inputs: n (1) + colour (3 categories + 1 unseen slot) + flag (2 + 1) = 8
    assert model.get_layer("features").output.shape == (None, 8)
    assert parameter_count(model) == (8 * 4 + 4) + (4 * 1 + 1)
    assert sorted(model.input) == ["colour", "flag", "n"]
    assert model.get_layer("categories_1").get_vocabulary() == ["[UNK]", "blue", "green", "red"]


def test_the_students_lesson_trains_from_anywhere_and_predicts_pass_or_fail(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    result = invoke("train", str(root / "configs" / "students.yaml"), "--runs-dir", str(runs), "-q")
    assert result.exit_code == 0, result.output  # exit 3 if its `expect:` were not met
    result = invoke("predict", "students", str(root / "configs" / "data" / "new_students.csv"),
                    "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    out = pd.read_csv(io.StringIO(result.stdout)).set_index("student")
    assert set(out["prediction"]) <= {"pass", "fail"}
    assert out.loc["Ada", "prediction"] == "pass" and out.loc["Ben", "prediction"] == "fail"
    assert (out["prob_pass"] > 0.5).eq(out["prediction"] == "pass").all()
