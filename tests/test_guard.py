"""Tests for dlrecap.config.guard's YAML limits at their edges, on the event stream directly."""

from __future__ import annotations

import pytest

from dlrecap.config import guard
from dlrecap.errors import ConfigError


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_at_the_limit_passes_and_one_deeper_is_refused_where_it_starts():
    guard.check_events(nested(guard.MAX_DEPTH), "c.yaml")
    with pytest.raises(ConfigError) as info:
        guard.check_events("a:\n  " + nested(guard.MAX_DEPTH + 1), "c.yaml")
    error = info.value
    assert str(error) == f"nested deeper than {guard.MAX_DEPTH} levels"
    # the mapping is the first level, so the 100th bracket (column 3 + 99) is one too deep
    assert (error.source, error.line, error.col) == ("c.yaml", 2, 2 + guard.MAX_DEPTH)


def test_depth_counts_what_is_open_not_what_was_opened_before():
    # many shallow collections one after another are no deeper than one of them
    siblings = "\n".join(f"k{i}: {nested(guard.MAX_DEPTH - 1)}" for i in range(3))
    guard.check_events(siblings, "c.yaml")


def test_values_as_written_are_counted_up_to_the_limit():
    # a flow sequence: one node for the sequence, one per item
    guard.check_events("[" + ", ".join(["1"] * (guard.MAX_NODES - 1)) + "]", "c.yaml")
    with pytest.raises(ConfigError, match=f"more than {guard.MAX_NODES:,} values") as info:
        guard.check_events("[" + ", ".join(["1"] * guard.MAX_NODES) + "]", "c.yaml")
    assert info.value.source == "c.yaml"


def test_safe_load_applies_the_limits_to_a_set_value():
    assert guard.safe_load("[1, {a: 2}]", "--set x") == [1, {"a": 2}]
    with pytest.raises(ConfigError, match="nested deeper") as info:
        guard.safe_load(nested(guard.MAX_DEPTH + 1), "--set x")
    assert info.value.source == "--set x"
