"""`init` reads a stranger's table like a practitioner: IDs and constants are no features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dlrecap.config import load_config
from dlrecap.errors import DataError, DlrecapError
from dlrecap.starter import not_a_feature, write_starter


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
    ("flag", [1] * (N - 1) + [None], "the same value in every row"),
    ("score", SHUFFLED[:-1] + [None], None),  # a missing value: not an ID
    ("row", SHUFFLED[:19], None),  # 19 rows: too few to tell an ID from chance
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
