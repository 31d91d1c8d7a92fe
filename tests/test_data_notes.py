"""What the data says that a learner should hear: a column that is the target by another
name, class labels that look like one answer spelled two ways, a numeric target read as
classes (IDs and constants: test_init_columns.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from dlrecap.config.schema import DataConfig
from dlrecap.data.columns import giveaways
from dlrecap.data.split import load_splits
from dlrecap.errors import DataError

from helpers import invoke


def answers_csv(folder: Path, spell=lambda i, label: label, rows: int = 80) -> Path:
    lines = ["x1,x2,answer"]
    for i in range(rows):
        a, b = (i * 37 % 100) / 100, (i * 61 % 100) / 100
        lines.append(f"{a},{b},{spell(i, 'yes' if a + b > 1 else 'no')}")
    path = folder / "answers.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_warnings(folder: Path, data_file: Path, key: str = "data.target",
                   model: dict | None = None, **data: object) -> list[str]:
    """The warning lines at `key` of a short run on `data_file` (its target: `answer`)."""
    config = folder / "answers.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"path": str(data_file), "target": "answer", **data},
        "model": {"layers": [4], **(model or {})}, "training": {"epochs": 2}}), encoding="utf-8")
    result = invoke("train", str(config), "--runs-dir", str(folder / "runs"), "--quiet")
    assert result.exit_code == 0, result.output
    return [line for line in result.stderr.splitlines() if f": {key}: " in line]


def test_labels_that_differ_only_in_case_are_named_at_data_target(tmp_path):
    data = answers_csv(tmp_path, lambda i, label: label.capitalize() if i % 3 == 0 else label)
    said = train_warnings(tmp_path, data)
    config_line = f"warning: {tmp_path / 'answers.yaml'}:"
    assert [line.removeprefix(config_line).split(": ", 1)[1] for line in said] == [
        f"data.target: classes {a!r}, {b!r} of column 'answer' differ only in case or spaces, "
        "and are learned as different classes (if they are one answer, spell it one way in the "
        "data file)" for a, b in (("No", "no"), ("Yes", "yes"))]
    assert all(line.startswith(config_line) for line in said)


def test_labels_spelled_one_way_give_no_note(tmp_path):
    assert train_warnings(tmp_path, answers_csv(tmp_path)) == []


def test_a_class_too_rare_to_split_is_named_as_another_spelled_differently(tmp_path):
    data = answers_csv(tmp_path, lambda i, label: "no " if i == 5 else label)
    with pytest.raises(DataError, match=r"class 'no ' has only 1 row.*\('no ' is 'no' spelled "
                                        r"another way\?\)"):
        load_splits(DataConfig(path=str(data), target="answer"), 0)


def ratings_csv(folder: Path, top: int) -> Path:
    """`answer` is a whole number from 1 to `top`, growing with x1."""
    return answers_csv(folder, lambda i, _label: str(1 + (i * 37 % 100) * top // 100))


def test_a_rating_that_auto_reads_as_classes_is_named_at_data_task(tmp_path):
    [line] = train_warnings(tmp_path, ratings_csv(tmp_path, 5), "data.task")
    assert "auto reads column 'answer' (whole numbers 1 to 5) as 5 classes" in line
    assert line.endswith("(set data.task: regression to predict it as a number, or multiclass "
                         "to keep classes and silence this)")


@pytest.mark.parametrize("top, task", [(5, "multiclass"), (5, "regression"), (2, "auto")])
def test_a_task_that_is_chosen_or_binary_gives_no_such_note(tmp_path, top, task):
    assert train_warnings(tmp_path, ratings_csv(tmp_path, top), "data.task", task=task) == []


def test_named_classes_give_no_such_note(tmp_path):
    names = answers_csv(tmp_path, lambda i, _label: ("low", "mid", "high")[i % 3])
    assert train_warnings(tmp_path, names, "data.task") == []


def test_init_says_a_numeric_target_it_made_classes_could_be_a_number(tmp_path):
    from dlrecap.starter import write_starter

    numbers = write_starter(ratings_csv(tmp_path, 5), "answer", tmp_path / "r.yaml").path
    [task] = [line for line in numbers.read_text(encoding="utf-8").splitlines()
              if line.startswith("  task:")]
    assert "task: multiclass" in task and "regression would predict a number" in task
    words = write_starter(answers_csv(tmp_path), "answer", tmp_path / "w.yaml").path
    assert "regression would predict" not in words.read_text(encoding="utf-8")


def test_a_copy_of_the_target_among_the_features_is_named(tmp_path):
    text = answers_csv(tmp_path).read_text(encoding="utf-8").splitlines()
    grade = ["x1,x2,grade,answer"] + [
        line.replace(",yes", ",A,yes" if i % 2 else ",B,yes").replace(",no", ",F,no")
        for i, line in enumerate(text[1:])]
    data = tmp_path / "graded.csv"
    data.write_text("\n".join(grade) + "\n", encoding="utf-8")
    [line] = train_warnings(tmp_path, data, "data.path")
    assert "column 'grade' of graded.csv: each of its 3 values goes with one class on every " \
        "row: the target by another name?" in line and "memorize" not in line
    from dlrecap.starter import write_starter

    config = write_starter(data, "answer", tmp_path / "init.yaml").path.read_text(encoding="utf-8")
    [grade] = [line for line in config.splitlines() if line.startswith("    - grade")]
    assert "the target by another name?" in grade


def test_giveaways_of_a_class_target():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    columns = {
        "copy": y * 10.0,  # one value per class
        "reworded": np.array(["low", "mid", "high"], dtype=object)[y],
        "finer": y * 2.0 + rng.integers(0, 2, 300),  # six values, each with one class
        "noisy": np.where(rng.random(300) < 0.02, 1 - y, y) * 1.0,  # 2% of rows differ
        "measured": rng.normal(size=300),
        "with_gaps": np.where(np.arange(300) % 7 == 0, np.nan, y * 1.0),  # missing: not counted
    }
    assert sorted(giveaways(columns, list(columns), y, 3)) == ["copy", "finer", "reworded",
                                                               "with_gaps"]
    few = {"copy": y[:20] * 1.0}  # 3 values on 20 rows: could pair with classes by chance
    assert giveaways(few, ["copy"], y[:20], 3) == {}


def test_giveaways_of_a_number_target():
    rng = np.random.default_rng(0)
    price = rng.normal(30_000, 5_000, 200).astype(np.float32)
    columns = {"in_euros": price * 0.92, "discount": -price, "size": price + rng.normal(0, 500, 200),
               "text": np.array(["a"] * 200, dtype=object)}
    found = giveaways(columns, list(columns), price, None)
    assert sorted(found) == ["discount", "in_euros"]
    assert "correlation -1.0000" in found["discount"]


def test_a_data_files_task_found_by_auto_brings_the_linters_task_warnings(tmp_path):
    [line] = train_warnings(tmp_path, answers_csv(tmp_path), "model.output_activation",
                            model={"output_activation": "softmax"})
    assert "softmax on a binary task needs two outputs" in line
    [line] = train_warnings(tmp_path, answers_csv(tmp_path), "data.standardize_target",
                            standardize_target=True)
    assert "has no effect" in line


def test_a_set_task_is_linted_once_before_training_not_again(tmp_path):
    lines = train_warnings(tmp_path, answers_csv(tmp_path), "data.standardize_target",
                           standardize_target=True, task="binary")
    assert len(lines) == 1
