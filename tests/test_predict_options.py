"""predict's command-line habits: `--threshold`, `-` for stdin and stdout; `runs --json`."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pandas as pd
import pytest

from helpers import invoke

ROWS = "x1,x2\n0.1,0.1\n-0.5,0.5\n0.5,0.5\n0.02,-0.01\n"


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("xor")
    config = folder / "xor.yaml"
    config.write_text("data: {dataset: xor, samples: 120}\nmodel: {layers: [8]}\n"
                      "training: {epochs: 20, learning_rate: 0.05}\n", encoding="utf-8")
    result = invoke("train", str(config), "--runs-dir", str(folder / "runs"), "-q")
    assert result.exit_code == 0, result.output
    return next((folder / "runs").iterdir())


def predicted(run, tmp_path, *options):
    rows = tmp_path / "rows.csv"
    rows.write_text(ROWS, encoding="utf-8")
    result = invoke("predict", str(run), str(rows), *options)
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout))


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_threshold_picks_the_second_class_at_or_above_it(xor_run, tmp_path, threshold):
    out = predicted(xor_run, tmp_path, "--threshold", str(threshold))
    second = out["prob_1"] >= threshold
    assert out["prediction"].tolist() == [1 if s else 0 for s in second]


def test_without_a_threshold_the_more_probable_class_wins(xor_run, tmp_path):
    out = predicted(xor_run, tmp_path)
    assert out["prediction"].tolist() == [int(p1 > p0) for p0, p1 in zip(out["prob_0"], out["prob_1"],
                                                                         strict=True)]


def test_threshold_outside_0_1_or_for_regression_is_exit_2(xor_run, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text(ROWS, encoding="utf-8")
    assert invoke("predict", str(xor_run), str(rows), "--threshold", "1.5").exit_code == 2
    config = tmp_path / "line.yaml"
    config.write_text("data: {dataset: linear, samples: 60}\nmodel: {layers: []}\n"
                      "training: {epochs: 2}\n", encoding="utf-8")
    assert invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q").exit_code == 0
    run = next((tmp_path / "runs").iterdir())
    (tmp_path / "x.csv").write_text("x1\n0.5\n", encoding="utf-8")
    result = invoke("predict", str(run), str(tmp_path / "x.csv"), "--threshold", "0.5")
    assert result.exit_code == 2
    assert "--threshold applies to binary classification" in result.stderr


def test_stdin_in_and_stdout_out(xor_run, tmp_path):
    done = subprocess.run([sys.executable, "-m", "dlrecap", "predict", str(xor_run), "-", "--output", "-"],
                          input=ROWS, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(io.StringIO(done.stdout)).equals(predicted(xor_run, tmp_path))


def test_stdin_that_is_not_utf8_is_exit_2(xor_run):
    done = subprocess.run([sys.executable, "-m", "dlrecap", "predict", str(xor_run), "-"],
                          input=b"x1,x2\n\xff\xfe,1\n", capture_output=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert b"not UTF-8 text" in done.stderr and b"Traceback" not in done.stderr


@pytest.mark.parametrize("rows, message", [
    ("x1,x2\n0.1,abc\n", "<stdin>: column 'x2', data row 1: 'abc' is not a number"),
    ("x1,x2\n0.1,0.2\n0.3,0.4,0.5\n", "<stdin>: not a valid csv file: Expected 2 fields in line 3, saw 3"),
    ("x1\n0.1\n", "<stdin>: no column 'x2', which run"),
    ("", "<stdin>: the file is empty"),
])
def test_bad_rows_on_stdin_are_named_stdin(xor_run, rows, message):
    result = invoke("predict", str(xor_run), "-", stdin=rows)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {message}"), line
    assert "stdin.csv" not in line and "Traceback" not in result.output


def test_runs_json_lists_each_run(xor_run):
    result = invoke("runs", "--runs-dir", str(xor_run.parent), "--json")
    assert result.exit_code == 0, result.output
    (listed,) = json.loads(result.stdout)
    assert listed["run"] == str(xor_run) and listed["status"] == "completed"
    assert listed["epochs"] == 20 and "accuracy" in listed["test"]
