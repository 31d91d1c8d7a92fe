"""Property tests: no config a user can write makes `dlrecap validate` show a traceback.

Valid configs are mutated (wrong types, out-of-range and huge numbers, unknown and misspelled
keys, deleted sections, anchors, tabs, duplicate keys, unicode, random bytes); every case
must end with exit 0, or exit 2 and output that starts with `error: `.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import invoke

pytestmark = pytest.mark.slow  # 800 cases: about 20 s on an idle core

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

BASES: list[dict[str, Any]] = [
    {"data": {"dataset": "xor"}},
    {
        "name": "full", "seed": 3,
        "data": {"dataset": "moons", "samples": 200, "noise": 0.2, "validation_split": 0.2,
                 "test_split": 0.2, "standardize": True, "task": "auto"},
        "model": {"layers": [{"units": 8, "activation": "tanh", "dropout": 0.1}, 4],
                  "activation": "relu", "dropout": 0.0, "output_activation": "auto",
                  "initializer": {"name": "random_normal", "mean": 0.0, "stddev": 0.05},
                  "l1": 0.0, "l2": 0.001},
        "training": {"loss": "auto", "optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9,
                     "batch_size": 16, "epochs": 20,
                     "early_stopping": {"patience": 5, "monitor": "val_accuracy",
                                        "min_delta": 0.0, "restore_best_weights": True},
                     "metrics": ["accuracy"]},
        "expect": {"test_accuracy": ">= 0.9"},
    },
    {"data": {"dataset": "diabetes", "test_split": 0.1},
     "model": {"layers": [32, 16]}, "training": {"loss": "huber", "early_stopping": 3}},
]

ODD_VALUES = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**30, -(10**30), 2**63, 1e308, float("inf"), float("-inf"), float("nan")]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1e400", "-1e400", ".inf", "NaN", "0x1F", "1_000", "relu", "rleu", "tanh",
                     "adam", "xor", "auto", "", " ", "ключ", "🙂", "null", "~", "yes"]),
    st.lists(st.integers(min_value=-3, max_value=70), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=2),
)
KEYS = st.one_of(
    st.text(min_size=1, max_size=10),
    st.sampled_from(["actvation", "units", "layer", "epoch", "learningrate", "dataset", "datset",
                     "ключ", "名前", "<<", "patience", "monitor", "Data", "data "]),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a nested dict/list, the root included."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, prefix + (i,))
    return found


def _parent(root: Any, path: tuple) -> Any:
    node = root
    for part in path[:-1]:
        node = node[part]
    return node


def _misspell(key: str, index: int, char: str) -> str:
    i = index % (len(key) + 1)
    return key[:i] + char + key[i + 1:]


@st.composite
def mutated_configs(draw) -> dict:
    """A base config with one to three structural mutations."""
    config = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(config)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(config, path)
        action = draw(st.sampled_from(["set", "delete", "add", "misspell"]))
        if action == "set":
            parent[path[-1]] = draw(ODD_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(ODD_VALUES)
        elif action == "misspell" and isinstance(parent, dict) and isinstance(path[-1], str):
            value = parent.pop(path[-1])
            char = draw(st.sampled_from("aeiouxé_ "))
            parent[_misspell(path[-1], draw(st.integers(0, 20)), char)] = value
    return config


def _dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


@st.composite
def mutated_texts(draw) -> str:
    """YAML text of a valid config, then edited as text: tabs, duplicates, anchors, junk."""
    lines = _dump(draw(st.sampled_from(BASES))).splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(
            ["tab", "duplicate", "anchor", "junk", "delete", "truncate", "indent", "flow"]))
        if kind == "tab":
            lines[i] = "\t" + lines[i].lstrip(" ")
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "anchor" and ":" in lines[i]:
            key, _, value = lines[i].partition(":")
            lines[i] = f"{key}: &a{value}" if value.strip() else f"{key}: &a"
            lines.append(draw(st.sampled_from(["extra: *a", "seed: *a", "model: *a", "<<: *a",
                                               "training:\n  epochs: *a"])))
        elif kind == "junk":
            lines[i] = lines[i] + draw(st.text(max_size=8))
        elif kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "truncate":
            lines = lines[: i + 1]
            lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(1, 5)) + lines[i]
        elif kind == "flow":
            lines[i] = lines[i] + draw(st.sampled_from([" [", " {", " ]", " }", ",", " &", " *",
                                                        " !!python/none", " !!binary x", " |"]))
    return "\n".join(lines) + "\n"


OVERRIDES = st.lists(
    st.one_of(
        st.builds(lambda key, value: f"{key}={value}",
                  st.sampled_from(["seed", "training.epochs", "model.layers", "model.layers[0]",
                                   "model.layers[0].units", "model.layers[3].units", "data",
                                   "data.dataset.x", "training.early_stopping.patience",
                                   "expect.test_accuracy", "nope.deeper", "model.layers[0].x"]),
                  st.sampled_from(["1", "-1", "1e400", "[16,16]", "[", "{a: 1}", "'x'", "", "~",
                                   "ключ", "[1, {units: 0}]", "&a 1", "*a", "\t3"])),
        st.text(max_size=20),
    ),
    max_size=3,
)

_FILES = Path(tempfile.mkdtemp(prefix="dlrecap-props-"))
CASES = {"ran": 0, "exit 0": 0, "exit 2": 0}


def check_validate(content: str | bytes, overrides: list[str] = ()) -> None:
    """Run `dlrecap validate` on `content`: exit 0, or exit 2 with `error: ` lines only."""
    path = _FILES / "config.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    args = ["validate", str(path)]
    for item in overrides:
        args += ["--set", item]
    result = invoke(*args)
    CASES["ran"] += 1
    output = result.output
    assert "Traceback" not in output and "internal error" not in output, output
    assert result.exit_code in (0, 2), (result.exit_code, output, result.exception)
    CASES[f"exit {result.exit_code}"] += 1
    if result.exit_code == 2:
        assert result.stderr.startswith("error: "), output
        assert result.stdout == "", output
        assert all(line.startswith(("error: ", "  ")) for line in result.stderr.splitlines()), output
    else:
        assert isinstance(yaml.safe_load(result.stdout), dict)


@SETTINGS
@given(mutated_configs())
def test_structurally_mutated_configs(config):
    check_validate(_dump(config))


@SETTINGS
@given(mutated_texts())
def test_textually_mutated_configs(text):
    check_validate(text)


@SETTINGS
@given(st.sampled_from(BASES), OVERRIDES)
def test_overrides(config, overrides):
    check_validate(_dump(config), overrides)


@SETTINGS
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8",
                                                                                         "surrogatepass"))))
def test_random_bytes(content):
    check_validate(content)


@pytest.fixture(scope="module", autouse=True)
def _report_cases():
    yield
    print(f"\nproperty cases run: {CASES}")
    shutil.rmtree(_FILES, ignore_errors=True)
