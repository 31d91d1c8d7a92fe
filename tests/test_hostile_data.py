"""Numbers a float32 cannot hold are refused where data is read, for training and predict alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlrecap.data.files import FLOAT32_MAX, load_table
from dlrecap.errors import DataError
from dlrecap.predict import model_inputs

GENERATED = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


class Data:
    """The `data:` section load_table reads (a file, its target, every other column)."""

    def __init__(self, path: Path):
        self.path, self.target, self.features = str(path), "y", None
        self.missing, self.task = "error", "auto"


def table_with(tmp_path: Path, cell: str, row: int = 1) -> Path:
    cells = ["1", "2", "3", "4"]
    cells[row] = cell
    text = "a,b,y\n" + "".join(f"{c},{i},{i % 2}\n" for i, c in enumerate(cells))
    path = tmp_path / "d.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_cell_beyond_float32_names_row_and_column(tmp_path):
    with pytest.raises(DataError) as info:
        load_table(Data(table_with(tmp_path, "1e39", row=2)))
    assert "column 'a', data row 3: 1e+39 is beyond float32's range" in info.value.message
    assert info.value.exit_code == 2


def test_the_largest_float32_is_accepted(tmp_path):
    table = load_table(Data(table_with(tmp_path, repr(FLOAT32_MAX))))
    assert np.isfinite(table.x).all()


@GENERATED
@given(value=st.floats(allow_nan=False, allow_infinity=False, width=64), row=st.integers(0, 3))
def test_generated_magnitudes(tmp_path, value, row):
    """Every finite double either loads as a finite float32 or is refused at its row."""
    path = table_with(tmp_path, repr(value), row)
    if abs(value) > FLOAT32_MAX:
        with pytest.raises(DataError, match=f"data row {row + 1}: .* beyond float32's range"):
            load_table(Data(path))
    else:
        assert np.isfinite(load_table(Data(path)).x).all()


def test_predict_input_beyond_float32_is_refused(tmp_path):
    frame = pd.DataFrame({"a": [1.0, -1e300], "b": [0.0, 1.0]})
    with pytest.raises(DataError, match="column 'a', data row 2: -1e\\+300 is beyond float32's range"):
        model_inputs(frame, ["a", "b"], {}, tmp_path / "in.csv")


def test_a_fifo_as_data_file_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "rows.csv"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    with pytest.raises(DataError, match="is not a regular file"):
        load_table(Data(fifo))


def test_weight_count_matches_what_keras_builds(tmp_path):
    from dlrecap.config.load import load_config
    from dlrecap.data import load_splits
    from dlrecap.model import build_model, input_width, parameter_count, plan_head, weight_count

    config_path = tmp_path / "c.yaml"
    config_path.write_text("data: {dataset: moons, samples: 40}\nmodel: {layers: [7, 3]}\n")
    config = load_config(config_path).config
    splits = load_splits(config.data, 0)
    head = plan_head(config, splits.task, splits.n_classes)
    expected = (2 + 1) * 7 + (7 + 1) * 3 + (3 + 1) * 1
    assert weight_count(config, input_width(splits), head) == expected
    assert parameter_count(build_model(config, splits, head)) == expected


def test_a_network_too_large_for_memory_is_refused_before_building(tmp_path):
    import os
    import subprocess
    import sys

    from dlrecap.errors import ConfigError
    from dlrecap.model import check_memory

    with pytest.raises(ConfigError) as info:
        check_memory(65537 * 65536 * 2, available=22 * 10**9)
    assert info.value.key == "model.layers"
    assert "about 8.6 billion weights need 137 GB to train, but 22 GB are available" in info.value.message
    check_memory(1000, available=16_000)  # exactly fits

    config = tmp_path / "big.yaml"
    config.write_text("data: {dataset: xor, samples: 400}\nmodel: {layers: [65536, 65536]}\n")
    done = subprocess.run([sys.executable, "-m", "dlrecap", "train", str(config), "--runs-dir",
                           str(tmp_path / "runs")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DLRECAP_MEMORY_BYTES": str(22 * 10**9)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: {config}:2:") and "4.3 billion weights" in done.stderr
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists()
