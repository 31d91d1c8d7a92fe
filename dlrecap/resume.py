"""Whether an earlier run can be resumed with the config given now.

A resumed run continues from its last checkpoint, so it must be interrupted (not finished,
not still training) and keep the seed, the data and the model shape it started with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlrecap import runs
from dlrecap.config.load import LoadedConfig, load_config
from dlrecap.errors import ConfigError, RunError

# Sections that fix the model's shape and data: a resumed run must keep them.
RESUME_FIXED = ("seed", "data", "model")


def check_resumable(run_dir: Path, loaded: LoadedConfig) -> None:
    """Refuse to resume a run that is not interrupted or whose model/data would change.

    Raises:
        RunError: the run completed, or another process is training it.
        ConfigError: `loaded` differs from the run's own config in a fixed section, located
            at the first differing key.
    """
    metrics = runs.read_metrics(run_dir)
    status = metrics.get("status")
    if status == "completed":
        raise RunError(f"{run_dir} already completed; nothing to resume",
                       fix="train without --resume for a new run")
    if status == "running" and runs.process_alive(metrics.get("pid")):
        raise RunError(f"{run_dir} is still being trained by process {metrics.get('pid')}")
    before = load_config(run_dir / runs.CONFIG_FILE).config.resolved()
    now = loaded.config.resolved()
    for section in RESUME_FIXED:
        difference = first_difference(before.get(section), now.get(section), section)
        if difference:
            raise loaded.locate(ConfigError(
                f"differs from the run being resumed ({difference}): resuming needs the same "
                "model shape and data", key=difference.split(":")[0],
                fix=f"use the run's own config, {run_dir / runs.CONFIG_FILE}",
            ))


def first_difference(a: Any, b: Any, key: str) -> str | None:
    """`key.path: old -> new` for the first place where `a` and `b` differ, or None.

    Example:

    >>> first_difference({"layers": [8, 8]}, {"layers": [8, 16]}, "model")
    'model.layers[1]: 8 -> 16'
    """
    if isinstance(a, dict) and isinstance(b, dict):
        pairs = [(f"{key}.{k}", a.get(k), b.get(k)) for k in [*a, *(k for k in b if k not in a)]]
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = [(f"{key}[{i}]", x, y) for i, (x, y) in enumerate(zip(a, b, strict=True))]
    else:
        return None if a == b else f"{key}: {a!r} -> {b!r}"
    return next((found for k, x, y in pairs if (found := first_difference(x, y, k))), None)
