"""IDs and constants are no features: `init` leaves them out, `train`, `cv` and `sweep` name
them when a config feeds them to the network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dlrecap.config import load_config
from dlrecap.data.columns import not_a_feature
from dlrecap.errors import DataError, DlrecapError
from dlrecap.runs import read_metrics
from dlrecap.starter import write_starter
from dlrecap.sweep.plan import Trial
from dlrecap.sweep.results import Row, trial_warnings

from helpers import invoke


def people(tmp_path: Path, label=lambda w: "heavy" if w > 85 else "light") -> Path:
    rng = np.random.default_rng(0)
    height = rng.normal(170, 10, 60)
    weight = height * 0.5 + rng.normal(0, 5, 60)
    frame = pd.DataFrame({
        "customer_id": np.arange(1000, 1060), "name": [f"person{i}" for i in range(60)],
        "country": ["nl"] * 60, "height": height, "weight": weight,
        "label": [label(w) for w in weight],
    })
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    return path


def features_of(config: Path) -> list[str]:
    return yaml.safe_load(config.read_text(encoding="utf-8"))["data"]["features"]


def test_ids_and_constants_are_left_out_with_the_reason(tmp_path):
    starter = write_starter(people(tmp_path), "label", tmp_path / "p.yaml")
    text = starter.path.read_text(encoding="utf-8")
    assert features_of(starter.path) == ["height", "weight"]  # a unique float column stays
    assert "# - customer_id" in text and "consecutive integers, unique per row" in text
    assert "# - name" in text and "unique text per row" in text
    assert "# - country" in text and "the same value in every row" in text
    assert load_config(starter.path).config.data.features == ["height", "weight"]


N = 25  # rows: enough for uniqueness to mean something
SHUFFLED = [(i * 7) % N for i in range(N)]  # 0..24 in another order


@pytest.mark.parametrize("name, values, why", [
    ("row", SHUFFLED, "consecutive integers"),
    ("user_id", [3 * v + 1 for v in SHUFFLED], "named like an ID"),
    ("userId", [3 * v + 1 for v in SHUFFLED], "named like an ID"),
    ("paid", [3 * v + 1 for v in SHUFFLED], None),  # unique integers, but not named like an ID
    ("ID", [v / 10 for v in SHUFFLED], "named like an ID"),
    ("width", [v / 10 for v in SHUFFLED], None),  # a unique float column is a measurement
    ("city", [f"c{v}" for v in SHUFFLED], "unique text per row"),
    ("city", [f"c{v % 5}" for v in SHUFFLED], None),
    ("name", [f"n{v % 20}" for v in SHUFFLED], "a value of its own on most rows"),  # 20 of 25
    ("name", [f"n{v % 12}" for v in SHUFFLED], None),  # 12 of 25: categories seen twice
    ("name", [f"n{v % 20}" for v in SHUFFLED[:19]], None),  # too few rows to tell
    ("flag", [1] * (N - 1) + [None], "the same value in every row"),
    ("score", SHUFFLED[:-1] + [None], None),  # a missing value: not an ID
    ("row", SHUFFLED[:19], None),  # 19 rows: too few to tell an ID from chance
    ("row", [v - 12 for v in SHUFFLED], "consecutive integers"),  # from -12 to 12
    ("count", [v if v != 12 else 13 for v in SHUFFLED], None),  # spans 25 values, one twice
    ("count", [v if v != 24 else 3 for v in SHUFFLED], None),  # spans 24 values
    ("order", [1000 * v for v in SHUFFLED], None),  # unique integers with gaps
    ("speed", [2.5] * N, "the same value in every row"),
])
def test_not_a_feature(name, values, why):
    found = not_a_feature(pd.Series(values), name)
    assert (found is None) if why is None else (why in found)


def test_label_text_never_breaks_the_yaml(tmp_path):
    odd = people(tmp_path, label=lambda w: 'big\n"one" # x' if w > 85 else "small: y")
    starter = write_starter(odd, "label", tmp_path / "p.yaml")
    assert "\n" not in starter.summary
    assert load_config(starter.path).config.data.target == "label"  # still valid YAML


def test_output_folders_are_created(tmp_path):
    starter = write_starter(people(tmp_path), "label", tmp_path / "a" / "b" / "p.yaml")
    assert starter.path.is_file()
    assert load_config(starter.path).config.data.path == str(tmp_path / "people.csv")


def test_init_never_overwrites_its_own_data_file(tmp_path):
    data = people(tmp_path)
    before = data.read_bytes()
    with pytest.raises(DlrecapError, match="is the data file itself"):
        write_starter(data, "label", data, force=True)
    assert data.read_bytes() == before


def test_a_table_of_only_ids_is_refused(tmp_path):
    path = tmp_path / "ids.csv"
    pd.DataFrame({"id": range(20), "y": [0, 1] * 10}).to_csv(path, index=False)
    with pytest.raises(DataError, match="no column can be a feature"):
        write_starter(path, "y", tmp_path / "ids.yaml")


def table_yaml(tmp_path: Path, features: list[str] | None = None) -> Path:
    data = {"path": str(people(tmp_path)), "target": "label", "test_split": 0.2,
            "validation_split": 0.2}
    if features is not None:
        data["features"] = features
    config = {"name": "people", "data": data, "model": {"layers": [4]},
              "training": {"epochs": 2, "batch_size": 16}}
    path = tmp_path / "people.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def warnings_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def test_train_names_the_id_and_constant_columns_it_was_given(tmp_path):
    config = table_yaml(tmp_path)
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert result.exit_code == 0, result.output
    said = warnings_of(result)
    [customer] = [line for line in said if "'customer_id'" in line]
    path_line = next(i for i, text in enumerate(config.read_text(encoding="utf-8").splitlines(), 1)
                     if text.startswith("  path: "))
    assert customer.startswith(f"warning: {config}:{path_line}:") and ": data.path: column " in customer
    assert "consecutive integers, unique per row" in customer and "memorize" in customer
    assert "(leave it out: list the other columns in data.features)" in customer
    assert any("'name'" in line and "unique text per row" in line for line in said)
    [country] = [line for line in said if "'country'" in line]
    assert "the same value in every row" in country and "memorize" not in country
    assert not any("'height'" in line or "'weight'" in line for line in said)
    [run_dir] = (tmp_path / "runs").iterdir()
    recorded = read_metrics(run_dir)["unhelpful_features"]
    assert sorted(recorded) == ["country", "customer_id", "name"]
    assert invoke("report", str(run_dir)).exit_code == 0
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "feature &#x27;customer_id&#x27;: consecutive integers" in page


def test_a_listed_id_column_is_named_at_its_place_in_data_features(tmp_path):
    config = table_yaml(tmp_path, ["height", "customer_id", "weight"])
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert result.exit_code == 0, result.output
    [line] = warnings_of(result)
    line_no = config.read_text(encoding="utf-8").splitlines().index("  - customer_id") + 1
    assert line.startswith(f"warning: {config}:{line_no}:") and "data.features[1]:" in line
    assert line.endswith("(remove it from data.features)")


def test_measurements_alone_give_no_column_warning(tmp_path):
    config = table_yaml(tmp_path, ["height", "weight"])
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert result.exit_code == 0, result.output
    assert not [line for line in warnings_of(result) if "column " in line]
    [run_dir] = (tmp_path / "runs").iterdir()
    assert "unhelpful_features" not in read_metrics(run_dir)


def test_cross_validation_names_a_column_once_not_once_per_fold(tmp_path):
    config = table_yaml(tmp_path, ["height", "customer_id"])
    result = invoke("cv", str(config), "--folds", "2", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert len([line for line in warnings_of(result) if "'customer_id'" in line]) == 1


def test_a_sweep_names_a_warning_every_trial_gave_once():
    def row(index: int, *warnings: str) -> Row:
        return Row(Trial(index, f"t{index}", {}), "completed", warnings=list(warnings))

    rows = [row(2, "data", "slow"), row(1, "data"), row(3, "data", "slow", "slow")]
    assert trial_warnings(rows) == ["every trial: data", "#2, #3: slow"]
    assert trial_warnings([row(1, "data")]) == ["#1: data"]
