"""Plan a sweep: merge the config's `sweep:` block with the command line, list and check the trials.

Every trial is an ordinary config plus `KEY=VALUE` overrides. All of them are validated
here, before anything trains, so a bad key or value stops the sweep with exit 2 and points
at where it was written: the `sweep:` block (file:line:col) or the `--grid`/`--range` option.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dlrecap.config.load import LoadedConfig, load_config
from dlrecap.config.schema import LAYER_DEFAULTS, SweepConfig, parse_range
from dlrecap.errors import ConfigError
from dlrecap.sweep.search import initial_params
from dlrecap.vocab import is_maximized

# A grid larger than this is almost always a typo; random search samples big spaces.
MAX_GRID = 1000
# Each job imports TensorFlow (~0.5 GB, ~9 CPU-seconds); more processes rarely pay off.
MAX_DEFAULT_JOBS = 8
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: the swept values and the run name they get."""

    index: int
    name: str
    params: dict[str, Any]

    def overrides(self) -> list[str]:
        """The trial's `KEY=VALUE` overrides (JSON is valid YAML, so values round-trip)."""
        return [f"{k}={json.dumps(v)}" for k, v in self.params.items()] + [f"name={self.name}"]


@dataclass
class SweepPlan:
    """What a sweep runs: the base config, the settings, and the trials known so far.

    Args:
        config_path: the config file every trial starts from.
        base_overrides: `--set` overrides applied to every trial.
        settings: the merged `sweep:` settings (grid, ranges, search, trials, seed, metric).
        jobs: trials run at once.
        name: the base run name.
        direction: `minimize` or `maximize` the metric.
        trials: every trial for grid and random search; those asked so far for tpe.
    """

    config_path: Path
    base_overrides: list[str]
    settings: dict[str, Any]
    jobs: int
    name: str
    direction: str
    trials: list[Trial] = field(default_factory=list)
    origins: dict[tuple, tuple] = field(default_factory=dict, repr=False)
    loaded: LoadedConfig | None = field(default=None, repr=False)

    @property
    def total_trials(self) -> int:
        """How many trials the sweep runs: `--trials` for tpe (drawn as they go), else its list."""
        return self.settings["trials"] if self.settings["search"] == "tpe" else len(self.trials)

    @property
    def metric(self) -> str:
        return self.settings["metric"]

    @property
    def keys(self) -> list[str]:
        return [*self.settings["grid"], *self.settings["ranges"]]

    def fingerprint(self) -> str:
        """Identifies "the same sweep": same resolved base config, same settings."""
        base = dict(self.loaded.config.resolved()) if self.loaded else {}
        base.pop("sweep", None)
        data = {"base": base, "settings": self.settings}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def new_trial(self, params: dict[str, Any]) -> Trial:
        """Append a trial with the next index and a readable, unique run name."""
        trial = Trial(len(self.trials) + 1, trial_name(self.name, len(self.trials) + 1, params), params)
        self.trials.append(trial)
        return trial


def plan_sweep(
    config_path: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    grid: Sequence[str] | Mapping[str, list[Any]] = (),
    ranges: Sequence[str] | Mapping[str, str] = (),
    search: str | None = None,
    trials: int | None = None,
    seed: int | None = None,
    jobs: int | None = None,
    metric: str | None = None,
) -> SweepPlan:
    """Merge the config's `sweep:` block with command-line options and check every trial.

    Args:
        config_path: the base config.
        overrides: `--set KEY=VALUE` strings applied to every trial.
        grid: `KEY=V1,V2` strings (values are YAML), or an already parsed mapping.
        ranges: `KEY=LO:HI[:log]` strings, or a mapping of key to range text.
        search, trials, seed, jobs, metric: override the `sweep:` block's settings.

    Raises:
        ConfigError: a bad key or value, with where it was written; nothing has trained.
    """
    config_path = Path(config_path)
    loaded = load_config(config_path, list(overrides))
    cli: dict[str, Any] = {k: v for k, v in (("search", search), ("trials", trials), ("seed", seed),
                           ("jobs", jobs), ("metric", metric)) if v is not None}
    grid_map, grid_text = _parse_options(grid, "--grid", _parse_values)
    range_map, range_text = _parse_options(ranges, "--range", lambda text, _src: text)
    cli_sweep = _validate_options({**cli, "grid": grid_map, "ranges": range_map}, grid_text, range_text)
    sweep = loaded.config.sweep or SweepConfig()
    settings = sweep.model_dump(mode="json")
    # An option replaces what the file says about the same key, grid or range alike.
    cli_keys = {*cli_sweep.grid, *cli_sweep.ranges}
    file_grid = {k: v for k, v in sweep.grid.items() if k not in cli_keys}
    file_ranges = {k: v for k, v in sweep.ranges.items() if k not in cli_keys}
    settings["grid"] = {k: [_number(v) for v in vs]
                        for k, vs in {**file_grid, **cli_sweep.grid}.items()}
    settings["ranges"] = {**file_ranges, **cli_sweep.ranges}
    settings.update({k: getattr(cli_sweep, k) for k in cli})
    settings["metric"] = settings["metric"] or _default_metric(loaded)
    origins = _origins(settings, grid_text, range_text)
    _check_settings(loaded, settings, origins, trials_given=trials is not None)
    plan = SweepPlan(
        config_path=config_path,
        base_overrides=list(overrides),
        settings={k: settings[k] for k in ("grid", "ranges", "search", "trials", "seed", "metric")},
        jobs=0,
        name=loaded.config.name or "run",
        direction="maximize" if is_maximized(settings["metric"]) else "minimize",
        origins=origins,
        loaded=loaded,
    )
    for params in initial_params(plan):
        plan.new_trial(params)
    plan.jobs = settings["jobs"] or default_jobs(len(plan.trials) or plan.settings["trials"])
    check_trials(plan)
    check_axes_matter(plan)
    return plan


def check_axes_matter(plan: SweepPlan) -> None:
    """Refuse an axis whose values all train the same thing (say, `model.activation` while
    every layer sets its own): its trials would differ by chance alone.

    Raises:
        ConfigError: located where the axis was written.
    """
    # (key, index) as `_origins` names where an axis was written: its first value, or its range.
    axes: dict[tuple[str, int | None], list[str]] = {
        (key, 0): [json.dumps(v) for v in values] for key, values in plan.settings["grid"].items()}
    axes.update({(key, None): [json.dumps(v) for v in parse_range(text)[:2]]
                 for key, text in plan.settings["ranges"].items()})
    for (key, index), values in axes.items():
        if len(set(values)) < 2:
            continue
        seen = {_trained_with(load_config(plan.config_path, [*plan.base_overrides, f"{key}={v}"]))
                for v in values}
        if len(seen) == 1:
            raise _at(plan.loaded, plan.origins, (key, index),
                      "changes nothing: every value gives the same resolved config "
                      "(the setting is shadowed, for example by each layer's own)",
                      fix="sweep the key that takes effect, e.g. model.layers[0].activation")


def _parse_options(items: Any, option: str, parse: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """`KEY=TEXT` strings -> {key: parsed}, {key: original text}; mappings pass through."""
    if isinstance(items, dict):
        return dict(items), {}
    parsed: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for item in items:
        source = f"{option} {item}"
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"expected KEY={'V1,V2,...' if option == '--grid' else 'LO:HI[:log]'}",
                              source=source)
        parsed[key.strip()] = parse(value, source)
        texts[key.strip()] = source
    return parsed, texts


def _parse_values(text: str, source: str) -> list[Any]:
    """`relu,tanh` or `[8],[16,16]` -> a list of YAML values."""
    try:
        values = yaml.safe_load(f"[{text}]")
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"values are not valid YAML: {problem}", source=source,
                          fix="separate values with commas, e.g. relu,tanh or [8],[16,16]") from None
    return values


def _number(value: Any) -> Any:
    # YAML 1.1 reads 1e-3 as text; sweeps sort and plot values, so make it the number meant.
    return float(value) if isinstance(value, str) and _FLOAT.match(value) else value


def _validate_options(options: dict[str, Any], grid_text: dict, range_text: dict) -> SweepConfig:
    try:
        return SweepConfig.model_validate(options)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [p for p in err["loc"] if isinstance(p, str)]
        name = loc[0] if loc else "sweep"
        texts = grid_text if name == "grid" else range_text if name == "ranges" else {}
        source = next(iter(texts.values()), f"--{name}") if texts else f"--{name}"
        if len(loc) > 1 and loc[1] in texts:
            source = texts[loc[1]]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] not in ("value_error",) and "input" in err:
            message += f", got {err['input']!r}"
        raise ConfigError(message, source=source) from None


def _default_metric(loaded: LoadedConfig) -> str:
    es = loaded.config.training.early_stopping
    metric = es.monitor if es else "val_loss"
    if metric.startswith("val_") and loaded.config.data.validation_split == 0:
        return metric.removeprefix("val_")
    return metric


def _origins(settings: dict[str, Any], grid_text: dict, range_text: dict) -> dict[tuple, tuple]:
    """Where each swept value was written: ("option", text) or ("file", marks path)."""
    origins: dict[tuple, tuple] = {}
    for key, values in settings["grid"].items():
        for i in range(len(values)):
            origins[(key, i)] = (("option", grid_text[key]) if key in grid_text
                                 else ("file", ("sweep", "grid", key, i)))
    for key in settings["ranges"]:
        origins[(key, None)] = (("option", range_text[key]) if key in range_text
                                else ("file", ("sweep", "ranges", key)))
    return origins


def _check_settings(loaded: LoadedConfig, settings: dict, origins: dict, trials_given: bool) -> None:
    search, grid, ranges = settings["search"], settings["grid"], settings["ranges"]
    if not grid and not ranges:
        raise loaded.locate(ConfigError(
            "nothing to sweep", fix="add --grid KEY=V1,V2 or a sweep: block with a grid",
        ))
    both = sorted(set(grid) & set(ranges))
    if both:
        raise _at(loaded, origins, (both[0], None), "is in both the grid and the ranges",
                  fix="keep one of them")
    if search == "grid" and ranges:
        key = next(iter(ranges))
        raise _at(loaded, origins, (key, None), "ranges need a search",
                  fix="add --search random or --search tpe")
    if search == "grid" and trials_given:
        raise ConfigError("applies to --search random|tpe; a grid runs every combination",
                          source="--trials")
    size = 1
    for values in grid.values():
        size *= len(values)
    if search == "grid" and size > MAX_GRID:
        raise loaded.locate(ConfigError(
            f"the grid has {size} combinations, more than {MAX_GRID}", key="sweep.grid",
            fix="use fewer values, or --search random --trials N",
        ))


def default_jobs(n_trials: int) -> int:
    """Trials at once: half the cores, at most MAX_DEFAULT_JOBS, never more than the trials.

    Half, because each trial keeps a second core busy too: the sweep process hands its
    trials' pictures to a drawing process, a worker draws its own, and TensorFlow runs
    threads beside the trial's Python. Each worker also holds TensorFlow's memory. On two
    cores `--jobs 2` gains only with trials of seconds (about 1.2x; docs/sweeps.md).
    """
    return max(1, min(available_cores() // 2, MAX_DEFAULT_JOBS, n_trials))


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def trial_name(base: str, index: int, params: dict[str, Any]) -> str:
    """`activations-03-tanh-seed1`: a valid config name that says what the trial tries."""
    pieces = []
    for key, value in params.items():
        text = _short(value)
        leaf = re.findall(r"[A-Za-z_]\w*", key)[-1]
        pieces.append(text if isinstance(value, str) else f"{leaf}{text}")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(pieces))
    name = f"{base[:40]}-{index:02d}-{slug}"[:80]
    return name.rstrip("-._")


def _short(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "x".join(_short(v) for v in value) or "none"
    if isinstance(value, dict):
        return "_".join(_short(v) for v in value.values())
    return str(value)


def check_trials(plan: SweepPlan, trials: list[Trial] | None = None) -> None:
    """Load every trial's config (and for tpe every single value) so errors come first.

    Raises:
        ConfigError: located at the `sweep:` block or the option that set the bad value.
    """
    checks: list[tuple[list[str], dict[str, tuple]]] = []
    for trial in plan.trials if trials is None else trials:
        checks.append((trial.overrides(), {o: (k, _value_index(plan, k, v))
                                           for o, (k, v) in zip(trial.overrides(), trial.params.items(),
                                                                strict=False)}))
    if plan.settings["search"] != "grid" and trials is None:
        for key, values in plan.settings["grid"].items():
            checks += [([f"{key}={json.dumps(v)}"], {f"{key}={json.dumps(v)}": (key, i)})
                       for i, v in enumerate(values)]
        for key, text in plan.settings["ranges"].items():
            checks += [([f"{key}={json.dumps(v)}"], {f"{key}={json.dumps(v)}": (key, None)})
                       for v in parse_range(text)[:2]]
    for extra, where in checks:
        try:
            load_config(plan.config_path, [*plan.base_overrides, *extra])
        except ConfigError as exc:
            item = (exc.source or "").removeprefix("--set ")
            if exc.source and exc.source.startswith("--set ") and item in where:
                key = exc.key if exc.key and exc.key != where[item][0] else None
                message = f"{key}: {exc.message}" if key else exc.message
                raise _at(plan.loaded, plan.origins, where[item], message, fix=exc.fix) from None
            raise


def _value_index(plan: SweepPlan, key: str, value: Any) -> int | None:
    values = plan.settings["grid"].get(key, [])
    return next((i for i, v in enumerate(values) if v == value), None)


def _trained_with(loaded: LoadedConfig) -> str:
    """What a trial trains, as text: layer defaults count only through the layers that take them."""
    effective = loaded.config.effective()
    for key in LAYER_DEFAULTS:
        effective["model"].pop(key, None)
    return json.dumps(effective, sort_keys=True)


def _at(loaded: LoadedConfig | None, origins: dict, where: tuple, message: str,
        fix: str | None = None) -> ConfigError:
    """A ConfigError pointing at where a swept value was written."""
    key, index = where
    kind, place = origins.get(where, ("option", None))
    if kind == "option":
        return ConfigError(message, source=place or "sweep", key=key, fix=fix)
    dotted = f"sweep.{place[1]}.{key}" + (f"[{index}]" if index is not None else "")
    error = ConfigError(message, key=dotted, fix=fix)
    error.source = str(loaded.source) if loaded and loaded.source else None
    if loaded and place in loaded.marks:
        error.line, error.col = loaded.marks[place]
    return error
