"""`dlrecap init --from-playground URL`: a config from a playground.tensorflow.org address.

The address's fragment holds the Playground's state (`#activation=tanh&networkShape=4,2...`);
each parameter becomes a config key, parameters the address leaves out take the
Playground's own defaults, and one that cannot be mapped is refused by name. The data is
drawn by the Playground's own recipes (`data.recipe: playground`); its x and y input
checkboxes select the raw columns (`data.features`), the others become `data.derive`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dlrecap import runs
from dlrecap.config.load import load_config
from dlrecap.errors import ConfigError, DlrecapError, printable
from dlrecap.starter import COMMENT_COLUMN, Starter

DEFAULT_URL = (
    "https://playground.tensorflow.org/#activation=tanh&batchSize=10&dataset=circle"
    "&regDataset=reg-plane&learningRate=0.03&regularizationRate=0&noise=0&networkShape=4,2"
    "&seed=0.01234&showTestData=false&discretize=false&percTrainData=50&x=true&y=true"
    "&xTimesY=false&xSquared=false&ySquared=false&cosX=false&sinX=false&cosY=false&sinY=false"
    "&collectStats=false&problem=classification&initZero=false&hideText=false"
)
HOST = "playground.tensorflow.org"
# The Playground's input checkboxes, in its order, and the input column each one is.
INPUTS = {"x": "x1", "y": "x2", "xSquared": "x1^2", "ySquared": "x2^2", "xTimesY": "x1*x2",
          "sinX": "sin(x1)", "sinY": "sin(x2)", "cosX": "cos(x1)", "cosY": "cos(x2)"}
RAW = ("x", "y")  # the checkboxes that are raw columns: data.features
CLASSIFICATION = {"circle": "circles", "xor": "xor", "gauss": "gaussian", "spiral": "spiral"}
REGRESSION = {"reg-plane": "plane", "reg-gauss": "bumps"}
ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
# The Playground draws 500 points to classify and 1,200 to regress.
SAMPLES = {"classification": 500, "regression": 1200}
# What only the page shows (and its seed, whose points dlrecap cannot draw again).
DISPLAY_ONLY = {"seed", "showTestData", "discretize", "collectStats", "hideText", "tutorial"}
EPOCHS = 100


def _defaults() -> dict[str, str]:
    return {"regularization": "none", **dict(parse_qsl(urlsplit(DEFAULT_URL).fragment))}


@dataclass(frozen=True)
class Line:
    """One line of the config: YAML text and its comment."""

    text: str
    note: str | None = None


def read_url(url: str) -> dict[str, str]:
    """The Playground's state in `url`, the Playground's defaults filled in.

    Raises:
        DlrecapError: not a playground.tensorflow.org address, or a parameter it does not know.
    """
    parts = urlsplit(url.strip())
    if parts.netloc.lower() != HOST or parts.scheme not in ("http", "https"):
        raise DlrecapError(f"--from-playground: {printable(url[:120])!r} is not a {HOST} address",
                           fix=f"copy the address from the browser, e.g. https://{HOST}/#...")
    state = _defaults()
    for key, value in parse_qsl(parts.fragment, keep_blank_values=True):
        if key not in state and key not in DISPLAY_ONLY and not key.endswith("_hide"):
            raise _unmapped(key, value, "not a Playground setting dlrecap knows")
        state[key] = value
    return state


def _unmapped(key: str, value: str, why: str) -> DlrecapError:
    return DlrecapError(f"--from-playground: {printable(key)}={printable(value[:60])}: {why}")


def config_lines(state: dict[str, str], url: str) -> list[Line]:
    """The config for the Playground `state`, as commented YAML lines."""
    problem = _choice(state, "problem", ("classification", "regression"))
    regression = problem == "regression"
    return [
        Line(f"# From TensorFlow Playground: {url}"),
        Line("# Made by `dlrecap init --from-playground`; `dlrecap schema` lists every key."),
        Line("# Like the Playground: its data recipe, plain SGD, unscaled inputs, weights"),
        Line("# uniform in [-0.5, 0.5]. Unlike it: biases start at 0 (not 0.1), and the"),
        *([Line("# loss is mse, whose gradient is twice that of its (p - t)^2 / 2.")] if regression
          else [Line("# output is a sigmoid trained with binary cross-entropy on labels 0/1"),
                Line("# (the Playground: a tanh output, squared error on labels -1/+1).")]),
        Line("seed: 0", "the Playground's seed draws its own points; this draws dlrecap's"),
        *_data_lines(state, problem),
        *_model_lines(state),
        Line("training:"),
        Line("  optimizer: sgd", "the Playground's plain gradient descent"),
        Line(f"  learning_rate: {_number(state, 'learningRate', 1e-9, 100)}", "learningRate"),
        Line(f"  batch_size: {_integer(state, 'batchSize', 1, 10_000)}", "batchSize"),
        Line(f"  epochs: {EPOCHS}", "the Playground trains until you stop it"),
    ]


def _data_lines(state: dict[str, str], problem: str) -> list[Line]:
    regression = problem == "regression"
    key = "regDataset" if regression else "dataset"
    names = REGRESSION if regression else CLASSIFICATION
    dataset = state[key]
    if dataset not in names:
        raise _unmapped(key, dataset, f"a {problem} set is one of {', '.join(names)}")
    noise = _integer(state, "noise", 0, 50)
    train_share = _integer(state, "percTrainData", 10, 90)
    lines = [
        Line("data:"),
        Line(f"  dataset: {names[dataset]}", f"{key}={dataset}"),
        Line("  recipe: playground", "its points, in the square [-6, 6]^2"),
        Line(f"  samples: {SAMPLES[problem]}", f"the Playground's {problem} points"),
        Line(f"  noise: {noise / 100:g}", f"noise={noise} (percent)"),
        *_derive_lines(state),
        Line("  validation_split: 0.0", "the Playground has no validation rows"),
        Line(f"  test_split: {(100 - train_share) / 100:g}", f"percTrainData={train_share}"),
        Line("  standardize: false", "the Playground feeds the inputs as they are"),
    ]
    if regression:
        lines.append(Line("  standardize_target: false", "its targets are already in [-1, 1]"))
    return lines


def _derive_lines(state: dict[str, str]) -> list[Line]:
    checked = [name for name in INPUTS if _flag(state, name)]
    if not checked:
        raise _unmapped("x", state["x"], "no input feature is checked (x, y, xSquared, ...)")
    raw = [name for name in RAW if name in checked]
    derived = [name for name in checked if name not in RAW]
    lines = []
    if raw != list(RAW):  # both raw boxes checked is the default: every raw column
        columns = ", ".join(INPUTS[name] for name in raw)
        lines.append(Line(f"  features: [{columns}]",
                          "the x and y checkboxes: " + (", ".join(raw) if raw else "neither")))
    if derived:
        lines += [Line("  derive:", "the other input checkboxes, added after the raw ones"),
                  *[Line(f"    - {_quoted(INPUTS[name])}", name) for name in derived]]
    return lines


def _model_lines(state: dict[str, str]) -> list[Line]:
    activation = _choice(state, "activation", ACTIVATIONS)
    shape = state["networkShape"].strip()
    if shape and not re.fullmatch(r"\d+(,\d+)*", shape):
        raise _unmapped("networkShape", shape, "expected neuron counts such as 4,2")
    layers = [int(n) for n in shape.split(",")] if shape else []
    if any(not 1 <= n <= 65536 for n in layers):
        raise _unmapped("networkShape", shape, "each layer needs 1 to 65536 neurons")
    init = ("zeros" if _flag(state, "initZero")
            else "{name: random_uniform, minval: -0.5, maxval: 0.5}")
    lines = [Line("model:"),
             Line(f"  layers: [{', '.join(map(str, layers))}]", "networkShape"),
             # Without hidden layers the activation has nothing to apply to.
             *([Line(f"  activation: {activation}", "activation")] if layers else []),
             Line(f"  initializer: {init}", "initZero" if _flag(state, "initZero") else
                  "the Playground's Math.random() - 0.5")]
    return lines + _penalty_lines(state)


def _penalty_lines(state: dict[str, str]) -> list[Line]:
    kind = _choice(state, "regularization", ("none", "L1", "L2"))
    rate = _number(state, "regularizationRate", 0, 10)
    if kind == "none" or rate == 0:
        return []
    if kind == "L1":
        return [Line(f"  l1: {rate:g}", "regularizationRate: both shrink w by rate * sign(w)")]
    return [Line(f"  l2: {rate / 2:g}", f"regularizationRate {rate:g} / 2: Keras penalizes "
                 "l2 * w^2, the Playground w^2 / 2")]


def _choice(state: dict[str, str], key: str, options: tuple[str, ...]) -> str:
    if state[key] not in options:
        raise _unmapped(key, state[key], "expected one of " + ", ".join(options))
    return state[key]


def _flag(state: dict[str, str], key: str) -> bool:
    return _choice(state, key, ("true", "false")) == "true"


def _number(state: dict[str, str], key: str, low: float, high: float) -> float:
    try:
        value = float(state[key])
    except ValueError:
        raise _unmapped(key, state[key], "expected a number") from None
    if not low <= value <= high:
        raise _unmapped(key, state[key], f"expected a number from {low:g} to {high:g}")
    return value


def _integer(state: dict[str, str], key: str, low: int, high: int) -> int:
    value = _number(state, key, low, high)
    if value != int(value):
        raise _unmapped(key, state[key], "expected a whole number")
    return int(value)


def _quoted(text: str) -> str:
    # `x1^2` and `sin(x1)` read as plain YAML strings; quoting all keeps them uniform.
    return f'"{text}"'


def render(lines: list[Line]) -> str:
    """The config file's text."""
    out = []
    for line in lines:
        text = printable(line.text) if line.text.startswith("#") else line.text
        out.append(text if line.note is None
                   else f"{text.ljust(COMMENT_COLUMN - 1)} # {printable(line.note)}")
    return "\n".join(out) + "\n"


def write_playground(url: str, output: Path | None = None, force: bool = False) -> Starter:
    """Writes the config for a Playground address; it is validated before it is kept.

    Raises:
        DlrecapError: an address it cannot map (naming the parameter), or `output` exists
            and `force` is off, or cannot be written.
    """
    state = read_url(url)
    text = render(config_lines(state, url.strip()))
    problem = state["problem"]
    dataset = state["regDataset" if problem == "regression" else "dataset"]
    output = Path(output) if output is not None else Path(f"playground-{dataset}.yaml")
    if output.exists() and not force:
        raise DlrecapError(f"{output} already exists",
                           fix="pass --force to overwrite it, or choose another --output")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with runs.atomic_path(output) as temporary:
            temporary.write_text(text, encoding="utf-8")
            _check(temporary)
    except OSError as exc:
        raise DlrecapError(f"{output}: cannot write: {exc.strerror or exc}",
                           fix="choose another --output") from None
    summary = f"{problem} of the Playground's {dataset} set"
    return Starter(output, summary)


def _check(path: Path) -> Any:
    """The written config validates, or the mapping is at fault (a bug, not the address)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise DlrecapError(f"--from-playground made a config that does not validate: "
                           f"{exc.render()}") from None
