"""Built-in data sets and train/validation/test splits.

`DATASETS` is cheap to import; `Splits` and `load_splits` pull in numpy and scikit-learn,
so they are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dlrecap.data.registry import DATASETS, SYNTHETIC, DatasetInfo

if TYPE_CHECKING:
    from dlrecap.data.split import Splits, load_splits

__all__ = ["DATASETS", "SYNTHETIC", "DatasetInfo", "Splits", "load_splits"]


def __getattr__(name: str):
    # Lazy so that `import dlrecap.data` (e.g. for `dlrecap datasets`) stays numpy-free.
    if name in ("Splits", "load_splits"):
        from dlrecap.data import split

        return getattr(split, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
