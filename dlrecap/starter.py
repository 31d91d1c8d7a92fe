"""`dlrecap init`: a commented starter config written from a data file.

The file is loaded and split exactly as `train` will load it, so a config is only written
when its data would train: bad values, a single class or too few rows fail here first.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from dlrecap import runs
from dlrecap.errors import ConfigError, DataError, DlrecapError, printable

# Up to this share of rows with a missing value are dropped; more are filled with means.
DROP_AT_MOST = 0.1
COMMENT_COLUMN = 32


@dataclass(frozen=True)
class Starter:
    """What `init` wrote: the config file and a one-line description of the task."""

    path: Path
    summary: str


def write_starter(data_file: Path, target: str, output: Path | None = None,
                  force: bool = False) -> Starter:
    """Writes a starter config for `data_file` that predicts `target`.

    Args:
        data_file: a `.csv`, `.tsv`, `.parquet` or `.npz` file.
        target: the column to predict.
        output: the config file to write (default: `<data file stem>.yaml` here).
        force: overwrite `output` when it exists.

    Raises:
        DlrecapError: `output` exists and `force` is off, or cannot be written.
        DataError, ConfigError: the data would not train (named as `train` would name it).
    """
    data_file = Path(data_file).resolve()
    output = Path(output) if output is not None else Path(f"{data_file.stem}.yaml")
    if output.resolve() == data_file:
        raise DlrecapError(f"{output} is the data file itself; init never overwrites it",
                           fix="choose another --output")
    if output.exists() and not force:
        raise DlrecapError(f"{output} already exists", fix="pass --force to overwrite it, or "
                           "choose another --output")
    text, summary = starter_text(data_file, target, output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        runs.write_text(output, text)
    except OSError as exc:
        raise DlrecapError(f"{output}: cannot write: {exc.strerror or exc}",
                           fix="choose another --output") from None
    return Starter(output, summary)


@dataclass(frozen=True)
class _Facts:
    """What the data file says about the config to write."""

    data_file: Path
    target: str
    task: str
    labels: list[str] | None
    notes: dict[str, str]  # feature column -> what kind of column it is
    left_out: dict[str, str]  # column -> why it is not a feature
    width: int  # inputs of the first Dense layer, after one-hot encoding
    rows: int
    incomplete: int  # rows with a missing value in a used column
    missing: str


def starter_text(data_file: Path, target: str, output: Path) -> tuple[str, str]:
    """The config text for `data_file` and a one-line summary of the task it found."""
    from dlrecap.data.notes import whole_numbers

    facts = _study(Path(data_file), target)
    if facts.labels is None:  # regression
        summary = f"regression on {facts.target!r}"
        task_note = f"inferred: {facts.target!r} holds numbers"
    else:
        shown = ", ".join(facts.labels[:6]) + (", ..." if len(facts.labels) > 6 else "")
        summary = f"{facts.task} classification of {facts.target!r} ({shown})"
        task_note = f"inferred: {len(facts.labels)} classes ({shown})"
        if facts.task == "multiclass" and whole_numbers(facts.labels):
            task_note += "; regression would predict a number"  # a rating, a count
    missing_note = (f"{facts.incomplete} of {facts.rows} rows have a missing value"
                    if facts.incomplete else "no missing values found")
    rows, big = facts.rows, facts.rows >= 10_000
    hidden = int(min(64, max(8, 2 ** int(np.ceil(np.log2(2 * facts.width))))))
    layers = [hidden] if rows < 1000 else [hidden, max(8, hidden // 2)]
    name = _safe_name(facts.data_file.stem)
    path, path_note = _data_path(facts.data_file, output)
    lines = [
        (f"# Starter config for {facts.data_file.name}: {summary}.", None),
        ("# Made by `dlrecap init`; `dlrecap schema` lists every key and its default.", None),
        (f"# Train it:  dlrecap train {output}", None),
        (f"# Then:      dlrecap predict {name} NEW_ROWS.csv", None),
        (f"name: {_scalar(name)}", "runs are named after it"),
        ("seed: 0", "same seed, same machine -> same metrics"),
        ("data:", None),
        (f"  path: {_scalar(path)}", path_note),
        (f"  target: {_scalar(facts.target)}", "the column to predict"),
        ("  features:", "the model's inputs; delete a line to leave a column out"),
        *[(f"    - {_scalar(column)}", note) for column, note in facts.notes.items()],
        *[(f"    # - {_scalar(column)}", f"left out: {why}") for column, why in facts.left_out.items()],
        (f"  task: {facts.task}", f"{task_note}; auto | binary | multiclass | regression"),
        (f"  missing: {facts.missing}", f"{missing_note}; error | drop | mean"),
        ("  validation_split: 0.2", "share of rows for validation (early stopping watches it)"),
        ("  test_split: 0.2", "share of rows held out for the final test metrics"),
        ("  standardize: true", "numeric columns scaled by training-row mean/std, in the model"),
        *([("  standardize_target: true", "trains on (y - mean) / std; answers in the target's units")]
          if facts.task == "regression" else []),
        ("model:", None),
        ("  layers:", f"hidden Dense layers, sized for {facts.width} inputs and {rows} rows"),
        *[(f"    - {units}", "units (neurons)") for units in layers],
        ("  activation: relu", "activation of the hidden layers"),
        ("  dropout: 0.0", "try 0.1-0.3 if val_loss rises while loss falls"),
        ("training:", None),
        ("  optimizer: adam", None),
        (f"  learning_rate: {0.001 if rows >= 1000 else 0.01}", "step size"),
        (f"  batch_size: {256 if big else 32}", "rows per gradient step"),
        (f"  epochs: {50 if big else 200}", "an upper bound: early stopping usually ends sooner"),
        (f"  early_stopping: {5 if big else 20}", "patience: epochs without a better val_loss"),
    ]
    return "\n".join(_line(text, note) for text, note in lines) + "\n", printable(summary)


def _study(data_file: Path, target: str) -> _Facts:
    """Loads and splits the file as `train` will, and notes what the config needs to say."""
    import pandas as pd

    from dlrecap.config.schema import DataConfig
    from dlrecap.data.columns import not_a_feature
    from dlrecap.data.files import read_table, select_columns
    from dlrecap.data.split import load_splits

    data_file = data_file.resolve()
    frame = read_table(data_file)
    try:
        target, features = select_columns(frame, target, None, data_file)
    except ConfigError as exc:
        raise ConfigError(exc.message, key="--target", fix=exc.fix) from None
    incomplete = int(frame[[*features, target]].isna().any(axis=1).sum())
    rows = len(frame)
    missing = "error" if not incomplete else "drop" if incomplete <= DROP_AT_MOST * rows else "mean"
    booleans = {c for c in features if pd.api.types.is_bool_dtype(frame[c])}
    left_out = {c: why for c in features if (why := not_a_feature(frame[c], c))}
    if len(left_out) == len(features):
        raise DataError(f"{data_file}: no column can be a feature ("
                        + "; ".join(f"{c}: {why}" for c, why in left_out.items()) + ")",
                        fix="add columns that describe the rows")
    features = [c for c in features if c not in left_out]
    del frame
    splits = load_splits(DataConfig(path=str(data_file), target=target, features=features,
                                    missing=missing), 0)
    width, notes = 0, {}
    for column in features:
        if column in splits.categorical:
            count = len(np.unique(splits.x_train[column]))
            width += count + 1
            kind = "true/false" if column in booleans else f"text, {count} categories"
            notes[column] = f"{kind}: one-hot encoded inside the model"
        else:
            width += 1
            notes[column] = "numeric"
        if column in splits.unhelpful:  # the target by another name: kept, but said
            notes[column] += f"; {splits.unhelpful[column]}"
    return _Facts(data_file, target, splits.task, splits.label_names, notes, left_out, width, rows,
                  incomplete, missing)


def _data_path(data_file: Path, output: Path) -> tuple[str, str]:
    # Relative keeps a project movable; a far-away file reads better as an absolute path.
    relative = os.path.relpath(data_file, output.resolve().parent)
    if Path(relative).parts.count("..") <= 2:
        return relative, "relative to this file"
    return str(data_file), "absolute: the file is far from this config"


def _line(text: str, note: str | None) -> str:
    # Comments carry column names and labels from the file: a newline in one would end the
    # comment and break the YAML, so control characters are escaped.
    if text.startswith("#"):
        text = printable(text)
    if note is None:
        return text
    return f"{text.ljust(COMMENT_COLUMN - 1)} # {printable(note)}"


def _scalar(value: str) -> str:
    """`value` as a YAML scalar: plain when it reads back unchanged, else double-quoted."""
    try:
        if yaml.safe_load(f"k: {value}") == {"k": value} and "#" not in value:
            return value
    except yaml.YAMLError:
        pass
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _safe_name(stem: str) -> str:
    # The config schema's `name` pattern: letters, digits, . _ -; first a letter or digit.
    return (re.sub(r"[^A-Za-z0-9._-]", "-", stem).lstrip("._-") or "run")[:80]

