"""Predictions for new rows: a run's model applied to a CSV or Parquet file.

The run's metrics.json names the feature columns and the class labels; the model itself
holds the standardization and the category vocabularies, so rows go in as they are.
Rows count from 1 after the header line in every message, as in `dlrecap.data.files`.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dlrecap import runs
from dlrecap.data.files import category_values, numeric_values, read_table, shown_path
from dlrecap.derive import check_distinct, check_expression, columns_used
from dlrecap.derive import model_inputs as with_derived
from dlrecap.errors import DataError, DlrecapError, RunError, printable
from dlrecap.inference import LightModel
from dlrecap.model import CATEGORY_LAYER  # (importing it also quiets a Keras warning on load)

if TYPE_CHECKING:
    import keras

    from dlrecap.data.split import Features

PREDICTION = "prediction"
PROB_PREFIX = "prob_"
# Added to the new columns' names when the input already has a column of that name.
COLLISION_SUFFIX = "_dlrecap"
# Rows per model call: large enough to be fast, small enough for memory.
BATCH = 4096
# What messages call rows read from standard input (`predict RUN -`).
STDIN = "<stdin>"


def predict_file(run_dir: Path, input_path: Path, on_warning: Callable[[str], None] | None = None,
                 threshold: float | None = None, *, name: str | None = None) -> pd.DataFrame:
    """The rows of `input_path` with the run's predictions appended.

    Args:
        run_dir: a run directory with a trained model.
        input_path: a `.csv`, `.tsv` or `.parquet` file holding the run's feature columns;
            other columns are carried through unchanged.
        on_warning: called with each warning line (categories unseen in training), or None.
        threshold: binary tasks: predict the second class when its probability is at least
            this (default: the more probable class).
        name: what errors and warnings call the input instead of its path, e.g. `STDIN` for
            rows copied from standard input to a temporary file the user never saw.

    Returns:
        The input rows (CSV cells exactly as written), then a `prediction` column (class
        labels for classification) and, for classification, one `prob_<label>` column per
        class. When the input already has a column of one of those names, every new
        column gets the suffix `_dlrecap` instead, and the input's columns stay as they are.

    Raises:
        DataError: an unreadable input, missing feature columns, non-numbers, values
            beyond float32's range or missing values in feature columns.
        RunError: the run has no model or does not name its features.
        DlrecapError: a `threshold` for a run that is not a binary classification.
    """
    path, warn = Path(input_path), on_warning or (lambda _line: None)
    if name is None:
        return _predictions(run_dir, path, warn, threshold)

    def renamed(text: str) -> str:  # the absolute form first: the shown one may be inside it
        return text.replace(str(path), name).replace(str(shown_path(path)), name)

    try:
        return _predictions(run_dir, path, lambda line: warn(renamed(line)), threshold)
    except DataError as exc:
        raise DataError(renamed(exc.message), fix=exc.fix) from None


def _predictions(run_dir: Path, input_path: Path, on_warning: Callable[[str], None],
                 threshold: float | None) -> pd.DataFrame:
    """`predict_file`, its messages naming `input_path`."""
    info = runs.read_metrics(run_dir)
    features, labels = info.get("features"), info.get("labels")
    if threshold is not None and len(labels or []) != 2:
        raise DlrecapError(f"--threshold applies to binary classification; run {run_dir.name} "
                           f"is {info.get('task') or 'not binary'}", fix="leave --threshold out")
    if not features:
        raise RunError(f"{run_dir}: metrics.json names no features", fix="train the run again")
    frame = read_table(input_path)
    wanted = run_inputs(run_dir, features)
    absent = [f for f in wanted.columns if f not in frame.columns]
    if absent:
        raise DataError(
            f"{input_path}: no column{'s' if len(absent) > 1 else ''} "
            f"{', '.join(repr(a) for a in absent)}, which run {run_dir.name} takes as input "
            f"(columns: {', '.join(frame.columns)})",
            fix=f"the run's feature columns are: {', '.join(wanted.columns)}")
    from dlrecap.evaluate import load_inference_model

    model = load_inference_model(run_dir, seed=int(info.get("seed") or 0))
    inputs = wanted.matrix(frame, model, input_path, on_warning)
    outputs = _predict(model, inputs)
    result = read_table(input_path, raw=True) if input_path.suffix.lower() in (".csv", ".tsv") \
        else frame
    return _with_predictions(result, outputs, labels, threshold)


@dataclass(frozen=True)
class RunInputs:
    """How a run's inputs are made from a file's columns.

    Args:
        columns: the columns a file must hold: the raw features the model takes, and those
            its `data.derive` expressions read.
        selected: the raw features the model takes, in its order.
        expressions: the run's `data.derive`, computed after them; None when it has none.
    """

    columns: list[str]
    selected: list[str]
    expressions: list[str] | None

    def matrix(self, frame: pd.DataFrame, model: keras.Model | LightModel, path: Path,
               on_warning: Callable[[str], None]) -> Any:
        """The model's input rows from `frame`'s columns (raw, then derived)."""
        inputs = model_inputs(frame, self.columns, vocabularies(model, self.columns), path,
                              on_warning)
        if not self.expressions:
            return inputs
        return with_derived(np.asarray(inputs), self.columns, self.selected, self.expressions)


def run_inputs(run_dir: Path, features: list[str]) -> RunInputs:
    """What a file must hold to give the run of `features` (metrics.json's) its inputs."""
    expressions = _derive(run_dir)
    if not expressions:
        return RunInputs(features, features, None)
    selected = features[:len(features) - len(expressions)]  # the last inputs are derived
    return RunInputs(list(dict.fromkeys([*selected, *columns_used(expressions)])), selected,
                     expressions)


def _derive(run_dir: Path) -> list[str] | None:
    """The run's `data.derive` (None when its config sets none or cannot be read)."""
    import yaml

    try:
        config = yaml.safe_load((run_dir / runs.CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    data = config.get("data") if isinstance(config, dict) else None
    expressions = data.get("derive") if isinstance(data, dict) else None
    if expressions is None:
        return None
    try:
        return check_distinct([check_expression(str(e)) for e in expressions])
    except (TypeError, ValueError) as exc:
        raise RunError(f"{run_dir / runs.CONFIG_FILE}: data.derive: {exc}",
                       fix="train the run again") from None


@contextmanager
def stdin_table() -> Iterator[Path]:
    """Standard input (CSV) as a file to predict, for `predict RUN -`."""
    with tempfile.TemporaryDirectory(prefix="dlrecap-stdin-") as folder:
        path = Path(folder) / "stdin.csv"
        path.write_bytes(sys.stdin.buffer.read())  # read_table names bytes that are not UTF-8
        yield path


def vocabularies(model: keras.Model | LightModel, features: list[str]) -> dict[str, list[str]]:
    """The categories the model knows, per categorical feature column."""
    if isinstance(model, LightModel):
        return {name: [str(v) for v in model.vocabularies[CATEGORY_LAYER.format(i)]]
                for i, name in enumerate(features) if CATEGORY_LAYER.format(i) in model.vocabularies}
    if not isinstance(model.input, dict):
        return {}
    found = {}
    for i, name in enumerate(features):
        if model.input[name].dtype == "string":
            layer = model.get_layer(CATEGORY_LAYER.format(i))
            found[name] = [str(v) for v in layer.get_vocabulary(include_special_tokens=False)]
    return found


def model_inputs(frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]],
                 path: Path, on_warning: Callable[[str], None] = lambda _line: None) -> Features:
    """The model's input: a float32 matrix, or (with categorical columns) a dict of columns.

    Raises:
        DataError: at the first missing value, non-number or unknown category, naming the
            column and the data row.
    """
    columns = {}
    for name in features:
        if name in categories:
            values = category_values(frame[name])
            known = np.isin(values, np.array(categories[name], dtype=object))
            missing = pd.isna(values)
        else:
            values = numeric_values(frame[name], path)
            missing = np.isnan(values)
            known = ~missing
        if missing.any():
            row = int(np.argmax(missing))
            raise DataError(f"{path}: column {name!r}, data row {row + 1}: missing value",
                            fix="fill it in: the model needs every feature")
        if not known.all():
            on_warning(_unseen_categories(path, name, values, known))
        columns[name] = values
    if not categories:
        return np.stack([columns[n] for n in features], axis=1).astype(np.float32)
    return {n: (v if n in categories else v.astype(np.float32)).reshape(-1, 1)
            for n, v in columns.items()}


def _unseen_categories(path: Path, column: str, values: np.ndarray, known: np.ndarray) -> str:
    """The warning for categories the model never saw: they share its out-of-vocabulary slot."""
    unseen = list(dict.fromkeys(values[~known]))
    shown = ", ".join(repr(v) for v in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
    rows = int((~known).sum())
    return printable(f"{path}: column {column!r}: {len(unseen)} categor{'y' if len(unseen) == 1 else 'ies'} "
                     f"not seen in training ({shown}, in {rows} row{'s' if rows > 1 else ''}); "
                     "predicted as an unknown category")


def _predict(model: keras.Model | LightModel, inputs: Features) -> np.ndarray:
    from dlrecap.evaluate import model_outputs

    return model_outputs(model, inputs, batch=BATCH)


def _with_predictions(rows: pd.DataFrame, outputs: np.ndarray, labels: list[str] | None,
                      threshold: float | None = None) -> pd.DataFrame:
    outputs = outputs.reshape(len(rows), -1)
    new: dict[str, np.ndarray]
    if not labels:
        new = {PREDICTION: outputs[:, 0].astype(np.float32)}
    else:
        if outputs.shape[1] == 1:  # one sigmoid output: the probability of labels[1]
            outputs = np.concatenate([1 - outputs, outputs], axis=1)
        probs = np.round(outputs.astype(np.float64), 6)
        chosen = np.argmax(outputs, axis=1) if threshold is None else \
            (outputs[:, 1] >= threshold).astype(int)
        new = {PREDICTION: np.asarray(labels, dtype=object)[chosen]}
        new.update({f"{PROB_PREFIX}{label}": probs[:, i] for i, label in enumerate(labels)})
    if any(c in rows.columns for c in new):  # never overwrite the user's own columns
        new = {f"{c}{COLLISION_SUFFIX}": v for c, v in new.items()}
    return pd.concat([rows.reset_index(drop=True), pd.DataFrame(new)], axis=1)


def to_csv(frame: pd.DataFrame) -> str:
    """The predictions as CSV text."""
    return frame.to_csv(index=False)


def write_csv(frame: pd.DataFrame, output: Path) -> None:
    """Writes the predictions to `output` atomically: the old file or the new, never half.

    Raises:
        DataError: the file cannot be written.
    """
    output = Path(output)
    try:
        runs.write_text(output, to_csv(frame))
    except OSError as exc:
        raise DataError(f"{output}: cannot write: {exc.strerror or exc}",
                        fix="choose another --output") from None

