"""Tests for `dlrecap cv`: the folds' rows, stratification, cv.csv, resuming, bad K."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dlrecap.config.load import load_config
from dlrecap.cv import CSV_FILE, mean_std, plan_folds, run_cv
from dlrecap.data import load_splits
from dlrecap.data.split import ROWS_FILE, load_rows
from dlrecap.errors import Interrupted
from dlrecap.runs import read_metrics

from helpers import CtrlCAfter, invoke

IRIS = """\
name: tiny_iris
seed: 3
data:
  dataset: iris
  test_split: 0.2
  validation_split: 0.2
model:
  layers: [4]
training:
  learning_rate: 0.05
  epochs: 3
  batch_size: 16
"""
FOLDS = 3


def write(folder: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


class _StopInFold:
    """Presses Ctrl-C during the first epoch of fold `fold`."""

    def __init__(self, fold: int):
        self.fold = fold

    def fold_started(self, fold: int, folds: int):
        return CtrlCAfter(1) if fold == self.fold else None

    def fold_finished(self, fold: int, folds: int, run_dir: Path, reused: bool) -> None:
        pass


@pytest.fixture(scope="module")
def cv(tmp_path_factory):
    """A 3-fold cross-validation interrupted in fold 2, then run again to the end (by the CLI)."""
    folder = tmp_path_factory.mktemp("cv")
    config = write(folder, IRIS)
    runs_dir = folder / "runs"
    loaded = load_config(config, [])
    with pytest.raises(Interrupted, match="1 of 3 folds completed"):
        run_cv(loaded, FOLDS, runs_dir, progress=_StopInFold(2))
    [cv_dir] = runs_dir.glob("tiny_iris-cv-*")
    before = {p.name: read_metrics(p)["status"] for p in cv_dir.glob("tiny_iris-fold*")}
    for p in cv_dir.glob("tiny_iris-fold*"):  # a redone fold is a new folder: the marks go
        (p / "mark").write_text("")
    again = invoke("cv", str(config), "--folds", str(FOLDS), "--runs-dir", str(runs_dir))
    assert again.exit_code == 0, again.output
    runs = sorted((p for p in cv_dir.glob("tiny_iris-fold*")), key=lambda p: p.name)
    splits = load_splits(loaded.config.data, loaded.config.seed)
    y = np.empty(150, dtype=np.int64)
    for rows, labels in zip(splits.rows, (splits.y_train, splits.y_val, splits.y_test), strict=False):
        y[rows] = labels
    return {"dir": cv_dir, "before": before, "again": again, "runs": runs, "splits": splits, "y": y}


@pytest.mark.slow
def test_an_interrupted_cv_keeps_its_completed_folds_and_redoes_the_unfinished_one(cv):
    assert sorted(cv["before"].values()) == ["completed", "interrupted"]
    kept = next(name for name, status in cv["before"].items() if status == "completed")
    interrupted = next(name for name, status in cv["before"].items() if status == "interrupted")
    names = [p.name for p in cv["runs"]]
    assert kept in names and kept.startswith("tiny_iris-fold1-")  # the same directory, kept
    # replaced by a new attempt (named alike when it starts within the same second)
    assert not [p for p in cv["runs"] if p.name.startswith(interrupted[:len("tiny_iris-foldN")])
                and (p / "mark").exists()]
    assert (cv["dir"] / kept / "mark").exists()
    assert len(names) == FOLDS
    assert all(read_metrics(p)["status"] == "completed" for p in cv["runs"])
    assert "1 fold(s) were completed before and kept" in cv["again"].stderr
    assert cv["again"].stdout.strip().endswith(cv["dir"].name)


@pytest.mark.slow
def test_another_number_of_folds_is_another_cross_validation(cv):
    runs_dir = cv["dir"].parent
    config = runs_dir.parent / "tiny.yaml"
    before = sorted(p.relative_to(cv["dir"]) for p in cv["dir"].rglob("*"))
    two = invoke("cv", str(config), "--folds", "2", "--runs-dir", str(runs_dir))
    assert two.exit_code == 0, two.output
    [other] = [p for p in runs_dir.glob("tiny_iris-cv-*") if p != cv["dir"]]
    assert two.stdout.strip().endswith(other.name) and "completed before" not in two.stderr
    assert json.loads((other / "cv.json").read_text())["folds"] == 2
    held = [load_rows(run / ROWS_FILE)[2] for run in sorted(other.glob("tiny_iris-fold*"))]
    assert len(held) == 2 and sum(len(h) for h in held) == sum(len(r) for r in cv["splits"].rows[:2])
    assert sorted(p.relative_to(cv["dir"]) for p in cv["dir"].rglob("*")) == before
    # K = 3 again finds its own folds, all kept
    three = invoke("cv", str(config), "--folds", str(FOLDS), "--runs-dir", str(runs_dir))
    assert three.exit_code == 0, three.output
    assert three.stdout.strip().endswith(cv["dir"].name)
    assert f"{FOLDS} fold(s) were completed before and kept" in three.stderr


@pytest.mark.slow
def test_the_folds_are_disjoint_and_cover_the_rows_outside_the_test_split(cv):
    test = np.sort(cv["splits"].rows[2])
    saved = [load_rows(run / ROWS_FILE) for run in cv["runs"]]
    held = [rows[2] for rows in saved]
    for train, validation, held_out, unused in saved:
        np.testing.assert_array_equal(np.sort(unused), test)  # the test split, kept out
        every = np.concatenate([train, validation, held_out, unused])
        np.testing.assert_array_equal(np.sort(every), np.arange(150))  # each row once
        assert len(validation) == round(0.2 * (len(train) + len(validation)))
    pooled = np.concatenate(held)
    assert len(pooled) == len(set(pooled.tolist()))  # no row held out twice
    np.testing.assert_array_equal(np.sort(pooled), np.setdiff1d(np.arange(150), test))


@pytest.mark.slow
def test_the_folds_are_stratified(cv):
    y = cv["y"]
    counts = np.array([np.bincount(y[load_rows(run / ROWS_FILE)[2]], minlength=3)
                       for run in cv["runs"]])
    assert (counts.max(axis=0) - counts.min(axis=0) <= 1).all(), counts
    assert (counts > 0).all()


@pytest.mark.slow
def test_cv_csv_holds_each_folds_held_out_metrics_then_mean_and_std(cv):
    with open(cv["dir"] / CSV_FILE, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["fold"] for r in rows] == ["1", "2", "3", "mean", "std"]
    tests = [read_metrics(run)["test"] for run in cv["runs"]]
    assert list(rows[0])[2:] == list(tests[0]) == ["loss", "accuracy"]
    for row, run, test in zip(rows, cv["runs"], tests, strict=False):
        assert row["run"] == run.name
        assert {k: float(row[k]) for k in test} == test
        assert read_metrics(run)["rows"]["test"] == len(load_rows(run / ROWS_FILE)[2])
    for name in tests[0]:
        values = [t[name] for t in tests]
        assert float(rows[3][name]) == pytest.approx(np.mean(values))
        assert float(rows[4][name]) == pytest.approx(np.std(values, ddof=1))
    assert "mean ± std" in cv["again"].stdout


@pytest.mark.slow
def test_eval_scores_a_fold_run_on_its_held_out_rows(cv):
    from dlrecap.evaluate import score_run

    run = cv["runs"][1]
    scores = score_run(run, "test")
    for name, value in read_metrics(run)["test"].items():
        assert scores.metrics[name] == pytest.approx(value, abs=1e-4)


def test_regression_folds_cover_the_rows_once(tmp_path):
    config = write(tmp_path, "name: lin\ndata: {dataset: linear, samples: 50, test_split: 0}\n"
                             "training: {epochs: 1}\n")
    rows, kept_out = plan_folds(load_config(config, []), 4)
    assert kept_out == 0
    held = np.concatenate([r[2] for r in rows])
    np.testing.assert_array_equal(np.sort(held), np.arange(50))
    assert sorted(len(r[2]) for r in rows) == [12, 12, 13, 13]


@pytest.mark.parametrize(("folds", "message"), [
    ("1", "--folds must be at least 2, got 1"),
    ("0", "--folds must be at least 2, got 0"),
    ("50", "--folds 50: class 'setosa' has only 40 row(s) outside the test split"),
])
def test_bad_folds_exit_2_with_one_line_and_write_nothing(tmp_path, folds, message):
    config = write(tmp_path, IRIS)
    result = invoke("cv", str(config), "--folds", folds, "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_mean_std_is_the_sample_standard_deviation():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert np.isnan(mean_std([1.0])[1])
