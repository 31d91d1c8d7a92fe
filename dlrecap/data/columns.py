"""Columns that cannot help a model predict: row IDs, constants, the target by another name.

`init` leaves IDs and constants out of the config it writes; `train` warns when a config
feeds any of them to the network (a model memorizes an ID, and an ID says nothing about new
rows; a copy of the target makes a model look perfect and teaches it nothing).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# In fewer rows, unique values are as likely chance as an ID: a toy table keeps them.
MIN_ROWS_FOR_IDS = 20
# The last word of a column name that says "this identifies the row".
_ID_WORDS = {"id", "uuid", "guid", "index", "key"}
CONSTANT = "the same value in every row, nothing to learn from"
ROW_NUMBER = "consecutive integers, unique per row: a row number or ID"
NAMED_ID = "unique per row and named like an ID"
UNIQUE_TEXT = "unique text per row: an ID or name, not a feature"
MANY_CATEGORIES = "text with a value of its own on most rows: categories too rare to learn from"
IDS = (ROW_NUMBER, NAMED_ID, UNIQUE_TEXT, MANY_CATEGORIES)
# Text with more distinct values than this share of its rows is nearly an ID.
MOSTLY_UNIQUE = 0.5


def named_like_id(name: str) -> bool:
    """`id`, `ID`, `user_id`, `userId`, `row-index`: yes; `paid`, `width`: no."""
    words = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", str(name))
    return bool(words) and words[-1].lower() in _ID_WORDS


def not_a_feature(column: pd.Series, name: str) -> str | None:
    """Why a column cannot help a model predict (an ID, or constant), or None.

    A column unique per row identifies rows when it is text, consecutive integers, or named
    like an ID; a unique float column is an ordinary measurement. Numeric columns are
    judged from their range first, so that a large file's measurements cost no `nunique`.
    """
    values = column.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and len(values) and values.min() != values.max():
        if not _may_identify(values, name):
            return None
        count = values.nunique()
    else:
        count = values.nunique()
        if count <= 1:
            return CONSTANT
        text = not numeric and not pd.api.types.is_bool_dtype(values)
        if text and MIN_ROWS_FOR_IDS <= len(values) and MOSTLY_UNIQUE * len(values) < count < len(values):
            return MANY_CATEGORIES
    if len(values) < max(len(column), MIN_ROWS_FOR_IDS) or count < len(values):
        return None
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_float_dtype(values):
        return NAMED_ID if named_like_id(name) else None
    if pd.api.types.is_integer_dtype(values):
        ordered = np.sort(values.to_numpy())
        if np.all(np.diff(ordered) == 1):
            return ROW_NUMBER
        return NAMED_ID if named_like_id(name) else None
    return UNIQUE_TEXT


def _may_identify(values: pd.Series, name: str) -> bool:
    """Whether a varying numeric column can be an ID at all: named like one, or integers
    that span exactly as many values as there are rows (consecutive, if unique)."""
    if named_like_id(name):
        return True
    if not pd.api.types.is_integer_dtype(values):
        return False
    return int(values.max()) - int(values.min()) + 1 == len(values)


# A class target is given away by a column of at most this many values, each of which goes
# with one class on every row, when each value is seen on this many rows on average (fewer
# rows could pair a few values with classes by chance).
GIVEAWAY_VALUES, GIVEAWAY_ROWS = 20, 10
# A number target is given away by a column correlated with it at least this much.
GIVEAWAY_CORRELATION = 0.9999
# Rows looked at first: a column with more distinct values than GIVEAWAY_VALUES among them
# is passed over without hashing a large file's whole column.
FIRST_ROWS = 1000


def giveaways(columns: dict[str, np.ndarray], names: list[str], y: np.ndarray,
              classes: int | None) -> dict[str, str]:
    """The columns among `names` that give the target `y` away, each with the reason.

    A copy or a rewording of the target (`passed` beside `grade`, a price in two currencies)
    makes a model look perfect and teaches it nothing it can use where the target is unknown.

    Args:
        columns: each column's values as read (numbers with NaN, or text with None).
        names: the columns to judge.
        y: class indices (classification) or numbers (regression), one per row.
        classes: the number of classes, or None for regression.
    """
    judge = _class_giveaway if classes else _number_giveaway
    return {name: why for name in names if (why := judge(columns[name], y, classes or 0))}


def _class_giveaway(values: np.ndarray, y: np.ndarray, classes: int) -> str | None:
    if len(pd.unique(values[:FIRST_ROWS])) > GIVEAWAY_VALUES:
        return None
    codes, uniques = pd.factorize(values)  # a missing value is -1
    count = len(uniques)
    if not 2 <= count <= GIVEAWAY_VALUES or len(values) < GIVEAWAY_ROWS * count:
        return None
    seen = codes >= 0
    pairs = np.unique(codes[seen].astype(np.int64) * classes + y[seen])
    if len(pairs) != count:  # some value goes with two classes
        return None
    return f"each of its {count} values goes with one class on every row: the target by another name?"


def _number_giveaway(values: np.ndarray, y: np.ndarray, _classes: int) -> str | None:
    if values.dtype == object or abs(_correlation(values[:FIRST_ROWS], y[:FIRST_ROWS])) < 0.99:
        return None
    r = _correlation(values, y)
    if abs(r) < GIVEAWAY_CORRELATION:
        return None
    return f"it moves in step with the target (correlation {r:+.4f}): the target by another name?"


def _correlation(values: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r over the rows where both are finite; 0 where it is undefined."""
    seen = np.isfinite(values) & np.isfinite(y)
    a, b = values[seen].astype(np.float64), y[seen].astype(np.float64)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
