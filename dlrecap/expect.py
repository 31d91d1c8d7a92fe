"""A config's `expect:` block, checked against a finished run's metrics.

`expect: {test_accuracy: ">= 0.95"}` turns a run into a test: the CLI exits 3 and prints
each line the run did not meet.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from dlrecap.config.schema import parse_expectation


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": _close,
}


def unmet_expectations(expect: Mapping[str, str], metrics: Mapping[str, Any]) -> list[str]:
    """Each `expect:` line the run's metrics do not meet, as a readable sentence.

    Args:
        expect: `<split>_<metric>` -> `"<op> <number>"`, as in the config.
        metrics: the run's metrics.json, with a metrics object per split.

    Example:

    >>> unmet_expectations({"test_accuracy": ">= 0.95"}, {"test": {"accuracy": 0.9}})
    ['test_accuracy >= 0.95: got 0.9']
    """
    unmet = []
    for key, text in expect.items():
        split, _, metric = key.partition("_")
        op, bound = parse_expectation(text)
        value = (metrics.get(split) or {}).get(metric)
        if value is None:
            unmet.append(f"{key} {text}: the run has no {split} {metric}")
        elif not _OPS[op](value, bound):
            unmet.append(f"{key} {text}: got {value:.4g}")
    return unmet
