"""Tests for `dlrecap init`: a commented starter config that validates and trains."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dlrecap.config.load import load_config

from helpers import ENV, invoke


def table(folder: Path, name: str = "grades.csv", rows: int = 40, gap: int | None = None) -> Path:
    """`hours,track,grade`: a numeric, a text column and a three-class text target."""
    lines = ["hours,track,grade"]
    for i in range(rows):
        hours = "" if i == gap else str(i % 13)
        lines.append(f"{hours},{['online', 'campus'][i % 2]},{['A', 'B', 'C'][i % 3]}")
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_init_writes_a_commented_config_that_validates(tmp_path, monkeypatch):
    table(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = invoke("init", "grades.csv", "--target", "grade")
    assert result.exit_code == 0, result.output
    assert result.stdout == "grades.yaml\n"
    assert "multiclass classification of 'grade' (A, B, C)" in result.stderr
    text = (tmp_path / "grades.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    assert raw["data"] == {"path": "grades.csv", "target": "grade", "features": ["hours", "track"],
                           "task": "multiclass", "missing": "error", "validation_split": 0.2,
                           "test_split": 0.2, "standardize": True}
    assert raw["model"]["layers"] == [8] and raw["name"] == "grades"
    # every key line carries a comment explaining it
    keys = [line for line in text.splitlines() if ":" in line and not line.startswith("#")
            and not line.rstrip().endswith(":")]
    assert all(" # " in line for line in keys if not line.strip().startswith("optimizer"))
    assert "# text, 2 categories: one-hot encoded inside the model" in text
    config = load_config(tmp_path / "grades.yaml").config
    assert config.data.path == str(tmp_path / "grades.csv")


def test_init_infers_regression_and_missing_policy(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("size,price\n" + "".join(
        f"{'' if i == 3 else i},{i * 1.7 + 3}\n" for i in range(40)), encoding="utf-8")
    output = tmp_path / "conf" / "prices.yaml"
    output.parent.mkdir()
    result = invoke("init", str(path), "--target", "price", "--output", str(output))
    assert result.exit_code == 0, result.output
    text = output.read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    assert raw["data"]["task"] == "regression" and raw["data"]["standardize_target"] is True
    assert raw["data"]["missing"] == "drop" and "1 of 40 rows have a missing value" in text
    assert raw["data"]["path"] == "../prices.csv"  # relative to the config's folder
    load_config(output)


def test_init_quotes_column_names_yaml_would_misread(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("project hours,yes,a: b,#n,y\n" + "".join(
        f"{i % 7},{i % 5},{i % 3},{i % 4},{'ab'[i % 2]}\n" for i in range(30)), encoding="utf-8")
    output = tmp_path / "odd.yaml"
    assert invoke("init", str(path), "--target", "y", "--output", str(output)).exit_code == 0
    features = load_config(output).config.data.features
    assert features == ["project hours", "yes", "a: b", "#n"]


def test_init_refuses_to_overwrite_without_force(tmp_path):
    path = table(tmp_path)
    output = tmp_path / "c.yaml"
    output.write_text("mine\n", encoding="utf-8")
    result = invoke("init", str(path), "--target", "grade", "--output", str(output))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (f"error: {output} already exists (pass --force to overwrite it, "
                             "or choose another --output)\n")
    assert output.read_text(encoding="utf-8") == "mine\n"
    result = invoke("init", str(path), "--target", "grade", "--output", str(output), "--force")
    assert result.exit_code == 0, result.output
    assert "target: grade" in output.read_text(encoding="utf-8")


@pytest.mark.parametrize("target, content, message", [
    ("nope", None, "--target: no column 'nope' in grades.csv (columns: hours, track, grade)"),
    ("grade", "hours,grade\n1,A\n2,A\n3,A\n4,A\n5,A\n6,A\n7,A\n8,A\n", "has a single class ('A')"),
    ("grade", "hours,grade\n1,A\nx,B\n", "column 'hours', data row 2: 'x' is not a number"),
    ("grade", "", "the file is empty"),
])
def test_init_on_bad_data_exits_2_and_writes_nothing(tmp_path, target, content, message):
    path = table(tmp_path)
    if content is not None:
        path.write_text(content, encoding="utf-8")
    output = tmp_path / "c.yaml"
    result = invoke("init", str(path), "--target", target, "--output", str(output))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not output.exists()


def test_init_needs_a_target():
    result = invoke("init", "data.csv")
    assert result.exit_code == 2 and "--target" in result.stderr


def test_init_does_not_import_tensorflow(tmp_path):
    table(tmp_path)
    code = ("import sys; from typer.testing import CliRunner; from dlrecap.cli import app; "
            f"r = CliRunner().invoke(app, ['init', {str(tmp_path / 'grades.csv')!r}, '--target', "
            f"'grade', '--output', {str(tmp_path / 'c.yaml')!r}]); assert r.exit_code == 0, r.output; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **ENV})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.slow
def test_the_written_config_trains_from_another_directory(tmp_path, monkeypatch):
    (tmp_path / "project").mkdir()
    path = table(tmp_path / "project", gap=5)
    output = tmp_path / "project" / "grades.yaml"
    assert invoke("init", str(path), "--target", "grade", "--output", str(output)).exit_code == 0
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "project/grades.yaml", "--set", "training.epochs=2", "--quiet",
                    "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    metrics = yaml.safe_load((Path(result.stdout.strip()) / "metrics.json").read_text())
    assert metrics["labels"] == ["A", "B", "C"] and metrics["features"] == ["hours", "track"]
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 2
