"""Hostile config files end in one located error line, fast and without a memory blow-up.

Alias bombs, deep nesting, self-referencing aliases, special files and oversized files are
refused before they are expanded; hypothesis generates variants of each.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlrecap.config import guard, load_config
from dlrecap.errors import ConfigError

GENERATED = settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


def alias_bomb(levels: int, width: int) -> str:
    """The "billion laughs" document: each level lists `width` aliases of the one below."""
    lines = ["data: {dataset: xor}", "a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def refused(tmp_path: Path, text: str, *overrides: str) -> ConfigError:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value


def test_billion_laughs_is_refused_at_its_line(tmp_path):
    error = refused(tmp_path, alias_bomb(levels=9, width=9))
    assert "aliases expand to more than 100,000 values" in error.message
    assert error.line is not None and error.line >= 2


def test_an_expansion_just_under_the_limit_is_fine(tmp_path):
    # 10 * 10 * 10 * 10 = 10,000 leaves (plus their lists): far below 100,000 values.
    error = refused(tmp_path, alias_bomb(levels=4, width=10))
    assert "unknown key" in error.message  # it got as far as the schema: a0 is no config key


def test_deep_nesting_is_refused_before_recursion(tmp_path):
    error = refused(tmp_path, "data: " + "[" * 3000 + "]" * 3000 + "\n")
    assert "nested deeper than 100 levels" in error.message
    assert (error.line, error.col) == (1, 106)  # the 100th '[' opens level 101


def test_nesting_of_exactly_the_limit_is_parsed(tmp_path):
    # 1 (the document's mapping) + 99 lists: 100 levels, allowed; the schema then objects.
    error = refused(tmp_path, "data: " + "[" * 99 + "]" * 99 + "\n")
    assert "nested" not in error.message


def test_self_referencing_alias(tmp_path):
    error = refused(tmp_path, "data: {dataset: xor}\nmodel: &m {layers: [*m]}\n")
    assert "an alias refers to a node that contains it" in error.message


def test_oversized_file(tmp_path):
    error = refused(tmp_path, "# padding\n" * (guard.MAX_BYTES // 10 + 1))
    assert "larger than 1 MiB" in error.message


@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "/dev/null"])
def test_special_files_are_not_read(tmp_path, special):
    path = Path(special)
    if special == "fifo":
        path = tmp_path / "c.yaml"
        os.mkfifo(path)  # opening it for reading would block until a writer comes
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "is not a regular file" in info.value.message


def override_bomb(levels: int) -> str:
    """A `--set` value whose last list expands to 10**levels ones."""
    names = [chr(ord("a") + i) for i in range(levels)]
    parts = ["&a [" + ",".join(["1"] * 10) + "]"]
    parts += [f"&{name} [" + ",".join([f"*{below}"] * 10) + "]" for below, name in pairwise(names)]
    return "[" + ", ".join(parts) + "]"


def test_override_alias_bomb(tmp_path):
    error = refused(tmp_path, "data: {dataset: xor}\n", f"model.layers={override_bomb(5)}")
    assert "aliases expand" in error.message
    assert error.source is not None and error.source.startswith("--set model.layers=")
    small = refused(tmp_path, "data: {dataset: xor}\n", f"model.layers={override_bomb(2)}")
    assert "aliases" not in small.message  # 110 values pass the guard; the schema objects


def test_too_many_layers_says_how_many_not_what(tmp_path):
    error = refused(tmp_path, "data: {dataset: xor}\n", "model.layers=[" + ",".join(["1"] * 1001) + "]")
    assert error.key == "model.layers"
    assert "at most 1000 items, not 1001" in error.message
    assert len(error.render()) < 300


@GENERATED
@given(levels=st.integers(2, 12), width=st.integers(2, 12))
def test_generated_alias_chains_never_blow_up(tmp_path, levels, width):
    """Whatever the shape, the result is a ConfigError; expansions past the limit are named."""
    error = refused(tmp_path, alias_bomb(levels, width))
    total = sum(width ** k for k in range(1, levels + 1))
    if total > 2 * guard.MAX_NODES:
        assert "aliases expand" in error.message


@GENERATED
@given(depth=st.integers(1, 400), kind=st.sampled_from(["[]", "{}"]))
def test_generated_nesting(tmp_path, depth, kind):
    opening, closing = kind
    inner = "x" if kind == "[]" else "k: x"
    text = "data: " + (opening + " ") * depth + inner + (" " + closing) * depth + "\n"
    if kind == "{}":
        text = "data: " + "{k: " * depth + "x" + "}" * depth + "\n"
    error = refused(tmp_path, text)
    assert ("nested deeper" in error.message) == (depth + 1 > guard.MAX_DEPTH)


def test_validate_alias_bomb_stays_small_and_fast(tmp_path):
    """The reproduction: `validate` on the bomb under a 512 MB address-space cap exits 2."""
    config = tmp_path / "bomb.yaml"
    config.write_text(alias_bomb(levels=9, width=9), encoding="utf-8")

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))

    done = subprocess.run([sys.executable, "-m", "dlrecap", "validate", str(config)],
                          capture_output=True, text=True, timeout=60, preexec_fn=cap_memory)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"{config}:" in done.stderr
