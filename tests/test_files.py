"""Tests for dlrecap.data.files: reading tables, column kinds, targets, missing values, errors.

Everything here stays below TensorFlow: data files are read and split with pandas, numpy
and scikit-learn only, so these tests are fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlrecap.config.load import load_config
from dlrecap.config.schema import DataConfig
from dlrecap.data.files import read_table
from dlrecap.data.split import load_splits, n_rows
from dlrecap.errors import ConfigError, DataError

from helpers import invoke

ROOT = Path(__file__).resolve().parents[1]
STUDENTS = ROOT / "configs" / "data" / "students.csv"


def csv(folder: Path, text: str, name: str = "d.csv") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def data(path: Path, **kw) -> DataConfig:
    """A `data:` section for `path` (validated like a config's)."""
    return DataConfig(path=str(path), **{"target": "y", **kw})


def numbers_csv(folder: Path, rows: int = 40, name: str = "d.csv", classes=("no", "yes")) -> Path:
    """`a,b,y`: two numeric features and a text target cycling through `classes`."""
    lines = ["a,b,y"] + [f"{i},{i * 0.5},{classes[i % len(classes)]}" for i in range(rows)]
    return csv(folder, "\n".join(lines) + "\n", name)


# --- reading --------------------------------------------------------------------------------


def test_the_shipped_students_csv_keeps_its_string_labels():
    splits = load_splits(data(STUDENTS, target="passed"), 0)
    assert splits.task == "binary"
    assert splits.label_names == ["fail", "pass"]
    assert splits.feature_names == ["lectures", "project_hours"]
    assert splits.categorical == ()
    assert splits.x_train.dtype == np.float32 and splits.x_train.shape[1] == 2
    total = sum(n_rows(x) for x in (splits.x_train, splits.x_val, splits.x_test))
    assert total == len(pd.read_csv(STUDENTS))


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "npz"])
def test_every_format_gives_the_same_rows(tmp_path, fmt):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3)).astype(np.float32)
    y = np.arange(30) % 2
    frame = pd.DataFrame(x, columns=["x1", "x2", "x3"]).assign(y=y)
    path = tmp_path / f"d.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        np.savez(path, x=x, y=y)
    splits = load_splits(data(path), 3)
    assert splits.feature_names == ["x1", "x2", "x3"]
    assert splits.label_names == ["0", "1"]
    rows = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    assert sorted(map(tuple, rows.round(5))) == sorted(map(tuple, x.round(5)))


def test_a_spreadsheets_semicolon_csv_reads_like_a_comma_one(tmp_path):
    comma = read_table(numbers_csv(tmp_path))
    semicolon = csv(tmp_path, (tmp_path / "d.csv").read_text(encoding="utf-8").replace(",", ";"),
                    "semi.csv")
    pd.testing.assert_frame_equal(read_table(semicolon), comma)


def test_a_header_with_commas_keeps_commas_as_the_separator(tmp_path):
    frame = read_table(csv(tmp_path, "a,note;x,y\n1,p;q,0\n2,r;s,1\n"))
    assert list(frame.columns) == ["a", "note;x", "y"]
    assert list(frame["note;x"]) == ["p;q", "r;s"]


def test_npz_needs_no_target_and_names_columns_x1_x2(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.arange(40.0).reshape(20, 2), y=np.arange(20) % 2)
    splits = load_splits(DataConfig(path=str(path)), 0)
    assert splits.feature_names == ["x1", "x2"] and splits.task == "binary"


def test_npz_without_x_and_y_names_the_arrays_found(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, features=np.zeros((4, 2)), labels=np.zeros(4))
    with pytest.raises(DataError, match=r"needs arrays 'x' and 'y'; it has 'features', 'labels'"):
        read_table(path)


def test_npz_with_mismatched_rows(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match="'x' has 4 rows but 'y' has 3"):
        read_table(path)


def test_npz_with_x_but_no_y_is_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((4, 2)), target=np.zeros(4))
    with pytest.raises(DataError, match=r"needs arrays 'x' and 'y'; it has 'x', 'target'"):
        read_table(path)


def test_npz_with_pickled_objects_is_refused_unopened(tmp_path):
    # loading an object array would unpickle it: running whatever code the file carries
    path = tmp_path / "d.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    with pytest.raises(DataError, match="not a valid npz file: Object arrays cannot be loaded"):
        read_table(path)


def test_raw_reading_keeps_the_text_of_every_cell(tmp_path):
    path = csv(tmp_path, "id,v\n007,1.50\n010,NA\n")
    raw = read_table(path, raw=True)
    assert raw["id"].tolist() == ["007", "010"] and raw["v"].tolist() == ["1.50", "NA"]


# --- bad files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, content, message", [
    ("missing.csv", None, "no such file"),
    ("d.xlsx", b"PK", "unknown file format ('.xlsx')"),
    ("noext", b"a,b\n1,2\n", "unknown file format (no suffix)"),
    ("empty.csv", b"", "the file is empty"),
    ("header.csv", b"a,b,y\n", "no data rows, only a header (3 columns)"),
    ("ragged.csv", b"a,b\n1,2\n3,4,5\n", "not a valid csv file: Expected 2 fields in line 3, saw 3"),
    ("latin.csv", "a,b\n1,caf\u00e9\n".encode("latin-1"), "not UTF-8 text"),
    ("bad.parquet", b"not parquet at all", "not a valid parquet file"),
    ("bad.npz", b"not a zip", "not a valid npz file"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_table(path)
    line = info.value.render()
    assert str(path) in line and message in line and "\n" not in line


@pytest.mark.parametrize("raw", [False, True])
def test_a_trailing_comma_on_every_row_shifts_no_column(tmp_path, raw):
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,2,0,\n3,4,1,\n")
    frame = read_table(path, raw=raw)
    assert list(frame.columns) == ["a", "b", "y"]
    assert frame.astype(str).to_dict("list") == {"a": ["1", "3"], "b": ["2", "4"], "y": ["0", "1"]}


@pytest.mark.parametrize("raw", [False, True])
def test_a_field_more_than_the_header_names_is_refused(tmp_path, raw):
    path = tmp_path / "d.csv"
    path.write_text("b,y\n7,2,0\n8,4,1\n")  # the header lacks the first column's name
    with pytest.raises(DataError, match="d.csv: a data row has more fields than the header names"):
        read_table(path, raw=raw)


def test_a_directory_is_not_a_data_file(tmp_path):
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path / "d.csv")


# --- columns --------------------------------------------------------------------------------


def test_unknown_target_is_named_with_the_columns_and_a_suggestion(tmp_path):
    path = numbers_csv(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_splits(data(path, target="yy"), 0)
    assert info.value.key == "data.target"
    assert info.value.render() == ("data.target: no column 'yy' in d.csv (did you mean 'y'?) "
                                   "(columns: a, b, y)")


def test_csv_without_target(tmp_path):
    with pytest.raises(ConfigError, match="d.csv needs a target") as info:
        load_splits(DataConfig(path=str(numbers_csv(tmp_path))), 0)
    assert info.value.key == "data.target" and "columns: a, b, y" in info.value.render()


@pytest.mark.parametrize("features, key, message", [
    (["a", "c"], "data.features[1]", "no column 'c' in d.csv"),
    (["a", "y"], "data.features[1]", "'y' is the target"),
    (["a", "a"], "data.features[1]", "'a' is listed twice"),
    ([], "data.features", "no feature columns"),
])
def test_bad_feature_lists(tmp_path, features, key, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_splits(data(numbers_csv(tmp_path), features=features), 0)
    assert info.value.key == key


def test_features_pick_columns_in_the_listed_order(tmp_path):
    splits = load_splits(data(numbers_csv(tmp_path), features=["b", "a"]), 0)
    assert splits.feature_names == ["b", "a"]
    # column b is half of column a in every row
    np.testing.assert_allclose(splits.x_train[:, 0], splits.x_train[:, 1] * 0.5)


def test_non_number_in_a_numeric_column_names_column_and_row(tmp_path):
    path = csv(tmp_path, "a,b,y\n1,2,no\n2,3,yes\n3,abc,no\n4,5,yes\n")
    with pytest.raises(DataError) as info:
        load_splits(data(path), 0)
    assert info.value.render() == (f"{path}: column 'b', data row 3: 'abc' is not a number "
                                   "(correct it, or leave the cell empty for a missing value)")


def test_infinite_values_are_not_numbers(tmp_path):
    path = csv(tmp_path, "a,y\n1,no\ninf,yes\n")
    with pytest.raises(DataError, match="column 'a', data row 2: inf is not a number"):
        load_splits(data(path), 0)


def test_text_and_boolean_features_become_categorical_columns(tmp_path):
    rows = [f"{i},{['red', 'green', 'blue'][i % 3]},{i % 4 == 0},{'ab'[i % 2]}" for i in range(30)]
    path = csv(tmp_path, "n,colour,flag,y\n" + "\n".join(rows) + "\n")
    splits = load_splits(data(path), 0)
    assert splits.categorical == ("colour", "flag")
    x = splits.x_train
    assert isinstance(x, dict) and list(x) == ["n", "colour", "flag"]
    assert x["n"].dtype == np.float32 and x["n"].shape == (n_rows(x), 1)
    assert set(x["colour"].ravel()) <= {"red", "green", "blue"}
    assert set(x["flag"].ravel()) == {"True", "False"}
    assert n_rows(x) + n_rows(splits.x_val) + n_rows(splits.x_test) == 30


def test_parquet_categories_and_unsupported_column_types(tmp_path):
    frame = pd.DataFrame({"n": range(20), "kind": pd.Categorical(["x", "y"] * 10),
                          "y": ["a", "b"] * 10})
    frame.to_parquet(tmp_path / "d.parquet")
    assert load_splits(data(tmp_path / "d.parquet"), 0).categorical == ("kind",)
    frame["when"] = pd.date_range("2024-01-01", periods=20)
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError, match="column 'when' holds datetime64.* values; dlrecap reads "
                                        "numbers, text and booleans"):
        load_splits(data(tmp_path / "t.parquet"), 0)


# --- targets and tasks ----------------------------------------------------------------------


@pytest.mark.parametrize("values, task, labels", [
    (["b", "a"], "binary", ["a", "b"]),
    (["low", "mid", "high"], "multiclass", ["high", "low", "mid"]),
    (["True", "False"], "binary", ["False", "True"]),
    (["3", "1", "2"], "multiclass", ["1", "2", "3"]),
    (["0.0", "1.0"], "binary", ["0", "1"]),
])
def test_class_targets_keep_their_label_names(tmp_path, values, task, labels):
    lines = [f"{i},{values[i % len(values)]}" for i in range(30)]
    splits = load_splits(data(csv(tmp_path, "a,y\n" + "\n".join(lines) + "\n")), 0)
    assert (splits.task, splits.label_names) == (task, labels)
    assert splits.y_train.dtype == np.int64


def test_float_targets_and_many_integers_are_regression(tmp_path):
    floats = csv(tmp_path, "a,y\n" + "".join(f"{i},{i * 0.37}\n" for i in range(30)), "f.csv")
    ints = csv(tmp_path, "a,y\n" + "".join(f"{i},{i * 7}\n" for i in range(30)), "i.csv")
    for path in (floats, ints):
        splits = load_splits(data(path), 0)
        assert splits.task == "regression" and splits.label_names is None
        assert splits.y_train.dtype == np.float32


def test_data_task_overrides_inference(tmp_path):
    path = csv(tmp_path, "a,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    assert load_splits(data(path), 0).task == "multiclass"
    assert load_splits(data(path, task="regression"), 0).task == "regression"
    with pytest.raises(DataError, match=r"has 3 classes \(0, 1, 2\), not 2"):
        load_splits(data(path, task="binary"), 0)
    text = numbers_csv(tmp_path, name="t.csv")
    with pytest.raises(DataError, match=r"target column 'y' holds text \(e.g. 'no'\); regression"):
        load_splits(data(text, task="regression"), 0)


def test_a_single_class_target_is_refused(tmp_path):
    path = numbers_csv(tmp_path, classes=("yes",))
    with pytest.raises(DataError) as info:
        load_splits(data(path), 0)
    assert info.value.render().startswith(f"{path}: target column 'y' has a single class ('yes')")


def test_a_class_too_rare_to_stratify_is_named(tmp_path):
    path = csv(tmp_path, "a,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(30)) + "99,c\n")
    with pytest.raises(DataError, match="target column 'y': class 'c' has only 1 row"):
        load_splits(data(path), 0)


def test_fewer_rows_than_the_splits_need(tmp_path):
    path = numbers_csv(tmp_path, rows=4)
    with pytest.raises(DataError, match="4 rows of 'd.csv' give .* but the splits need"):
        load_splits(data(path), 0)


def test_file_splits_are_seeded_and_stratified(tmp_path):
    path = numbers_csv(tmp_path, rows=100)
    a, b, c = (load_splits(data(path), s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)
    assert np.bincount(a.y_test).tolist() == [10, 10]


# --- missing values -------------------------------------------------------------------------

GAPS = "a,b,y\n" + "".join(
    f"{i},{'' if i in (5, 17) else i * 2},{'ab'[i % 2]}\n" for i in range(40)) + "40,80,\n"


def test_missing_error_names_column_and_first_row(tmp_path):
    path = csv(tmp_path, GAPS)
    with pytest.raises(DataError) as info:
        load_splits(data(path), 0)
    assert info.value.render() == (f"{path}: column 'b', data row 6: missing value (3 rows have "
                                   "one) (fill it in, or set data.missing: drop (or mean))")


def test_missing_drop_removes_incomplete_rows(tmp_path):
    splits = load_splits(data(csv(tmp_path, GAPS), missing="drop"), 0)
    rows = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    assert len(rows) == 38 and not np.isnan(rows).any()
    assert not ({5.0, 17.0, 40.0} & set(rows[:, 0].tolist()))


def test_missing_mean_fills_from_the_training_rows(tmp_path):
    splits = load_splits(data(csv(tmp_path, GAPS), missing="mean"), 0)
    rows = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    assert len(rows) == 40  # the row without a target is dropped; the others are filled
    filled = rows[np.isin(rows[:, 0], [5.0, 17.0])][:, 1]
    known = splits.x_train[~np.isin(splits.x_train[:, 0], [5.0, 17.0])][:, 1]
    np.testing.assert_allclose(filled, [known.mean()] * 2, rtol=1e-6)


def test_missing_mean_fills_categories_with_the_most_frequent(tmp_path):
    rows = [f"{i},{'' if i == 3 else ['red', 'red', 'blue'][i % 3]},{'ab'[i % 2]}" for i in range(30)]
    splits = load_splits(data(csv(tmp_path, "n,c,y\n" + "\n".join(rows) + "\n"), missing="mean"), 0)
    values = np.concatenate([splits.x_train["c"], splits.x_val["c"], splits.x_test["c"]]).ravel()
    assert None not in values.tolist() and set(values) == {"red", "blue"}


# --- paths, the config loader and the CLI ---------------------------------------------------


def test_paths_are_relative_to_the_config_from_any_working_directory(tmp_path, monkeypatch):
    (tmp_path / "proj" / "data").mkdir(parents=True)
    numbers_csv(tmp_path / "proj" / "data")
    config = tmp_path / "proj" / "c.yaml"
    config.write_text("data:\n  path: data/d.csv\n  target: y\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(Path("..") / "proj" / "c.yaml")
    assert loaded.config.data.path == str(tmp_path / "proj" / "data" / "d.csv")
    assert load_splits(loaded.config.data, 0).label_names == ["no", "yes"]


BAD_DATA = {  # file content -> what the error line must say
    "a,b,y\n": "no data rows, only a header",
    "a,b,y\n1,2,no\n2,x,yes\n": "column 'b', data row 2: 'x' is not a number",
    "a,b,y\n1,2,no\n2,,yes\n": "column 'b', data row 2: missing value",
    "a,b,y\n1,2,no\n2,3,no\n": "has a single class ('no')",
}


@pytest.mark.parametrize("content", list(BAD_DATA))
def test_train_on_bad_data_exits_2_and_leaves_no_run(tmp_path, monkeypatch, content):
    csv(tmp_path, content)
    config = tmp_path / "c.yaml"
    config.write_text("data:\n  path: d.csv\n  target: y\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path.parent)  # another working directory
    runs = tmp_path / "runs"
    result = invoke("train", str(config), "--runs-dir", str(runs))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    # the data file is named relative to the working directory
    assert result.stderr.startswith(f"error: {tmp_path.name}/d.csv: ")
    assert BAD_DATA[content] in result.stderr and result.stderr.count("\n") == 1
    assert not runs.exists()


@pytest.mark.parametrize("yaml_line, message", [
    ("  target: nope", "data.target: no column 'nope' in d.csv"),
    ("  path: gone.csv", "gone.csv: no such file"),
    ("  path: d.txt", "unknown file format ('.txt')"),
])
def test_train_with_bad_data_keys_exits_2(tmp_path, yaml_line, message):
    csv(tmp_path, "a,y\n1,no\n")
    (tmp_path / "d.txt").write_text("a,y\n", encoding="utf-8")
    key = yaml_line.split(":")[0].strip()
    lines = {"path": "  path: d.csv", "target": "  target: y"}
    lines[key] = yaml_line
    config = tmp_path / "c.yaml"
    config.write_text("data:\n" + "\n".join(lines.values()) + "\n", encoding="utf-8")
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()
