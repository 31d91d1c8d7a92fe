"""Which values a sweep's trials try: every grid combination, or Optuna's random and TPE samplers.

For the samplers, grid values become categorical choices and ranges float or int
distributions. Grid and random values are known before anything trains; TPE draws each
trial's values when a worker takes it, from the sweep's study (see `study.py`).

This module reads a plan through `SearchSpace` and imports no other sweep module, so the
planner can draw its trials here without an import cycle.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Protocol

from dlrecap.config.schema import parse_range


class SearchSpace(Protocol):
    """What a search reads from a sweep plan (`SweepPlan` is one).

    Args:
        settings: the merged `sweep:` settings (grid, ranges, search, trials, seed).
        direction: `minimize` or `maximize` the metric.
        keys: the swept keys, grid keys first.
    """

    @property
    def settings(self) -> dict[str, Any]: ...

    @property
    def direction(self) -> str: ...

    @property
    def keys(self) -> list[str]: ...


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(plan: SearchSpace) -> dict[str, Any]:
    """Optuna distributions for the plan's grid keys (categorical) and ranges."""
    dist = _optuna().distributions
    found: dict[str, Any] = {}
    for key, values in plan.settings["grid"].items():
        # JSON strings keep lists and dicts as choices Optuna can store and compare.
        found[key] = dist.CategoricalDistribution([json.dumps(v) for v in values])
    for key, text in plan.settings["ranges"].items():
        low, high, log = parse_range(text)
        cls = dist.IntDistribution if isinstance(low, int) else dist.FloatDistribution
        found[key] = cls(low, high, log=log)
    return found


def _decode(plan: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    grid = plan.settings["grid"]
    return {key: json.loads(params[key]) if key in grid else params[key] for key in plan.keys}


def _encode(plan: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    grid = plan.settings["grid"]
    return {key: json.dumps(value) if key in grid else value for key, value in params.items()}


def initial_params(plan: SearchSpace) -> list[dict[str, Any]]:
    """The parameter sets known before anything trains, in trial order.

    Grid search: every combination; random search: `trials` sets drawn up front;
    tpe: none (it asks for each next trial as the sweep runs).
    """
    grid = plan.settings["grid"]
    if plan.settings["search"] == "grid":
        return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    if plan.settings["search"] == "random":
        return random_params(plan)
    return []


def random_params(plan: SearchSpace) -> list[dict[str, Any]]:
    """`trials` parameter sets drawn up front: random search does not learn from results."""
    optuna = _optuna()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=plan.settings["seed"]))
    dists = distributions(plan)
    return [_decode(plan, study.ask(dists).params) for _ in range(plan.settings["trials"])]
