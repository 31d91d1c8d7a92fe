"""`data.derive`: input features added to the raw columns, as expressions of them.

A small grammar, read without `eval`: a feature is a product (`*`) of factors, and a factor
is a raw column (`x1`), its square (`x1^2`), or its sine or cosine (`sin(x1)`, `cos(x1)`).
This is what TensorFlow Playground's input checkboxes offer: x1, x2, x1^2, x2^2, x1*x2,
sin(x1), sin(x2). The model's inputs are the raw columns `data.features` selects (all by
default), then the derived ones. They are computed where data is loaded (training, `eval`,
`predict`), so the model itself takes them.

Parsing is plain Python, so config validation imports no NumPy.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from dlrecap.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FACTOR = re.compile(rf"\s*(?:(?P<func>sin|cos)\s*\(\s*(?P<arg>{_NAME})\s*\)"
                     rf"|(?P<name>{_NAME})\s*(?P<square>\^\s*2)?)\s*")
_PLAIN_FACTOR = rf"(?:(?:sin|cos)\s*\(\s*{_NAME}\s*\)|{_NAME}(?:\s*\^\s*2)?)"
# The whole grammar as one regular expression, for editors (the JSON Schema's pattern).
PATTERN = rf"^\s*{_PLAIN_FACTOR}(?:\s*\*\s*{_PLAIN_FACTOR})*\s*$"
GRAMMAR = "a column (x1), its square (x1^2), sin(x1) or cos(x1), or a product of them (x1*x2)"


class Factor(NamedTuple):
    """One factor of a derived feature: `kind` is `x`, `square`, `sin` or `cos`."""

    kind: str
    column: str

    def __str__(self) -> str:
        return {"x": "{}", "square": "{}^2", "sin": "sin({})", "cos": "cos({})"}[self.kind].format(
            self.column)


def parse(text: str) -> tuple[Factor, ...]:
    """The factors of one expression; ValueError naming the grammar when it is not one."""
    factors = []
    for part in str(text).split("*"):
        match = _FACTOR.fullmatch(part)
        if not match:
            raise ValueError(f"cannot read {text!r} as a feature: write {GRAMMAR}")
        if match.group("func"):
            factors.append(Factor(match.group("func"), match.group("arg")))
        else:
            factors.append(Factor("square" if match.group("square") else "x", match.group("name")))
    return tuple(factors)


def canonical(text: str) -> str:
    """The expression as the derived feature is named: `x1 * x2` -> `x1*x2`."""
    return "*".join(str(f) for f in parse(text))


def check_expression(text: str) -> str:
    """`text` when it parses (config validation); ValueError naming the grammar otherwise."""
    parse(text)
    return text


def check_distinct(expressions: list[str]) -> list[str]:
    """`expressions` when no two name the same feature; ValueError naming the repeat."""
    seen: dict[str, int] = {}
    for i, name in enumerate(derived_names(expressions)):
        if name in seen:
            raise ValueError(f"[{i}] {name} repeats [{seen[name]}]: list each feature once")
        seen[name] = i
    return expressions


def columns_used(expressions: list[str]) -> list[str]:
    """The raw columns the expressions read, in order of first use."""
    return list(dict.fromkeys(f.column for text in expressions for f in parse(text)))


def derive(expressions: list[str], x: np.ndarray, features: list[str]) -> np.ndarray:
    """The derived feature matrix (float32, one column per expression) from raw rows `x`.

    Raises:
        ConfigError: at `data.derive[i]` when an expression names a column `features` lacks.
    """
    import numpy as np

    index = {name: i for i, name in enumerate(features)}
    out = np.empty((len(x), len(expressions)), dtype=np.float32)
    for i, text in enumerate(expressions):
        value = np.ones(len(x), dtype=np.float64)
        for factor in parse(text):
            if factor.column not in index:
                raise ConfigError(f"{text!r}: no feature {factor.column!r} in the data "
                                  f"(features: {', '.join(features)})", key=f"data.derive[{i}]")
            column = np.asarray(x[:, index[factor.column]], dtype=np.float64)
            value *= {"x": column, "square": column * column, "sin": np.sin(column),
                      "cos": np.cos(column)}[factor.kind]
        out[:, i] = value
    return out


def model_inputs(x: np.ndarray, names: list[str], selected: list[str] | None,
                 expressions: list[str]) -> np.ndarray:
    """The model's input matrix: the `selected` raw columns of `x` (all when None), then
    the derived ones. `names` names the columns of `x`; expressions may read any of them.

    Raises:
        ConfigError: at `data.features[i]` or `data.derive[i]` for a column `names` lacks.
    """
    import numpy as np

    keep = list(range(len(names))) if selected is None else \
        [_index(names, selected, i) for i in range(len(selected))]
    raw = np.asarray(x[:, keep], dtype=np.float32)
    return np.concatenate([raw, derive(expressions, x, names)], axis=1) if expressions else raw


def input_names(names: list[str], selected: list[str] | None, expressions: list[str]) -> list[str]:
    """The model's input names, as `model_inputs` orders its columns."""
    return [*(names if selected is None else selected), *derived_names(expressions)]


def _index(names: list[str], selected: list[str], i: int) -> int:
    """Where `selected[i]` is among `names`; a ConfigError for an unknown or repeated one."""
    from dlrecap.config.choices import did_you_mean  # here: the config package imports this one

    name = selected[i]
    if name not in names:
        raise ConfigError(f"no column {name!r} in the data{did_you_mean(name, names)}",
                          key=f"data.features[{i}]", fix=f"columns: {', '.join(names)}")
    if name in selected[:i]:
        raise ConfigError(f"{name!r} is listed twice", key=f"data.features[{i}]",
                          fix="keep one of them")
    return names.index(name)


def repeated_raw(selected: list[str] | None, expressions: list[str]) -> list[tuple[int, str]]:
    """`(i, column)` for each derived feature that is a raw input already: a bare column
    that `selected` lists, or any bare column when `selected` is None (every raw column)."""
    found = []
    for i, text in enumerate(expressions):
        factors = parse(text)
        if len(factors) == 1 and factors[0].kind == "x" and \
                (selected is None or factors[0].column in selected):
            found.append((i, factors[0].column))
    return found


def derived_names(expressions: list[str]) -> list[str]:
    """The derived features' names, one per expression."""
    return [canonical(text) for text in expressions]


def check_numeric(expressions: list[str] | None, categorical: tuple[str, ...]) -> None:
    """Refuse derived features over data with text columns (they are one-hot encoded)."""
    if expressions and categorical:
        raise ConfigError(f"works on numeric columns only, but the data has text columns "
                          f"({', '.join(categorical)})", key="data.derive", fix="remove it")
