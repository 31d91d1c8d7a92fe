"""Data files: .csv, .tsv, .parquet and .npz tables in; feature columns and a target out.

pandas reads the tables (pyarrow for Parquet). What is decided here is what each column
means: a numeric or a categorical (string or boolean) feature, class labels or a regression
target. Every problem becomes one `DataError` line naming the file, the column and the
first bad row, counted as a data row: 1 is the first row after the header line.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from dlrecap.config.choices import did_you_mean
from dlrecap.data.columns import giveaways, not_a_feature
from dlrecap.errors import ConfigError, DataError, first_line

if TYPE_CHECKING:
    from dlrecap.data.split import Features

T = TypeVar("T")

FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".npz": "npz"}
# Whole-number targets with at most this many distinct values are taken as classes.
MAX_INTEGER_CLASSES = 20
# A text column where at least this share of values are numbers is a numeric column with typos.
NUMERIC_SHARE = 0.5


@dataclass(frozen=True, eq=False)
class Table:
    """A data file's rows as model inputs and targets, before splitting.

    Args:
        name: the file, as messages name it.
        x: float32 `(rows, features)`; with categorical columns a dict of `(rows, 1)`
            column arrays instead (float32, or `str` objects for categorical columns).
            Under `missing: mean` feature values may still be missing (NaN / None).
        y: int64 class indices or float32 targets, `(rows,)`.
        target: the target column's name.
        features: the feature column names, in order.
        categorical: the string and boolean feature columns.
        labels: class `i` is `labels[i]`; `None` for regression.
        task: `"binary"`, `"multiclass"` or `"regression"`.
        unhelpful: the model's raw input columns that cannot help it predict (row IDs,
            constants, the target by another name), each with the reason (`data.columns`).
    """

    name: str
    x: Features
    y: np.ndarray
    target: str
    features: list[str]
    categorical: tuple[str, ...]
    labels: list[str] | None
    task: str
    unhelpful: dict[str, str] = field(default_factory=dict)


def read_table(path: str | Path, *, raw: bool = False) -> pd.DataFrame:
    """Reads a data file into a DataFrame with string column names.

    Args:
        path: a `.csv`, `.tsv`, `.parquet` or `.npz` file (arrays `x` and `y`).
        raw: CSV/TSV only: every cell as the exact text of the file, so columns can be
            written back unchanged.

    Raises:
        DataError: the file is missing, unreadable, of an unknown format, empty, or has a
            header but no data rows.
    """
    path = shown_path(path)
    kind = _readable_format(path)
    frame = _parse(path, kind, lambda: _READERS[kind](path, raw))
    if frame.shape[1] == 0:
        raise DataError(f"{path}: the file is empty", fix="the first line names the columns")
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows, only a header ({frame.shape[1]} columns)",
                        fix="add rows below the header")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _readable_format(path: Path) -> str:
    """The format `path`'s suffix names, once the file is known to exist and be a file."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        suffix = repr(path.suffix) if path.suffix else "no suffix"
        raise DataError(f"{path}: unknown file format ({suffix})", fix="use .csv, .tsv, .parquet or .npz")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a data file")
    if not path.is_file():  # a FIFO would block, a device never end
        raise DataError(f"{path}: is not a regular file (a pipe, device or socket)",
                        fix="save the data to a file first")
    return kind


def _parse(path: Path, kind: str, read: Callable[[], T]) -> T:
    """Run `read`, turning each way a `kind` file can be unreadable into a `DataError`."""
    try:
        return read()
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty", fix="the first line names the columns") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                        fix="save the file as UTF-8") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # parsers raise many types; each means "not a valid file"
        detail = first_line(exc)
        detail = detail.removeprefix("Error tokenizing data. C error: ")
        raise DataError(f"{path}: not a valid {kind} file: {detail}") from None


def shown_path(path: str | Path) -> Path:
    """`path` relative to the working directory when inside it (shorter messages), else as is."""
    path = Path(path)
    try:
        return path.relative_to(Path.cwd()) if path.is_absolute() else path
    except ValueError:
        return path


def _read_csv(path: Path, raw: bool, sep: str | None = None) -> pd.DataFrame:
    # low_memory=False: one dtype per column (chunked guessing mixes types and warns).
    # index_col=False: rows with one field more than the header (a trailing comma on each)
    # would otherwise make the first column the index and shift every value one column left;
    # so a trailing empty field is dropped, and a non-empty extra field is an error. Raw
    # cells keep their text; only empty ones are read as missing, so that they can be dropped.
    options: dict[str, Any] = {"dtype": str, "keep_default_na": False, "na_values": [""]} \
        if raw else {}
    sep = sep or _csv_separator(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(path, sep=sep, skipinitialspace=True, low_memory=False,
                                index_col=False, **options)
        except pd.errors.ParserWarning:
            raise DataError(f"{path}: a data row has more fields than the header names columns",
                            fix="name every column in the first line, or remove the extra "
                            "fields") from None
    return frame.fillna("") if raw else frame


# How much of a .csv file's first line is looked at for its separator.
HEADER_BYTES = 65536


def _csv_separator(path: Path) -> str:
    """`,`; or `;` when the header line has semicolons and no comma: spreadsheets save CSV
    that way where the comma is the decimal mark."""
    with path.open("rb") as file:
        header = file.readline(HEADER_BYTES)
    return ";" if b";" in header and b"," not in header else ","


def _read_npz(path: Path, _raw: bool) -> pd.DataFrame:
    x, y = _npz_arrays(path)
    frame = pd.DataFrame(x, columns=_npz_columns(x))
    frame["y"] = y
    return frame


def _npz_columns(x: np.ndarray) -> list[str]:
    return [f"x{i + 1}" for i in range(x.shape[1])]


def _npz_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An .npz data file's arrays `x` (rows, features) and `y` (rows,)."""
    with np.load(path, allow_pickle=False) as arrays:
        names = list(arrays.files)
        if "x" not in names or "y" not in names:
            found = ", ".join(repr(n) for n in names) or "none"
            raise DataError(f"{path}: an .npz data file needs arrays 'x' and 'y'; it has {found}",
                            fix="save it with np.savez(path, x=features, y=target)")
        x, y = arrays["x"], arrays["y"]
    x = x.reshape(-1, 1) if x.ndim == 1 else x
    y = y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y
    if x.ndim != 2:
        raise DataError(f"{path}: array 'x' has shape {x.shape}; it must be (rows, features)")
    if y.ndim != 1:
        raise DataError(f"{path}: array 'y' has shape {y.shape}; it must be (rows,)")
    if len(x) != len(y):
        raise DataError(f"{path}: array 'x' has {len(x)} rows but 'y' has {len(y)}")
    return x, y


_READERS = {
    "csv": _read_csv,
    "tsv": lambda path, raw: _read_csv(path, raw, sep="\t"),
    "parquet": lambda path, _raw: pd.read_parquet(path, engine="pyarrow"),
    "npz": _read_npz,
}


def select_columns(frame: pd.DataFrame, target: str | None, features: list[str] | None,
                   path: Path, derive: list[str] | None = None) -> tuple[str, list[str]]:
    """The target column and the feature columns (default: every other column).

    With `derive`, the columns its expressions read come after the selected ones, so they
    can be derived from; `features: []` then selects none to pass on raw.

    Raises:
        ConfigError: with key `data.target` or `data.features[i]` for unknown columns.
    """
    columns = list(frame.columns)
    listing = f"columns: {', '.join(columns)}"
    if target is None:
        if path.suffix.lower() != ".npz":
            raise ConfigError(f"{path.name} needs a target: which column to predict?",
                              key="data.target", fix=listing)
        target = "y"
    if target not in columns:
        raise ConfigError(f"no column {target!r} in {path.name}{did_you_mean(target, columns)}",
                          key="data.target", fix=listing)
    if features is None:
        return target, [c for c in columns if c != target]
    for i, name in enumerate(features):
        if name not in columns:
            raise ConfigError(f"no column {name!r} in {path.name}{did_you_mean(name, columns)}",
                              key=f"data.features[{i}]", fix=listing)
        if name == target:
            raise ConfigError(f"{name!r} is the target; it cannot also be a feature",
                              key=f"data.features[{i}]", fix="remove it from data.features")
        if name in features[:i]:
            raise ConfigError(f"{name!r} is listed twice", key=f"data.features[{i}]",
                              fix="keep one of them")
    if not features and not derive:
        raise ConfigError("no feature columns", key="data.features",
                          fix="list at least one column, or remove data.features to use all")
    from dlrecap.derive import columns_used

    read = [c for c in columns_used(derive or []) if c in columns and c != target]
    return target, list(dict.fromkeys([*features, *read]))


def is_categorical(series: pd.Series, path: Path) -> bool:
    """Whether a column holds categories (strings, booleans) rather than numbers."""
    if pd.api.types.is_bool_dtype(series) or isinstance(series.dtype, pd.CategoricalDtype):
        return True
    if pd.api.types.is_numeric_dtype(series):
        return False
    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        raise DataError(f"{path}: column {series.name!r} holds {series.dtype} values; dlrecap "
                        "reads numbers, text and booleans", fix="convert it, or leave it out of "
                        "data.features")
    values = series.dropna()
    if len(values) and all(isinstance(v, (bool, np.bool_)) for v in values.head(1000)):
        return True
    numbers = pd.to_numeric(values, errors="coerce").notna()
    return not (len(values) and numbers.mean() >= NUMERIC_SHARE)


def numeric_values(series: pd.Series, path: Path) -> np.ndarray:
    """A column as float64 (NaN where missing); a DataError at the first non-number."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isinf(values)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = (np.isnan(values) & series.notna().to_numpy()) | np.isinf(values)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"{path}: column {series.name!r}, data row {row + 1}: "
                        f"{_show(series.iloc[row])} is not a number",
                        fix="correct it, or leave the cell empty for a missing value")
    check_float32_range(values, str(series.name), path)
    return values


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_float32_range(values: np.ndarray, column: str, path: Path | str) -> None:
    """A DataError at the first value a float32 cannot hold (it would become inf).

    The model computes in float32; such a value would surface much later as a diverged
    loss, blamed on the learning rate.
    """
    with np.errstate(invalid="ignore"):
        beyond = np.abs(values) > FLOAT32_MAX
    if beyond.any():
        row = int(np.argmax(beyond))
        raise DataError(f"{path}: column {column!r}, data row {row + 1}: {values[row]:g} is "
                        f"beyond float32's range (±{FLOAT32_MAX:.3g})",
                        fix="rescale the column (for example to thousands or millions)")


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def category_values(series: pd.Series) -> np.ndarray:
    """A column as an object array of strings (`None` where missing); booleans as True/False."""
    text = series.astype(object).map(str, na_action="ignore").to_numpy(dtype=object)
    text[series.isna().to_numpy()] = None
    return text


def _missing_mask(values: np.ndarray) -> np.ndarray:
    return np.isnan(values) if values.dtype.kind == "f" else pd.isna(values)


def load_table(data: Any) -> Table:
    """Reads `data.path` and turns it into model inputs and targets.

    Args:
        data: the `data:` section: `path` (absolute, or relative to the working directory),
            `target`, `features`, `task` and `missing`.

    Raises:
        ConfigError: unknown target or feature columns (with their dotted key).
        DataError: an unreadable file or bad values, naming file, column and data row.
    """
    path = shown_path(data.path)
    table = _numeric_npz(data, path)
    if table is not None:
        return table
    frame = read_table(path)
    target, features = select_columns(frame, data.target, data.features, path,
                                       getattr(data, "derive", None))
    categorical = tuple(c for c in features if is_categorical(frame[c], path))
    inputs = features if data.features is None else data.features  # not those `derive` reads
    unhelpful = {c: why for c in inputs if (why := not_a_feature(frame[c], c))}
    columns = {c: category_values(frame[c]) if c in categorical else numeric_values(frame[c], path)
               for c in features}
    target_is_text = is_categorical(frame[target], path)
    target_values = category_values(frame[target]) if target_is_text else \
        numeric_values(frame[target], path)
    del frame  # the converted columns are all that is needed from here on

    keep = _apply_missing(columns, target, target_values, getattr(data, "missing", "error"), path)
    if keep is not None:
        columns = {c: v[keep] for c, v in columns.items()}
        target_values = target_values[keep]
    y, labels, task = _classes_or_values(target_values, target, target_is_text,
                                         getattr(data, "task", "auto") or "auto", path)
    unhelpful.update(giveaways(columns, [c for c in inputs if c not in unhelpful], y,
                               len(labels) if labels else None))
    if categorical:
        x: Features = {c: v.reshape(-1, 1) if c in categorical else v.astype(np.float32).reshape(-1, 1)
                  for c, v in columns.items()}
    else:
        x = np.empty((len(y), len(features)), dtype=np.float32)
        for i, c in enumerate(features):
            x[:, i] = columns.pop(c)  # pop: free each float64 column once copied
    return Table(str(path), x, y, target, features, categorical, labels, task, unhelpful)


# Rows checked at a time for non-finite values: a small temporary, however large the file.
CHECK_ROWS = 65536


def _numeric_npz(data: Any, path: Path) -> Table | None:
    """An .npz file with float features, every one used as it is, and numeric targets, read
    straight into one float32 matrix; None when it is anything else, or holds a value that
    is missing, infinite or beyond float32: the general path then reads it (and names it).

    The general path goes through a DataFrame and a float64 array per column, which need
    three times the data's memory; the values come out the same here.
    """
    if path.suffix.lower() != ".npz" or data.features is not None or data.target not in (None, "y"):
        return None
    _readable_format(path)
    x, y = _parse(path, "npz", lambda: _npz_arrays(path))
    # Wider floats than float64 would round twice on the general path (to float64, then float32).
    if x.dtype.kind != "f" or x.itemsize > 8 or y.dtype.kind not in "fiu" or x.size == 0:
        return None
    with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf: refused below
        x = x.astype(np.float32, copy=False)
    target = y.astype(np.float64)
    finite = all(np.isfinite(x[i:i + CHECK_ROWS]).all() for i in range(0, len(x), CHECK_ROWS))
    if not finite or not np.isfinite(target).all() or np.abs(target).max() > FLOAT32_MAX:
        return None
    y, labels, task = _classes_or_values(target, "y", False, getattr(data, "task", "auto") or "auto",
                                         path)
    return Table(str(path), x, y, "y", _npz_columns(x), (), labels, task)


def _apply_missing(columns: dict[str, np.ndarray], target: str, target_values: np.ndarray,
                   policy: str, path: Path) -> np.ndarray | None:
    """Rows to keep under `policy` (None: all), or a DataError at the first missing value."""
    masks = {c: _missing_mask(v) for c, v in columns.items()}
    target_missing = _missing_mask(target_values)
    any_missing = target_missing.copy()
    for mask in masks.values():
        any_missing |= mask
    if not any_missing.any():
        return None
    if policy == "error":
        row = int(np.argmax(any_missing))
        column = next((c for c, m in masks.items() if m[row]), target)
        count = int(any_missing.sum())
        raise DataError(f"{path}: column {column!r}, data row {row + 1}: missing value "
                        f"({count} row{'s have' if count > 1 else ' has'} one)",
                        fix="fill it in, or set data.missing: drop (or mean)")
    # `mean` fills features later from the training rows; a missing target cannot be filled.
    keep = ~(any_missing if policy == "drop" else target_missing)
    if not keep.any():
        raise DataError(f"{path}: every row has a missing value in the columns used",
                        fix="fill them in, or choose fewer data.features")
    return keep


def _classes_or_values(values: np.ndarray, column: str, is_text: bool, task: str,
                       path: Path) -> tuple[np.ndarray, list[str] | None, str]:
    """`(y, labels, task)` for a target column: class indices with names, or float targets."""
    where = f"{path}: target column {column!r}"
    if task == "regression":
        if is_text:
            example = next(v for v in values if v is not None)
            raise DataError(f"{where} holds text (e.g. {example!r}); regression needs numbers",
                            fix="set data.task: auto, binary or multiclass")
        return values.astype(np.float32), None, task
    if task == "auto" and not is_text:
        whole = bool(np.all(values == np.round(values)))
        if not whole or len(np.unique(values)) > MAX_INTEGER_CLASSES:
            return values.astype(np.float32), None, "regression"
    classes, y = np.unique(values, return_inverse=True)
    labels = [str(c) if is_text else _number_label(c) for c in classes]
    if len(labels) < 2:
        raise DataError(f"{where} has a single class ({labels[0]!r}): there is nothing to tell apart",
                        fix="a classification target needs at least two classes")
    if task == "binary" and len(labels) > 2:
        shown = ", ".join(labels[:5]) + (", ..." if len(labels) > 5 else "")
        raise DataError(f"{where} has {len(labels)} classes ({shown}), not 2",
                        fix="set data.task: multiclass (or auto)")
    if task == "auto":
        task = "binary" if len(labels) == 2 else "multiclass"
    return y.astype(np.int64), labels, task


def _number_label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def impute(parts: list[Any], features: list[str], categorical: tuple[str, ...],
           name: str) -> list[Any]:
    """Fills missing feature values from the training rows (`parts[0]`): mean or most frequent.

    Args:
        parts: the x of the train, validation and test rows (matrices, filled in place, or
            column dicts).
        features: the feature column names, in order.
        categorical: the categorical columns (filled with their most frequent category).
        name: the file, for messages.

    Raises:
        DataError: a column has no values at all in the training rows.
    """
    def fill(column: str, train: np.ndarray) -> Any:
        known = train[~_missing_mask(train)]
        if len(known) == 0:
            raise DataError(f"{name}: column {column!r} has no values in the training rows",
                            fix="fill some in, or leave the column out of data.features")
        if column in categorical:
            values, counts = np.unique(known, return_counts=True)
            return values[np.argmax(counts)]
        return known.mean(dtype=np.float64)

    if isinstance(parts[0], dict):
        values = {c: fill(c, parts[0][c].ravel()) for c in features}
        return [{c: np.where(_missing_mask(v), values[c], v).astype(v.dtype) for c, v in part.items()}
                for part in parts]
    means = np.array([fill(c, parts[0][:, i]) for i, c in enumerate(features)], dtype=np.float32)
    for p in parts:  # in place: the splits stay views of one buffer (`split.cut`)
        np.copyto(p, means, where=np.isnan(p))
    return parts
