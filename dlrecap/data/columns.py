"""Columns that cannot help a model predict: row IDs and constants.

`init` leaves them out of the config it writes; `train` warns when a config feeds one to
the network (a model memorizes an ID, and an ID says nothing about new rows).
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
    if len(values) < max(len(column), MIN_ROWS_FOR_IDS) or count < len(values):
        return None
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_float_dtype(values):
        return "unique per row and named like an ID" if named_like_id(name) else None
    if pd.api.types.is_integer_dtype(values):
        ordered = np.sort(values.to_numpy())
        if np.all(np.diff(ordered) == 1):
            return "consecutive integers, unique per row: a row number or ID"
        return "unique per row and named like an ID" if named_like_id(name) else None
    return "unique text per row: an ID or name, not a feature"


def _may_identify(values: pd.Series, name: str) -> bool:
    """Whether a varying numeric column can be an ID at all: named like one, or integers
    that span exactly as many values as there are rows (consecutive, if unique)."""
    if named_like_id(name):
        return True
    if not pd.api.types.is_integer_dtype(values):
        return False
    return int(values.max()) - int(values.min()) + 1 == len(values)
