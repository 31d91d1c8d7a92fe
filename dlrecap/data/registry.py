"""Look up a built-in data set by name, without loading any of them.

The catalogue itself lives in `dlrecap.catalog` (config validation reads it too); this module
adds the lookup whose error belongs to the data layer.
"""

from __future__ import annotations

from dlrecap.catalog import DATASETS, SYNTHETIC, DatasetInfo
from dlrecap.errors import DataError

__all__ = ["DATASETS", "SYNTHETIC", "DatasetInfo", "get_info"]


def get_info(name: str) -> DatasetInfo:
    """Looks up a built-in data set by name.

    Args:
        name: the value of `data.dataset`.

    Returns:
        Its `DatasetInfo`.

    Raises:
        DataError: the name is unknown; the message suggests the closest name.
    """
    if name in DATASETS:
        return DATASETS[name]
    import difflib  # only needed on the error path

    close = difflib.get_close_matches(str(name), list(DATASETS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise DataError(
        f"data.dataset: unknown data set '{name}'{hint}",
        fix="one of: " + ", ".join(DATASETS),
    )
