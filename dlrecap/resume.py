"""Whether an earlier run can be resumed with the config given now, and how to say so.

A resumed run continues from its last checkpoint, so it must be interrupted (not finished,
not still training) and keep the seed, the data and the model shape it started with.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlrecap import runs
from dlrecap.config.load import LoadedConfig, load_config
from dlrecap.errors import ConfigError, RunError

# Sections that fix the model's shape and data: a resumed run must keep them.
RESUME_FIXED = ("seed", "data", "model")


@contextlib.contextmanager
def resuming(run_dir: Path, loaded: LoadedConfig) -> Iterator[None]:
    """Hold `run_dir`'s run lock for the block, once it is checked to be resumable.

    The check runs under the lock, so that of two processes resuming one run, exactly one
    trains it; the other is told which process holds it.

    Raises:
        RunError: another process holds the run (naming its host and pid), the run
            completed, or its folder cannot be written.
        ConfigError: as `check_resumable`.
    """
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(runs.locked(run_dir))
        except OSError as exc:  # a read-only folder, say: the lock file cannot be made
            raise cannot_write(exc, loaded, run_dir) from None
        check_resumable(run_dir, loaded)
        yield


def check_resumable(run_dir: Path, loaded: LoadedConfig) -> None:
    """Refuse to resume a run that completed or whose model/data would change.

    Whether another process trains it is the run lock's to say (`resuming`).

    Raises:
        RunError: the run completed.
        ConfigError: `loaded` differs from the run's own config in a fixed section, located
            at the first differing key.
    """
    metrics = runs.read_metrics(run_dir)
    if metrics.get("status") == "completed":
        raise RunError(f"{run_dir} already completed; nothing to resume",
                       fix="train without --resume for a new run")
    if not (run_dir / runs.CONFIG_FILE).is_file():
        return  # stopped before it could write its config: nothing was trained to differ from
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
    if _steps_schedule(before) != _steps_schedule(now):
        raise loaded.locate(ConfigError(
            "switches between a per-step schedule (exponential, cosine) and a rate the "
            "optimizer holds (constant, reduce_on_plateau): the checkpoint's optimizer state "
            "does not fit", key="training.lr_schedule",
            fix=f"use the run's own config, {run_dir / runs.CONFIG_FILE}",
        ))


def _steps_schedule(resolved: dict[str, Any]) -> bool:
    """Whether a resolved config's learning rate is a Keras schedule object (no optimizer variable)."""
    schedule = (resolved.get("training") or {}).get("lr_schedule", "constant")
    name = schedule.get("name") if isinstance(schedule, dict) else schedule
    return name in ("exponential", "cosine")


def resume_command(loaded: LoadedConfig, run_dir: Path) -> str:
    """The command that continues the run in `run_dir`."""
    return f"dlrecap train {loaded.source} --resume {run_dir}"


def cannot_write(exc: OSError, loaded: LoadedConfig, run_dir: Path, *,
                 resumable: bool = True) -> RunError:
    """The error for a run that cannot write its folder: disk full, file too large, permissions.

    Args:
        exc: the failed write; its file name says where (else `run_dir`).
        loaded: the config being trained.
        run_dir: the run directory.
        resumable: whether the run can be resumed; if not, it is to be trained again.
    """
    where = os.fsdecode(exc.filename) if exc.filename is not None else run_dir
    then = (f"resume with: {resume_command(loaded, run_dir)}" if resumable
            else f"train again with: dlrecap train {loaded.source}")
    return RunError(f"cannot write {where}: {exc.strerror or exc}",
                    fix=f"free disk space or check permissions, then {then}")


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
