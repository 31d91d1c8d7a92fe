"""Compare runs: the config keys that differ, the metrics side by side, the curves overlaid.

Reads only the run directories' files (config.yaml, metrics.json, history.csv), so it needs
no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dlrecap import plots, runs
from dlrecap.config.schema import effective
from dlrecap.errors import RunError
from dlrecap.vocab import SPLITS

COMPARE_FILE = "compare.png"
MISSING = "-"
_FACTS = ("status", "epochs_run", "best_epoch", "weights_epoch", "stopped_early", "duration_s",
          "parameters")


@dataclass(frozen=True)
class Comparison:
    """What `dlrecap compare` shows.

    Args:
        runs: the run directories, in the order given.
        labels: their names (the directory names, which are unique in a runs directory).
        config_diff: `(dotted key, [value per run])` for each key whose values differ;
            values are shown as YAML would write them, `-` where a run lacks the key.
        metrics: `(row name, [value per run])`: facts of the run, then `<split> <metric>`.
    """

    runs: list[Path]
    labels: list[str]
    config_diff: list[tuple[str, list[str]]]
    metrics: list[tuple[str, list[Any]]]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as `{dotted.key[0].leaf: value}`; empty ones stay as leaves."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def compare_runs(run_dirs: list[Path]) -> Comparison:
    """Collect the differing config keys and the metrics of `run_dirs`.

    Raises:
        RunError: when fewer than two runs are given or a run's files are unreadable.
    """
    if len(run_dirs) < 2:
        raise RunError("compare needs at least two runs", fix="name two or more runs")
    configs = [flatten(_read_config(Path(d))) for d in run_dirs]
    infos = [runs.read_metrics(Path(d)) for d in run_dirs]
    keys: list[str] = []
    for config in configs:
        keys += [k for k in config if k not in keys]
    config_diff = []
    for key in keys:
        values = [_show(c[key]) if key in c else MISSING for c in configs]
        if len(set(values)) > 1:
            config_diff.append((key, values))
    metrics: list[tuple[str, list[Any]]] = [
        (fact, [info.get(fact) for info in infos]) for fact in _FACTS
        if any(info.get(fact) is not None for info in infos)]
    for split in SPLITS:
        names: list[str] = []
        for info in infos:
            names += [n for n in (info.get(split) or {}) if n not in names]
        for name in names:
            metrics.append((f"{split} {name}", [(info.get(split) or {}).get(name) for info in infos]))
    return Comparison([Path(d) for d in run_dirs], [Path(d).name for d in run_dirs],
                      config_diff, metrics)


def draw_comparison(comparison: Comparison, path: Path) -> Path:
    """compare.png: each run's validation loss and main metric per epoch, overlaid.

    A run without validation rows contributes its training curve, marked `(train)`.
    """
    histories = [plots.read_history(d) for d in comparison.runs]
    metric = next((m for m in map(plots.main_metric, histories) if m), None)
    panels = ["loss", *([metric] if metric else [])]
    fig, axes = plots.new_figure(1, len(panels), width=5.6 * len(panels), height=4.4)
    for ax, key in zip(axes, panels, strict=True):
        for label, history in zip(comparison.labels, histories, strict=True):
            column = f"val_{key}" if f"val_{key}" in history else key
            if column not in history:
                continue
            suffix = "" if column.startswith("val_") else " (train)"
            ax.plot(history["epoch"], history[column], lw=1.6, label=label + suffix)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"val_{key}")
        ax.set_title(f"validation {key}")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=7)
        else:  # no run recorded this curve: say so rather than draw an empty frame
            ax.text(0.5, 0.5, f"no run recorded {key}", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
    fig.suptitle("validation curves")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return plots.save_figure(fig, Path(path))
    except OSError as exc:
        raise RunError(f"cannot write {path}: {exc.strerror}", fix="choose another --output") from None


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / runs.CONFIG_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{run_dir} has no {runs.CONFIG_FILE}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise RunError(f"{path}: unreadable ({type(exc).__name__})") from None
    # Compare what each run trained with: a layer's `activation: null` means the model's.
    return effective(data) if isinstance(data, dict) else {}


def _show(value: Any) -> str:
    """A config value as YAML writes it inline: null, true, 0.05, [16, 16], tanh."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix(
        "\n...").removesuffix("...").strip()
