"""Seed-aware comparisons: settings trained with several seeds, as mean ± std.

A setting is a combination of the values that differ, less the seed. With several seeds per
setting, a difference from the best setting's mean is only evidence when it is larger than
the seeds' own scatter: a setting whose mean is within
`2 * sqrt(s_best^2 / n_best + s^2 / n)` of the best one's (s the sample standard deviations,
n the seeds) is marked `within seed noise`: these seeds do not tell it from the best.

`sweep_summary.csv` holds one row per setting (sweep.csv keeps one row per trial); the
sweep's table and `dlrecap compare` show the same judgement.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlrecap import console, runs
from dlrecap.cv import mean_std
from dlrecap.sweep.plan import SweepPlan
from dlrecap.sweep.results import Row, format_value

SUMMARY_FILE = "sweep_summary.csv"
SEED_KEY = "seed"
BEST, WITHIN, BEYOND, UNKNOWN = "best", "within seed noise", "beyond seed noise", "too few seeds"


@dataclass
class Setting:
    """One setting's scores over its seeds.

    Args:
        values: the setting's values, by key (the seed left out).
        scores: the score of each completed seed.
        trials: its trials, completed or not.
        metrics: every final metric's value per completed seed, by name.
        verdict: `best`, `within seed noise`, `beyond seed noise`, or `too few seeds`
            (one seed here or for the best: no standard deviation to judge by).
    """

    values: dict[str, Any]
    scores: list[float] = field(default_factory=list)
    trials: int = 0
    metrics: dict[str, list[float]] = field(default_factory=dict)
    verdict: str = UNKNOWN

    @property
    def mean(self) -> float:
        return mean_std(self.scores)[0]

    @property
    def std(self) -> float:
        return mean_std(self.scores)[1]


def within_noise(best: Setting, other: Setting) -> bool | None:
    """Whether `other`'s mean is within twice the standard error of the difference from `best`'s.

    None when either has fewer than two scores (no standard deviation).
    """
    if len(best.scores) < 2 or len(other.scores) < 2:
        return None
    margin = 2 * math.sqrt(best.std**2 / len(best.scores) + other.std**2 / len(other.scores))
    return abs(best.mean - other.mean) < margin


def judge(settings: list[Setting], maximize: bool) -> list[Setting]:
    """The settings best mean first (those without scores last), each with its verdict."""
    scored = sorted((s for s in settings if s.scores), key=lambda s: -s.mean if maximize else s.mean)
    ranked = scored + [s for s in settings if not s.scores]
    if scored:
        scored[0].verdict = BEST
        for setting in scored[1:]:
            close = within_noise(scored[0], setting)
            setting.verdict = UNKNOWN if close is None else WITHIN if close else BEYOND
    return ranked


def has_seeds(plan: SweepPlan) -> bool:
    """Whether the sweep tries several seeds per setting."""
    return SEED_KEY in plan.keys and len({t.params.get(SEED_KEY) for t in plan.trials}) > 1


def settings_of(rows: list[Row], plan: SweepPlan) -> list[Setting]:
    """The sweep's trials grouped by setting (the swept values but the seed), judged."""
    keys = [k for k in plan.keys if k != SEED_KEY]
    grouped: dict[str, Setting] = {}
    for row in sorted(rows, key=lambda r: r.trial.index):
        values = {k: row.trial.params.get(k) for k in keys}
        setting = grouped.setdefault(repr([format_value(v) for v in values.values()]), Setting(values))
        setting.trials += 1
        if row.status == "completed" and row.score is not None:
            setting.scores.append(row.score)
            for name, value in row.metrics.items():
                setting.metrics.setdefault(name, []).append(value)
    return judge(list(grouped.values()), plan.direction == "maximize")


def write_summary(path: Path, rows: list[Row], plan: SweepPlan) -> list[Setting] | None:
    """sweep_summary.csv, when the sweep tries several seeds; returns its settings (else None).

    Columns: the swept keys but the seed, `seeds` (completed) and `trials`, the sweep's
    metric's `_mean` and `_std`, `verdict`, then `_mean` and `_std` of every final metric.
    """
    if not has_seeds(plan):
        return None
    settings = settings_of(rows, plan)
    keys = [k for k in plan.keys if k != SEED_KEY]
    names = sorted({n for s in settings for n in s.metrics})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*keys, "seeds", "trials", f"{plan.metric}_mean", f"{plan.metric}_std",
                     "verdict", *[f"{n}_{stat}" for n in names for stat in ("mean", "std")]])
    for s in settings:
        stats = [_cell(v) for n in names for v in mean_std(s.metrics.get(n, []))]
        writer.writerow([*[format_value(s.values[k]) for k in keys], len(s.scores), s.trials,
                         _cell(s.mean), _cell(s.std), s.verdict, *stats])
    runs.write_text(path, buffer.getvalue())
    return settings


def _cell(value: float) -> str:
    return "" if not math.isfinite(value) else repr(float(value))


def print_settings(title: str, keys: list[str], metric: str, settings: list[Setting]) -> None:
    """The table of settings: values, seeds, `metric` mean ± std and the verdict."""
    rows = [[*[format_value(s.values.get(k)) for k in keys], len(s.scores),
             plus_minus(s.mean, s.std), s.verdict] for s in settings]
    console.table(title, [*keys, "seeds", f"{metric} mean ± std", "vs best"], rows)
    close = sum(s.verdict == WITHIN for s in settings)
    if close:
        console.note(f"{close} setting(s) are within seed noise of the best: with these seeds, "
                     f"their {metric} cannot be told from the best's (|difference of means| < "
                     "2 * sqrt(s1^2/n1 + s2^2/n2))")


def plus_minus(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "-"
    return console.number(mean) + (f" ± {console.number(std)}" if math.isfinite(std) else "")


def print_sweep_settings(result: Any) -> None:
    """After a sweep with several seeds: its settings, aggregated over the seeds."""
    plan = result.plan
    if not has_seeds(plan):
        return
    keys = [k for k in plan.keys if k != SEED_KEY]
    print_settings(f"{plan.name} sweep over seeds, best mean {plan.metric} first", keys,
                   plan.metric, settings_of(result.rows, plan))


def compare_settings(comparison: Any) -> tuple[list[str], str, list[Setting]] | None:
    """`dlrecap compare`'s runs grouped by setting (the config keys that differ, less the seed).

    Each run is scored by the first run's monitor (`val_loss`, ...) on its validation rows.

    Returns:
        `(keys, metric, settings)`, or None when no setting has more than one run.
    """
    from dlrecap.sweep.results import score_of
    from dlrecap.vocab import is_maximized

    keys = [k for k, _ in comparison.config_diff if k not in (SEED_KEY, "name")]
    infos = [runs.read_metrics(run) for run in comparison.runs]
    metric = infos[0].get("monitor") or "val_loss"
    grouped: dict[str, Setting] = {}
    for i, info in enumerate(infos):
        values = {k: dict(comparison.config_diff)[k][i] for k in keys}
        setting = grouped.setdefault(repr(list(values.values())), Setting(values))
        setting.trials += 1
        if (score := score_of(info, metric)) is not None:
            setting.scores.append(score)
    if all(s.trials < 2 for s in grouped.values()):
        return None
    return keys, metric, judge(list(grouped.values()), is_maximized(metric.removeprefix("val_")))


def print_compare_settings(comparison: Any) -> None:
    """After `dlrecap compare`: runs that differ only in their seed, as one setting."""
    if (found := compare_settings(comparison)) is not None:
        keys, metric, settings = found
        print_settings("settings (runs grouped over their seeds)", keys, metric, settings)
