"""Tests for `dlrecap eval RUN --data FILE`: a new labelled file scored as a split is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import invoke, students_csv

pytestmark = pytest.mark.slow  # every test here needs a trained model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A binary run on a CSV file with text labels, and its data."""
    folder = tmp_path_factory.mktemp("eval_data")
    (folder / "students.csv").write_text(students_csv(80, seed=1), encoding="utf-8")
    config = folder / "students.yaml"
    config.write_text(f"data:\n  path: {folder / 'students.csv'}\n  target: passed\n"
                      "model:\n  layers: [4]\ntraining:\n  learning_rate: 0.05\n  epochs: 4\n"
                      "  batch_size: 8\n", encoding="utf-8")
    trained = invoke("train", str(config), "--runs-dir", str(folder / "runs"), "--quiet")
    assert trained.exit_code == 0, trained.output
    return Path(trained.stdout.strip()), pd.read_csv(folder / "students.csv")


def _json(*args: str) -> dict:
    result = invoke("eval", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_file_of_the_test_rows_scores_as_the_test_split(run, tmp_path):
    run_dir, data = run
    test_rows = np.load(run_dir / "splits.npz")["test"]
    # Columns in another order, and one the run does not use: both are fine.
    rows = data.iloc[test_rows][["passed", "project_hours", "lectures"]].assign(id=range(len(test_rows)))
    rows.to_csv(tmp_path / "new.csv", index=False)
    on_file = _json(str(run_dir), "--data", str(tmp_path / "new.csv"))
    on_split = _json(str(run_dir), "--split", "test")
    assert on_file["data"] == str(tmp_path / "new.csv")
    assert on_file["metrics"] == pytest.approx(on_split["metrics"], abs=1e-5)
    assert on_file["baseline"] == pytest.approx(on_split["baseline"], abs=1e-9)
    # Rows of a single class: the scores change with the rows, so the file is what is scored.
    rows[rows.passed == "pass"].to_csv(tmp_path / "passes.csv", index=False)
    passes = _json(str(run_dir), "--data", str(tmp_path / "passes.csv"))
    assert passes["baseline"]["accuracy"] in (0.0, 1.0)
    assert passes["metrics"] != on_file["metrics"]


@pytest.mark.parametrize(("text", "message"), [
    ("lectures,project_hours\n3,4.0\n", "no column 'passed', which scoring run"),
    ("lectures,passed\n3,pass\n", "no column 'project_hours', which scoring run"),
    ("lectures,project_hours,passed\n3,4.0,pass\n5,1.0,maybe\n",
     "target column 'passed', data row 2: label 'maybe' is not one the run knows (fail, pass)"),
    ("lectures,project_hours,passed\n3,4.0,\n", "target column 'passed', data row 1: missing value"),
    ("lectures,project_hours,passed\n3,lots,pass\n", "column 'project_hours'"),
])
def test_a_bad_file_exits_2_with_one_line(run, tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    result = invoke("eval", str(run[0]), "--data", str(path))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_split_and_data_together_are_refused(run, tmp_path):
    result = invoke("eval", str(run[0]), "--split", "test", "--data", str(tmp_path / "x.csv"))
    assert result.exit_code == 2
    assert "give --split or --data, not both" in result.stderr
