"""Loading a data set (built-in or a file) as seeded, stratified train/validation/test splits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlrecap.data.registry import SYNTHETIC, get_info
from dlrecap.errors import DataError
from dlrecap.vocab import DEFAULT_SAMPLES, SPLITS

# Feature rows: a float32 matrix, or a dict of `(n, 1)` column arrays when some columns hold
# text (see `Splits.categorical`).
Features = np.ndarray | dict[str, np.ndarray]
# Row numbers of the train, validation and test splits, then optionally of the unused rows.
Rows = tuple[np.ndarray, ...]

@dataclass(frozen=True, eq=False)
class Splits:
    """A data set cut into train, validation and test rows.

    Args:
        task: `"binary"`, `"multiclass"` or `"regression"`.
        feature_names: one name per column of `x`.
        label_names: classification: class index `i` means `label_names[i]`; else `None`.
        x_train, y_train, x_val, y_val, x_test, y_test: `x` float32 `(n, features)`, `y`
            int64 class indices `(n,)` or float32 targets `(n,)`. Validation and test may
            have 0 rows.
        categorical: the string/boolean feature columns of a data file. When there are
            any, each `x` is a dict of `(n, 1)` column arrays keyed by feature name
            (float32, or `str` objects for these columns) instead of a matrix, and the
            model one-hot encodes them itself. Count rows with `n_rows(x)`.
        rows: the train, validation and test row numbers in the data as loaded, so that
            a finished run can be scored on the same rows without splitting again; a fourth
            array, when there is one, numbers the rows no split holds (`dlrecap cv` keeps
            the test rows out of its folds).
        unhelpful: raw input columns of a data file that cannot help the model predict
            (row IDs, constants, the target by another name), each with the reason.
    """

    task: str
    feature_names: list[str]
    label_names: list[str] | None
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    categorical: tuple[str, ...] = ()
    rows: Rows | None = None
    unhelpful: dict[str, str] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_classes(self) -> int | None:
        return None if self.task == "regression" or self.label_names is None else len(self.label_names)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Returns `(x, y)` of `"train"`, `"validation"` or `"test"`."""
        if name == "train":
            return self.x_train, self.y_train
        if name == "validation":
            return self.x_val, self.y_val
        if name == "test":
            return self.x_test, self.y_test
        raise DataError(f"unknown split '{name}'", fix="one of: " + ", ".join(SPLITS))


def n_rows(x: Features) -> int:
    """Rows of an `x`: a matrix, or a dict of column arrays (see `Splits.categorical`)."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def _generate(data, info, rng):
    from dlrecap.data.synthetic import GENERATORS, PLAYGROUND

    samples = DEFAULT_SAMPLES if data.samples is None else int(data.samples)
    noise = info.default_noise if data.noise is None else float(data.noise)
    if samples < 1:
        raise DataError(f"data.samples must be at least 1, got {samples}")
    if noise < 0:
        raise DataError(f"data.noise must be >= 0, got {noise}")
    playground = getattr(data, "recipe", None) == "playground" and info.name in PLAYGROUND
    return (PLAYGROUND if playground else GENERATORS)[info.name](samples, noise, rng)


def _resolve_task(requested, info, y, label_names):
    requested = requested or "auto"
    if requested == "auto" or requested == info.task:
        return info.task, y, label_names
    if requested == "regression":
        # Class indices as numbers: allowed, if rarely wise.
        return "regression", y.astype(np.float32), None
    if requested not in ("binary", "multiclass"):
        raise DataError(f"data.task: unknown task '{requested}'",
                        fix="one of: auto, binary, multiclass, regression")
    if info.task == "regression":
        raise DataError(f"data.task: '{info.name}' is a regression data set, not {requested}",
                        fix="set data.task: regression (or auto)")
    if requested == "binary" and len(label_names) > 2:
        raise DataError(f"data.task: '{info.name}' has {len(label_names)} classes, not 2",
                        fix="set data.task: multiclass (or auto)")
    return requested, y, label_names


def _counts(rows: int, validation: float, test: float) -> tuple[int, int, int]:
    # Round half up: fractions are shares of ALL rows, test and validation alike.
    n_test = math.floor(test * rows + 0.5)
    n_val = math.floor(validation * rows + 0.5)
    return rows - n_val - n_test, n_val, n_test


def _check_sizes(rows, validation, test, per_split, name, synthetic):
    """Raises DataError when a split would be empty or smaller than `per_split` rows."""
    if validation < 0 or test < 0 or validation + test >= 1:
        raise DataError(
            f"data.validation_split ({validation}) and data.test_split ({test}) must each "
            "be >= 0 and add up to less than 1")

    def ok(n):
        counts = _counts(n, validation, test)
        fracs = (1.0, validation, test)
        return all(c >= per_split for c, f in zip(counts, fracs, strict=True) if f > 0)

    if ok(rows):
        return
    needed = next((n for n in range(rows + 1, 10**6) if ok(n)), None)
    n_train, n_val, n_test = _counts(rows, validation, test)
    why = f"at least {per_split} per split for stratified classes" if per_split > 1 else (
        "at least 1 per split")
    keys = "data.validation_split / data.test_split"
    fix = (f"set data.samples >= {needed or 'more'}, or change {keys}" if synthetic
           else f"change {keys} (or set one to 0)" + ("" if needed else ", or add rows"))
    raise DataError(
        f"{rows} rows of '{name}' give {n_train} train, {n_val} validation and {n_test} "
        f"test rows, but the splits need {why}" + (f": {needed} rows would do" if needed else ""),
        fix=fix)


def _split_indices(y, n_val, n_test, stratify, seed,
                   fix="set a larger data.samples or smaller split fractions"):
    from sklearn.model_selection import train_test_split

    # Split seeds derived from `seed` but distinct from the generator stream.
    seeds = np.random.default_rng([seed, 1]).integers(2**31, size=2)
    train = np.arange(len(y))
    parts = []
    for n, s in ((n_test, seeds[0]), (n_val, seeds[1])):
        if n == 0:
            parts.append(train[:0])
            continue
        strat = y[train] if stratify else None
        try:
            train, part = train_test_split(train, test_size=n, stratify=strat,
                                           random_state=int(s))
        except ValueError as e:  # e.g. a class with a single row cannot be stratified
            raise DataError(f"cannot split the data: {e}", fix=fix) from e
        parts.append(part)
    return train, parts[1], parts[0]


# A run's row numbers per split, kept in its run directory (see `save_rows`).
ROWS_FILE = "splits.npz"
UNUSED = "unused"  # the rows no split holds, when some are left out


def save_rows(splits: Splits, path: Path) -> None:
    """Write the splits' row numbers (an .npz of train, validation, test and maybe unused)."""
    if splits.rows is not None:
        with open(path, "wb") as f:
            arrays: dict[str, Any] = dict(zip((*SPLITS, UNUSED), splits.rows, strict=False))
            np.savez(f, **arrays)


def load_rows(path: Path) -> Rows | None:
    """Row numbers written by `save_rows`, or None when the file is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = [*SPLITS, *([UNUSED] if UNUSED in arrays.files else [])]
            return tuple(np.asarray(arrays[name], dtype=np.int64) for name in names)
    except (OSError, KeyError, ValueError):
        return None


def load_splits(data, seed: int, rows: Rows | None = None) -> Splits:
    """Loads (or generates) the configured data set and splits it.

    Args:
        data: the `data:` section: an object with `dataset`, `path`, `samples`, `noise`,
            `validation_split`, `test_split` and `task` attributes; for files also
            `target`, `features` and `missing`.
        seed: seeds both the generator and the splits; the same seed gives the same arrays.
        rows: row numbers from `load_rows` to reuse instead of splitting again (a finished
            run's own rows, or a cross-validation fold's; splitting imports scikit-learn,
            which takes seconds). Ignored unless, unused rows included, they number each
            row of the data exactly once.

    Returns:
        The `Splits`. Classification splits are stratified; validation and test hold
        `validation_split` and `test_split` of all rows.

    Raises:
        DataError: unknown data set, bad file or values, impossible task, or too few rows.
        ConfigError: `data.target` or `data.features` names a column the file lacks.
    """
    seed = int(seed)
    if seed < 0:
        raise DataError(f"seed must be >= 0, got {seed}")
    if data.dataset is None:
        if data.path is None:
            raise DataError("data: set data.dataset or data.path")
        return _derived(data, _file_splits(data, seed, rows))
    info = get_info(data.dataset)
    if info.name in SYNTHETIC:
        x, y, features, labels = _generate(data, info, np.random.default_rng(seed))
    else:
        from dlrecap.data.bundled import load_bundled

        x, y, features, labels = load_bundled(info.name)
    task, y, labels = _resolve_task(getattr(data, "task", "auto"), info, y, labels)

    validation, test = float(data.validation_split or 0), float(data.test_split or 0)
    stratify = task != "regression"
    _check_sizes(len(y), validation, test, len(labels) if stratify else 1, info.name,
                 info.name in SYNTHETIC)
    rows = _reuse(rows, len(y)) or _split_indices(y, *_counts(len(y), validation, test)[1:],
                                                  stratify, seed)
    tr, va, te = rows[:3]
    x_train, x_val, x_test = cut(x, rows)
    return _derived(data, Splits(task, list(features), labels, x_train, y[tr], x_val, y[va],
                                 x_test, y[te], rows=rows))


def _derived(data, splits: Splits) -> Splits:
    """`splits` with the model's inputs: the raw columns `data.features` selects, then the
    features `data.derive` computes (a data file selects its columns as it is read)."""
    expressions = getattr(data, "derive", None) or []
    selected = getattr(data, "features", None)
    if not expressions and (selected is None or data.dataset is None):
        return splits
    from dataclasses import replace

    from dlrecap.derive import check_numeric, input_names, model_inputs

    check_numeric(expressions, splits.categorical)
    names = splits.feature_names
    x_train, x_val, x_test = (model_inputs(x, names, selected, expressions)
                              for x in (splits.x_train, splits.x_val, splits.x_test))
    return replace(splits, feature_names=input_names(names, selected, expressions),
                   x_train=x_train, x_val=x_val, x_test=x_test)


def _reuse(rows: Rows | None, n: int) -> Rows | None:
    """`rows` when they number each of `n` rows exactly once, else None (split again)."""
    if rows is None or sum(len(r) for r in rows) != n:
        return None
    seen = np.concatenate(rows)
    return rows if np.array_equal(np.sort(seen), np.arange(n)) else None


def _file_splits(data, seed: int, rows: Rows | None = None) -> Splits:
    """Splits of a data file; missing values under `missing: mean` are filled from train rows."""
    from dlrecap.data.files import impute, load_table

    table = load_table(data)
    y = table.y
    validation, test = float(data.validation_split or 0), float(data.test_split or 0)
    stratify = table.task != "regression"
    name = Path(table.name).name
    classes = len(table.labels) if table.labels is not None else 1  # None: regression
    _check_sizes(len(y), validation, test, classes, name, False)
    if stratify:
        _check_class_sizes(y, table, 1 + (validation > 0) + (test > 0))
    _, n_val, n_test = _counts(len(y), validation, test)
    rows = _reuse(rows, len(y)) or _split_indices(y, n_val, n_test, stratify, seed,
                                                  fix="add rows, or use smaller split fractions")
    tr, va, te = rows[:3]
    parts = cut(table.x, rows)
    if getattr(data, "missing", "error") == "mean":
        parts = impute(parts, table.features, table.categorical, table.name)
    return Splits(table.task, table.features, table.labels, parts[0], y[tr], parts[1], y[va],
                  parts[2], y[te], categorical=table.categorical, rows=rows,
                  unhelpful=table.unhelpful)


def _check_class_sizes(y, table, needed: int) -> None:
    """Stratified splits need every class in every split: a DataError naming the rarest."""
    from dlrecap.data.notes import spelling  # here: it loads pandas, which eval does without

    counts = np.bincount(y, minlength=len(table.labels))
    rarest = int(np.argmin(counts))
    if counts[rarest] < needed:
        label = table.labels[rarest]
        twins = [other for other in table.labels
                 if other != label and spelling(other) == spelling(label)]
        spelled = f" ({label!r} is {twins[0]!r} spelled another way?)" if twins else ""
        raise DataError(
            f"{table.name}: target column {table.target!r}: class {label!r} has only "
            f"{counts[rarest]} row(s), but stratified splits need at least {needed} of each "
            f"class{spelled}",
            fix="add rows of it, drop them, or set data.validation_split / data.test_split to 0")


# TensorFlow can train on a float32 matrix in place, without a copy, when it starts at a
# multiple of this many bytes (see dlrecap.train.tensors).
ALIGN = 64


def cut(x: Features, rows: Rows) -> list[Any]:
    """The train, validation and test rows of `x` (`rows[:3]`).

    A matrix's splits are views of one new buffer, each starting at a multiple of `ALIGN`
    bytes, filled straight from `x`: the data once more while `x` lives, and no more.
    """
    parts = rows[:3]
    if isinstance(x, dict):
        return [{c: v[r] for c, v in x.items()} for r in parts]
    row_bytes = x.itemsize * math.prod(x.shape[1:])
    sizes = [-(-len(r) * row_bytes // ALIGN) * ALIGN for r in parts]
    buffer = np.empty(sum(sizes) + ALIGN, dtype=np.uint8)
    start = -buffer.ctypes.data % ALIGN
    views = []
    for r, size in zip(parts, sizes, strict=True):
        view = buffer[start:start + len(r) * row_bytes].view(x.dtype).reshape(len(r), *x.shape[1:])
        # mode="clip": "raise" would fill a temporary first; the row numbers are checked already.
        np.take(x, r, axis=0, out=view, mode="clip")
        views.append(view)
        start += size
    return views
