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


def check_expectations(expect: Mapping[str, str], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The `expect:` outcome metrics.json records: whether every line was met, and each check.

    Args:
        expect: `<split>_<metric>` -> `"<op> <number>"`, as in the config.
        metrics: the run's metrics.json, with a metrics object per split.

    Returns:
        `{"met": bool, "checks": [{"key", "op", "threshold", "value", "met"}, ...]}`, the
        value None where the run has no such metric.

    Example:

    >>> check_expectations({"test_accuracy": ">= 0.95"}, {"test": {"accuracy": 0.9}})["met"]
    False
    """
    checks = []
    for key, text in expect.items():
        split, _, metric = key.partition("_")
        op, bound = parse_expectation(text)
        value = (metrics.get(split) or {}).get(metric)
        met = value is not None and _OPS[op](value, bound)
        checks.append({"key": key, "op": op, "threshold": bound, "value": value, "met": met})
    return {"met": all(c["met"] for c in checks), "checks": checks}


def unmet_expectations(expect: Mapping[str, str], metrics: Mapping[str, Any]) -> list[str]:
    """Each `expect:` line the run's metrics do not meet, as a readable sentence.

    Args:
        expect: `<split>_<metric>` -> `"<op> <number>"`, as in the config.
        metrics: the run's metrics.json, with a metrics object per split.

    Example:

    >>> unmet_expectations({"test_accuracy": ">= 0.95"}, {"test": {"accuracy": 0.9}})
    ['test_accuracy >= 0.95: got 0.9']
    """
    return unmet_lines(expect, check_expectations(expect, metrics))


def unmet_lines(expect: Mapping[str, str], outcome: Mapping[str, Any]) -> list[str]:
    """The sentences for the checks of a `check_expectations` outcome that were not met."""
    unmet = []
    for check in outcome["checks"]:
        key, value = check["key"], check["value"]
        if value is None:
            split, _, metric = key.partition("_")
            unmet.append(f"{key} {expect[key]}: the run has no {split} {metric}")
        elif not check["met"]:
            unmet.append(f"{key} {expect[key]}: got {value:.4g}")
    return unmet
