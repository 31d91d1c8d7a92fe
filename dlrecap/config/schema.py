"""The config schema: every key, its type, its default and its meaning live here only.

`dlrecap schema` prints the JSON Schema generated from these models, so editors can
complete and check config files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    field_validator,
    model_serializer,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from dlrecap.config import choices as c
from dlrecap.derive import PATTERN, check_distinct, check_expression
from dlrecap.vocab import PER_CLASS_METRICS


@dataclass(frozen=True)
class OneOf:
    """Annotated metadata: the string must be one of `options`.

    A wrong value gets a did-you-mean error; editors get the options as a JSON Schema enum.

    Args:
        options: the values allowed.
        what: what the value is, for the error message (`unknown loss 'mes'`).

    Example:

    ```python
    loss: Annotated[str, OneOf(("mse", "mae"), "loss")] = "mse"
    ```
    """

    options: tuple[str, ...]
    what: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["enum"] = list(self.options)
        return json_schema

    def _check(self, value: str) -> str:
        return c.check_choice(value, self.options, self.what)


Activation = Annotated[str, OneOf(c.HIDDEN_ACTIVATIONS, "activation")]
OutputActivation = Annotated[str, OneOf(c.OUTPUT_ACTIVATIONS, "output activation")]
Metric = Annotated[str, OneOf(c.METRICS, "metric")]
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class Section(BaseModel):
    """A config section: unknown keys are errors, values are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InitializerConfig(Section):
    """A weight initializer; `random_normal` draws from N(mean, stddev^2), the lecture's N(0, sigma^2)."""

    name: Annotated[str, OneOf(c.INITIALIZERS, "initializer")] = Field(description="Keras initializer name.")
    mean: Finite | None = Field(None, description="random_normal / truncated_normal: mean.")
    stddev: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        None, description="random_normal / truncated_normal: standard deviation (sigma)."
    )
    minval: Finite | None = Field(None, description="random_uniform: lower bound.")
    maxval: Finite | None = Field(None, description="random_uniform: upper bound.")

    @field_validator("mean", "stddev", "minval", "maxval")
    @classmethod
    def _only_where_used(cls, value: float | None, info: Any) -> float | None:
        name = info.data.get("name")
        if value is None or name is None:
            return value
        uses = {"mean": "normal", "stddev": "normal", "minval": "uniform", "maxval": "uniform"}
        if name not in c.PARAMETRIC_INITIALIZERS or uses[info.field_name] not in name:
            raise ValueError(f"{info.field_name} does not apply to initializer '{name}'")
        return value

    @model_serializer(mode="wrap")
    def _compact(self, handler: Any) -> Any:
        # A bare name reads best in resolved configs: `initializer: glorot_uniform`.
        data = {k: v for k, v in handler(self).items() if v is not None}
        return data["name"] if list(data) == ["name"] else data


def _initializer_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


Initializer = Annotated[InitializerConfig, BeforeValidator(_initializer_shorthand)]


class DataConfig(Section):
    """Where the rows come from and how they are split."""

    dataset: str | None = Field(
        None, description="A built-in data set (`dlrecap datasets`); exactly one of dataset/path."
    )
    path: str | None = Field(
        None, description="A .csv, .tsv, .parquet or .npz file, relative to the config file."
    )
    target: str | None = Field(None, description="Files: the column to predict.")
    features: list[str] | None = Field(
        None, description="The raw columns the network takes, in this order (default: every "
        "column but the target). Built-in sets: most synthetic ones name theirs x1, x2, ..., "
        "the bundled ones as scikit-learn does (an unknown name is refused with the list). "
        "[] takes none, for a network on data.derive's features alone."
    )
    samples: Annotated[int, Field(ge=4, le=10_000_000)] | None = Field(
        None, description="Synthetic sets only: number of rows (default 400)."
    )
    noise: Annotated[float, Field(ge=0.0, le=100.0)] | None = Field(
        None, description="Synthetic sets only: noise level (default: the set's own)."
    )
    derive: Annotated[
        list[Annotated[str, AfterValidator(check_expression),
                       Field(json_schema_extra={"pattern": PATTERN})]],
        Field(min_length=1, max_length=1000), AfterValidator(check_distinct),
    ] | None = Field(
        None, description="Input features added after the raw ones (data.features), "
        "computed from the raw columns where data is loaded (train, eval and predict alike; "
        "predict takes the raw columns): each a column (x1), its square (x1^2), sin(x1) or "
        "cos(x1), or a product of these (x1*x2), e.g. [x1*x2, sin(x1)]. They may read raw "
        "columns data.features leaves out. null (the default): none.",
    )
    recipe: Annotated[str, OneOf(("dlrecap", "playground"), "recipe")] | None = Field(
        None, description="Synthetic sets: how the points are drawn. playground: as "
        "TensorFlow Playground draws circles, xor, gaussian, spiral, plane and bumps (in the "
        "square [-6, 6]^2, noise = its slider / 100, default 0). null or dlrecap: the set's own "
        "(plane and bumps have only the Playground's).",
    )
    validation_split: Rate = Field(0.2, description="Share of rows for validation.")
    test_split: Rate = Field(0.2, description="Share of rows held out for the test metrics.")
    standardize: bool = Field(
        True, description="Scale features with mean/std of the training rows, inside the model."
    )
    standardize_target: bool | None = Field(
        None, description="Regression: train on (y - mean) / std of the training targets; the "
        "saved model maps its output back, so metrics, plots and predictions are in the "
        "target's own units. null (the default): on for regression; classification ignores it."
    )
    task: Annotated[str, OneOf(c.TASKS, "task")] = Field(
        "auto", description="auto | binary | multiclass | regression."
    )
    missing: Annotated[str, OneOf(c.MISSING, "missing-value policy")] = Field(
        "error", description="Files: what to do with missing values: error | drop | mean."
    )

    def standardizes_target(self, task: str) -> bool:
        """Whether the network trains on standardized targets for a `task` data set."""
        return task == "regression" and self.standardize_target is not False


class LayerConfig(Section):
    """One hidden Dense layer; unset keys take the model-level defaults."""

    units: Annotated[int, Field(ge=1, le=65536)] = Field(description="Number of neurons.")
    activation: Activation | None = Field(None, description="Default: model.activation.")
    dropout: Rate | None = Field(None, description="Dropout after this layer. Default: model.dropout.")
    initializer: Initializer | None = Field(None, description="Default: model.initializer.")
    batch_norm: bool | None = Field(None, description="Default: model.batch_norm.")


# Keys a layer may set for itself; unset, it takes the model's value of the same name.
LAYER_DEFAULTS = ("activation", "dropout", "initializer", "batch_norm")

# Far beyond any useful dense network; more only makes validation and building slow.
MAX_LAYERS = 1000


def _layer_shorthand(value: Any) -> Any:
    if isinstance(value, list):
        return [{"units": v} if type(v) is int else v for v in value]
    return value


class ModelConfig(Section):
    """The network: hidden layers, then an output head sized from the task."""

    layers: Annotated[list[LayerConfig], BeforeValidator(_layer_shorthand)] = Field(
        default_factory=lambda: [LayerConfig(units=8)],
        max_length=MAX_LAYERS,
        description="Hidden Dense layers in order; an int N means {units: N}; [] is a perceptron.",
    )
    activation: Activation = Field("relu", description="Activation of hidden layers naming none.")
    dropout: Rate = Field(0.0, description="Dropout after each hidden layer, 0 <= p < 1.")
    output_activation: OutputActivation = Field(
        "auto", description="auto: sigmoid (binary), softmax (multiclass), linear (regression)."
    )
    initializer: Initializer = Field(
        default_factory=lambda: InitializerConfig(name="glorot_uniform"),
        description="Kernel initializer, or {name: random_normal, mean: 0.0, stddev: 0.05}.",
    )
    l1: Annotated[float, Field(ge=0.0, le=10.0)] = Field(0.0, description="L1 weight penalty.")
    l2: Annotated[float, Field(ge=0.0, le=10.0)] = Field(0.0, description="L2 weight penalty.")
    batch_norm: bool = Field(
        False, description="Batch normalization in hidden layers naming none: Dense (no bias), "
        "then BatchNormalization, then the activation, then dropout."
    )


class EarlyStoppingConfig(Section):
    """Stop when the monitored value stops improving; keep the best epoch's weights."""

    patience: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        10, description="Epochs without improvement before stopping."
    )
    monitor: str = Field("val_loss", description="loss, val_loss, or a metric such as val_accuracy.")
    min_delta: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = Field(
        0.0, description="Smallest change that counts as an improvement."
    )
    restore_best_weights: bool = Field(True, description="End with the best epoch's weights.")

    @field_validator("monitor")
    @classmethod
    def _known_monitor(cls, value: str) -> str:
        options = tuple(p + m for p in ("", "val_") for m in ("loss", *c.METRICS))
        return c.check_choice(value, options, "monitor")


def _early_stopping_shorthand(value: Any) -> Any:
    if value is False:
        return None
    if value is True:
        return {}
    return {"patience": value} if type(value) is int else value


# Which keys each learning-rate schedule takes, and their defaults (None: worked out at
# training time, see the descriptions).
SCHEDULE_KEYS: dict[str, dict[str, Any]] = {
    "constant": {},
    "exponential": {"decay_rate": 0.5, "decay_epochs": 10.0},
    "cosine": {"decay_epochs": None, "min_lr": 0.0, "warmup_epochs": 0.0},
    "reduce_on_plateau": {"factor": 0.1, "patience": 10, "min_lr": 0.0, "monitor": None},
}
Epochs = Annotated[float, Field(gt=0.0, le=1_000_000, allow_inf_nan=False)]


class LrScheduleConfig(Section):
    """How the learning rate changes while training; `training.learning_rate` is where it starts.

    `exponential` and `cosine` change the rate at every mini-batch step, as Keras' schedule
    objects do (steps = epochs x batches per epoch); `reduce_on_plateau` multiplies it by
    `factor` after `patience` epochs without improvement, as Keras' ReduceLROnPlateau does.
    """

    name: Annotated[str, OneOf(tuple(SCHEDULE_KEYS), "learning-rate schedule")] = Field(
        description="constant | exponential | cosine | reduce_on_plateau."
    )
    decay_rate: Annotated[float, Field(gt=0.0, lt=1.0)] | None = Field(
        None, description="exponential: the rate is multiplied by this every decay_epochs "
        "(default 0.5)."
    )
    decay_epochs: Epochs | None = Field(
        None, description="exponential: epochs per decay_rate step (default 10); cosine: "
        "epochs from the peak to min_lr (default: the epochs left after the warmup)."
    )
    min_lr: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = Field(
        None, description="cosine: the rate it ends at; reduce_on_plateau: the rate it never "
        "goes below (default 0)."
    )
    warmup_epochs: Annotated[float, Field(ge=0.0, le=1_000_000, allow_inf_nan=False)] | None = Field(
        None, description="cosine: epochs rising linearly from 0 to learning_rate first (default 0)."
    )
    factor: Annotated[float, Field(gt=0.0, lt=1.0)] | None = Field(
        None, description="reduce_on_plateau: the rate is multiplied by this (default 0.1)."
    )
    patience: Annotated[int, Field(ge=0, le=1_000_000)] | None = Field(
        None, description="reduce_on_plateau: epochs without improvement before a cut (default 10)."
    )
    monitor: str | None = Field(
        None, description="reduce_on_plateau: what must improve (default: early stopping's "
        "monitor, else val_loss)."
    )

    @field_validator("decay_rate", "decay_epochs", "min_lr", "warmup_epochs", "factor",
                     "patience", "monitor")
    @classmethod
    def _only_where_used(cls, value: Any, info: Any) -> Any:
        kind = info.data.get("name")
        if value is None or kind is None:
            return value
        if info.field_name not in SCHEDULE_KEYS[kind]:
            takes = ", ".join(SCHEDULE_KEYS[kind]) or "no settings"
            raise ValueError(f"{info.field_name} does not apply to lr_schedule '{kind}' "
                             f"(it takes {takes})")
        if info.field_name == "monitor":
            options = tuple(p + m for p in ("", "val_") for m in ("loss", *c.METRICS))
            return c.check_choice(value, options, "monitor")
        return value

    def setting(self, key: str) -> Any:
        """The value of `key`: as set, else this schedule's default."""
        value = getattr(self, key)
        return SCHEDULE_KEYS[self.name].get(key) if value is None else value

    @model_serializer(mode="wrap")
    def _compact(self, handler: Any) -> Any:
        # Resolved configs show every default of the chosen schedule; `constant` reads best bare.
        if self.name == "constant":
            return "constant"
        return {"name": self.name, **{k: self.setting(k) for k in SCHEDULE_KEYS[self.name]}}


def _schedule_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


LrSchedule = Annotated[LrScheduleConfig, BeforeValidator(_schedule_shorthand)]


def _name_or_section(schema: dict[str, Any]) -> None:
    # Editors should accept the bare name (`lr_schedule: cosine`) as the loader does.
    section = schema.pop("$ref")
    schema["anyOf"] = [{"$ref": section}, {"enum": list(SCHEDULE_KEYS)}]


def _metrics_shorthand(value: Any) -> Any:
    return [value] if isinstance(value, str) and value != "auto" else value


def _label_text(value: Any) -> Any:
    """Class-weight keys as label text: `--set training.class_weight={1: 5}` gives the key 1."""
    if not isinstance(value, dict):
        return value
    return {(k if isinstance(k, str) else _number_text(k)): v for k, v in value.items()}


def _number_text(key: Any) -> str:
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return str(key).lower() if isinstance(key, bool) else str(key)


ClassWeight = Annotated[float, Field(gt=0.0, le=1e6, allow_inf_nan=False)]


class TrainingConfig(Section):
    """How the weights are fitted."""

    loss: Annotated[str, OneOf(c.LOSSES, "loss")] = Field(
        "auto", description="auto: binary/categorical cross-entropy or mse from the task."
    )
    optimizer: Annotated[str, OneOf(c.OPTIMIZERS, "optimizer")] = Field("adam", description="Optimizer.")
    learning_rate: Annotated[float, Field(gt=0.0, le=100.0)] = Field(
        0.001, description="Step size."
    )
    lr_schedule: LrSchedule = Field(
        default_factory=lambda: LrScheduleConfig(name="constant"),
        description="constant, or {name: exponential|cosine|reduce_on_plateau, ...}: how the "
        "rate changes from learning_rate while training.",
        json_schema_extra=_name_or_section,
    )
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(0.0, description="sgd only.")
    clipnorm: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = Field(
        None, description="Rescale each weight's gradient to at most this L2 norm (Keras' clipnorm)."
    )
    clipvalue: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = Field(
        None, description="Clip each gradient entry to [-clipvalue, clipvalue] (Keras' clipvalue); "
        "one of clipnorm/clipvalue."
    )
    batch_size: Annotated[int, Field(ge=1, le=16_777_216)] = Field(
        32, description="Rows per gradient step (mini-batch)."
    )
    epochs: Annotated[int, Field(ge=1, le=1_000_000)] = Field(100, description="Maximum epochs.")
    early_stopping: Annotated[
        EarlyStoppingConfig | None, BeforeValidator(_early_stopping_shorthand)
    ] = Field(None, description="An int is the patience; null trains every epoch.")
    metrics: Annotated[Literal["auto"] | list[Metric], BeforeValidator(_metrics_shorthand)] = Field(
        "auto", description="auto: accuracy (classification) or mae (regression); or a list "
        "(one name is a list of one). precision, recall and f1 count class 1 as positive "
        "(binary, at p > 0.5) or average over the classes (multiclass, macro); metrics.json "
        "adds them per class (recall_<label>). auc is the ROC area (one-vs-rest macro for "
        "multiclass): exact in metrics.json, Keras' 200-threshold estimate per epoch."
    )
    class_weight: Annotated[
        Literal["balanced"] | dict[str, ClassWeight] | None, BeforeValidator(_label_text)
    ] = Field(
        None, description="Weigh each training row's loss by its class, as Keras' "
        "fit(class_weight=...): balanced (n_rows / (n_classes * rows of the class), as "
        "scikit-learn's compute_class_weight), or a weight per label as the data names it "
        "({yes: 5} or {1: 5}; labels left out weigh 1). Validation and test scores are not "
        "weighted. Classification only."
    )
    engine: Annotated[str, OneOf(c.ENGINES, "engine")] = Field(
        "auto", description="auto | numpy (small dense networks in NumPy, CPU) | fast "
        "(in-memory compiled loop) | keras (Model.fit)."
    )
    precision: Annotated[str, OneOf(c.PRECISIONS, "precision")] = Field(
        "float32", description="float32 | mixed_float16 | mixed_bfloat16 (GPUs)."
    )
    distribute: Annotated[str, OneOf(c.DISTRIBUTES, "distribution strategy")] = Field(
        "auto", description="auto | none | mirrored | multi_worker."
    )
    tensorboard: bool = Field(False, description="Write TensorBoard logs in the run directory.")
    keep: Annotated[str, OneOf(("last", "best"), "weights to keep")] | None = Field(
        None, description="Which epoch's weights model.keras holds: last, or best (by early "
        "stopping's monitor, else val_loss, else loss). null (the default): best when early "
        "stopping restores the best weights, else last."
    )

    @field_validator("lr_schedule")
    @classmethod
    def _schedule_below_start(cls, value: LrScheduleConfig, info: Any) -> LrScheduleConfig:
        start = info.data.get("learning_rate")
        if start is not None and value.min_lr is not None and value.min_lr >= start:
            raise ValueError(f"min_lr {value.min_lr:g} must be below training.learning_rate "
                             f"{start:g}, where the schedule starts")
        return value

    @field_validator("clipvalue")
    @classmethod
    def _one_clip(cls, value: float | None, info: Any) -> float | None:
        if value is not None and info.data.get("clipnorm") is not None:
            raise ValueError("set clipnorm or clipvalue, not both (Keras takes one)")
        return value

    def keeps_best(self) -> bool:
        """Whether training ends with the best epoch's weights rather than the last epoch's."""
        if self.keep is not None:
            return self.keep == "best"
        return self.early_stopping is not None and self.early_stopping.restore_best_weights


# `<split>_<metric>`, or one class's score `<split>_<metric>_<label>` (`test_recall_yes`):
# whether the run has that class and metric is checked once the data is known (`check_task`).
_EXPECT_KEY = re.compile(r"^(train|validation|test)_(loss|" + "|".join(c.METRICS)
                         + r"|(" + "|".join(PER_CLASS_METRICS) + r")_.+)$")
_EXPECT_VALUE = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")


def parse_expectation(text: str) -> tuple[str, float]:
    """Split `">= 0.95"` into `(">=", 0.95)`; raise ValueError when malformed."""
    match = _EXPECT_VALUE.match(str(text))
    if not match:
        raise ValueError(f"expected '<op> <number>' such as '>= 0.95', got {text!r}")
    return match.group(1), float(match.group(2))


def _check_expect_key(key: str) -> str:
    if not _EXPECT_KEY.match(key):
        raise ValueError(
            f"unknown expectation {key!r}: use <split>_<metric>, e.g. test_accuracy, "
            "validation_loss, test_mae, or a class's <split>_<metric>_<label>, e.g. test_recall_yes"
        )
    return key


def _check_expect_value(text: Any) -> Any:
    # Before str validation, so that a bare number gets the hint rather than a type error.
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"quote a comparison such as \">= 0.95\", got {text!r}")
    parse_expectation(text)
    return text


# Checked key by key, so that an error points at the line of the expectation at fault.
Expectations = dict[
    Annotated[str, AfterValidator(_check_expect_key),
              Field(json_schema_extra={"pattern": _EXPECT_KEY.pattern})],
    Annotated[str, BeforeValidator(_check_expect_value),
              Field(json_schema_extra={"pattern": _EXPECT_VALUE.pattern})],
]


_SWEEP_KEY = re.compile(r"^[A-Za-z_]\w*(\[\d+\])*(\.[A-Za-z_]\w*(\[\d+\])*)*$")
_NUMBER = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*(?P<lo>{_NUMBER})\s*:\s*(?P<hi>{_NUMBER})\s*(:\s*(?P<scale>log|linear)\s*)?$")


def parse_range(text: str) -> tuple[float, float, bool]:
    """Split `"1e-4:1e-1:log"` into `(0.0001, 0.1, True)`; raise ValueError when malformed.

    Both bounds written as integers (`"4:64"`) give ints, so the search draws whole numbers.
    """
    match = _RANGE.match(str(text))
    if not match:
        raise ValueError(f"expected 'lo:hi' or 'lo:hi:log' such as '1e-4:1e-1:log', got {text!r}")
    lo, hi = match.group("lo"), match.group("hi")
    whole = all(re.fullmatch(r"[-+]?\d+", v) for v in (lo, hi))
    low, high = (int(lo), int(hi)) if whole else (float(lo), float(hi))
    log = match.group("scale") == "log"
    if not low < high:
        raise ValueError(f"the range {text!r} is empty: lo must be below hi")
    if log and low <= 0:
        raise ValueError(f"a log range needs lo > 0, got {text!r}")
    return low, high, log


def _check_sweep_keys(value: dict[str, Any]) -> dict[str, Any]:
    for key in value:
        if not _SWEEP_KEY.match(key):
            raise ValueError(f"bad key {key!r}: write it as section.key or key[0]")
        if key.split(".")[0].split("[")[0] in ("name", "sweep"):
            raise ValueError(f"{key!r} cannot be swept")
    return value


def _check_ranges(value: dict[str, Any]) -> dict[str, Any]:
    for key, text in _check_sweep_keys(value).items():
        if not isinstance(text, str):  # YAML reads 4:30 as a base-60 int
            raise ValueError(f"{key}: quote the range, e.g. \"4:32\" or \"1e-4:1e-1:log\"")
        try:
            parse_range(text)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    return value


class SweepConfig(Section):
    """The trials `dlrecap sweep` runs on this config; `dlrecap train` ignores this section."""

    grid: Annotated[
        dict[str, Annotated[list[Any], Field(min_length=1)]], AfterValidator(_check_sweep_keys)
    ] = Field(
        default_factory=dict,
        description="Dotted key -> list of values; grid search tries every combination, "
        "random/tpe pick among them.",
    )
    search: Annotated[str, OneOf(("grid", "random", "tpe"), "search")] = Field(
        "grid", description="grid (every combination) | random | tpe (Optuna's Bayesian search)."
    )
    trials: Annotated[int, Field(ge=1, le=10_000)] = Field(
        20, description="random/tpe: number of trials."
    )
    ranges: Annotated[dict[str, Any], AfterValidator(_check_ranges)] = Field(
        default_factory=dict,
        description="random/tpe: dotted key -> 'lo:hi' or 'lo:hi:log' (ints when both are ints).",
        json_schema_extra={"additionalProperties": {"type": "string"}},
    )
    seed: Annotated[int, Field(ge=0, lt=2**32)] = Field(
        0, description="random/tpe: seed of the search, for repeatable trials."
    )
    jobs: Annotated[int, Field(ge=1, le=256)] | None = Field(
        None, description="Trials at once, at most: N - 1 worker processes join the sweep's "
        "own once the trials left repay their start (default: half the cores)."
    )
    metric: str | None = Field(
        None, description="What ranks the trials, e.g. val_accuracy "
        "(default: the early-stopping monitor, else val_loss).",
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        options = tuple(p + m for p in ("", "val_") for m in ("loss", *c.METRICS))
        return value if value is None else c.check_choice(value, options, "metric")


class Config(Section):
    """A dlrecap config file."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"title": "dlrecap config", "$id": "https://dlrecap.dev/config.json"},
    )

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")] | None = Field(
        None, description="Run name (default: the config file's stem)."
    )
    seed: Annotated[int, Field(ge=0, lt=2**32)] = Field(
        0, description="Seeds every random source: same seed, same machine, same metrics."
    )
    data: DataConfig = Field(description="The data set and its splits.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The network.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Training.")
    expect: Expectations = Field(
        default_factory=dict,
        description='What the run must reach, e.g. {test_accuracy: ">= 0.95"}; exit 3 if not.',
        json_schema_extra={"additionalProperties": False},  # editors flag unknown expectations
    )
    sweep: SweepConfig | None = Field(
        None, description="Trials for `dlrecap sweep` (grid or search); `train` ignores it."
    )

    def resolved(self) -> dict[str, Any]:
        """The config as a plain dict with every default filled in."""
        data = self.model_dump(mode="json")
        if data.get("sweep") is None:  # only sweep configs show the section
            data.pop("sweep", None)
        return data

    def effective(self) -> dict[str, Any]:
        """Like `resolved`, with each layer's unset keys shown as the model default it takes.

        Two configs with the same effective dict train the same network the same way.
        """
        return effective(self.resolved())


def effective(resolved: dict[str, Any]) -> dict[str, Any]:
    """A resolved config (as config.yaml holds it) with layer defaults filled in, in place."""
    model = resolved.get("model")
    if not isinstance(model, dict):
        return resolved
    layers = model.get("layers")
    for layer in layers if isinstance(layers, list) else []:
        for key in LAYER_DEFAULTS:
            if isinstance(layer, dict) and layer.get(key) is None and key in model:
                layer[key] = model[key]
    return resolved
