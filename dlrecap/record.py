"""The run directory while a run trains: metrics.json's record, history.csv, model.keras.

`run_directory` creates the directory (or takes a resumed one) and holds its run lock;
`open_run` prepares its record, `Run.begin` writes config.yaml and the first metrics.json,
and `Run.record` keeps metrics.json's status current as training goes on.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

import dlrecap
from dlrecap import runs
from dlrecap.config.load import LoadedConfig
from dlrecap.data.split import ROWS_FILE, n_rows, save_rows
from dlrecap.errors import (
    DlrecapError,
    InternalError,
    Interrupted,
    TrainingError,
    first_line,
    write_crash_log,
)
from dlrecap.resume import cannot_write, resume_command
from dlrecap.vocab import SPLITS

if TYPE_CHECKING:
    import keras

    from dlrecap.config.schema import Config
    from dlrecap.data import Splits
    from dlrecap.model import Head, TargetScale
    from dlrecap.train.callbacks import HistoryWriter, Progress
    from dlrecap.train.checkpoint import Checkpointer
    from dlrecap.train.distributed import Cluster
    from dlrecap.train.engines import Engine


@dataclass
class Run:
    """The run directory being written: metrics.json's contents and history.csv's writer.

    Args:
        path: the run directory.
        info: what metrics.json holds so far.
        history: the callback that writes history.csv.
        earlier_s: seconds spent in earlier sessions of a resumed run.
        clock: `time.perf_counter()` when this session opened the run.
    """

    path: Path
    info: dict[str, Any]
    history: HistoryWriter
    earlier_s: float = 0.0
    clock: float = field(default_factory=time.perf_counter)

    def begin(self, config: Config, splits: Splits) -> None:
        """Write config.yaml (resolved), the split rows and the first metrics.json (`running`)."""
        runs.write_text(self.path / runs.CONFIG_FILE,
                        yaml.safe_dump(config.resolved(), sort_keys=False, allow_unicode=True))
        with runs.atomic_path(self.path / ROWS_FILE) as tmp:  # eval scores these, without splitting
            save_rows(splits, tmp)
        runs.write_json(self.path / runs.METRICS_FILE, self.info)

    def record(self, status: str, **extra: Any) -> None:
        """Set the run's status, epochs and duration (and `extra`) in metrics.json, durably."""
        duration = self.earlier_s + time.perf_counter() - self.clock
        self.info.update(status=status, epochs_run=len(self.history.rows),
                         duration_s=round(duration, 3), **extra)
        runs.write_json(self.path / runs.METRICS_FILE, self.info, durable=True)


def describe_run(config: Config, splits: Splits, model: keras.Model, monitor: str, engine: Engine,
                 device_label: str, cluster: Cluster,
                 scale: TargetScale | None = None) -> dict[str, Any]:
    """metrics.json as a run starts: what is trained, on what, with which library versions.

    A standardized regression target adds `target_scale`: the mean and std it trains with;
    a data file's row IDs and constant columns among the features add `unhelpful_features`.
    """
    from dlrecap.model import parameter_count

    extra: dict[str, Any] = {"target_scale": {"mean": scale.mean, "std": scale.std}} if scale else {}
    if splits.unhelpful:
        extra["unhelpful_features"] = splits.unhelpful
    return {
        "name": config.name,
        "status": "running",
        "pid": os.getpid(),
        "started_at": None,  # filled in by `open_run`: a resumed run keeps its first start
        "task": splits.task,
        "labels": splits.label_names,
        "features": splits.feature_names,
        "rows": {name: n_rows(splits.split(name)[0]) for name in SPLITS},
        "parameters": parameter_count(model),
        "monitor": monitor,
        "engine": engine.name,
        "engine_reason": engine.reason,  # why not the fast engine, or None
        "device": device_label,
        "distribute": cluster.label,
        "seed": config.seed,
        **extra,
        "versions": _versions(),
    }


@contextlib.contextmanager
def run_directory(loaded: LoadedConfig, runs_dir: Path, resume: Path | None,
                  cluster: Cluster) -> Iterator[Path]:
    """The run directory, with its run lock held for the block.

    A new directory is locked right after it is made; a resumed one is locked already
    (`dlrecap.resume.resuming`). A new directory that holds no metrics.json when the block
    ends recorded nothing (the run stopped before its first write), so it is removed.

    Raises:
        RunError: the directory cannot be made or locked.
    """
    path = cluster.run_dir(runs_dir, loaded.config.name or "run", resume)  # multi_worker: chief only
    if resume is not None:
        yield path
        return
    with contextlib.ExitStack() as held:
        held.callback(_remove_if_unrecorded, path)  # runs last: after the lock is released
        try:
            held.enter_context(runs.locked(path))
        except OSError as exc:  # no room even for the lock file, say
            raise cannot_write(exc, loaded, path, resumable=False) from None
        yield path


def _remove_if_unrecorded(path: Path) -> None:
    if not (path / runs.METRICS_FILE).is_file():
        shutil.rmtree(path, ignore_errors=True)


def open_run(path: Path, resume: Path | None, info: dict[str, Any], head: Head, splits: Splits,
             initial_epoch: int, progress: Progress | None) -> Run:
    """The record of the run in `path`: metrics.json's contents and history.csv's writer.

    Nothing is written yet (`Run.begin` does that).

    Args:
        path: the run directory (`run_directory`).
        resume: the resumed run directory, or None for a new run.
        info: metrics.json's first contents (`describe_run`).
        initial_epoch: the epochs a resumed run has done; its history keeps their rows.
        progress: where history rows are shown as well, or None.
    """
    from dlrecap.train.callbacks import HistoryWriter, history_columns

    clock = time.perf_counter()
    previous = runs.read_metrics(path) if resume is not None else {}
    info["started_at"] = previous.get("started_at") or timestamp()
    if resume is not None:
        info["resumed_from_epoch"] = initial_epoch
    history = HistoryWriter(path, history_columns(head.metrics, n_rows(splits.x_val) > 0), progress)
    history.rows = runs.read_history(path)[:initial_epoch]
    return Run(path, info, history, previous.get("duration_s", 0), clock)


def save_model(model: keras.Model, run_dir: Path) -> None:
    """model.keras, written atomically."""
    with runs.atomic_path(run_dir / runs.MODEL_FILE) as tmp:
        model.save(tmp)


def _versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow as tf

    return {"dlrecap": dlrecap.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def timestamp() -> str:
    """Now, as metrics.json writes times: `2024-05-17T09:30:05`."""
    return datetime.now().isoformat(timespec="seconds")


@contextlib.contextmanager
def recording_failures(loaded: LoadedConfig, run: Run, model: keras.Model,
                       checkpointer: Checkpointer) -> Iterator[None]:
    """Record how the run ended in metrics.json, and turn it into the error the user sees.

    Raises:
        TrainingError: training diverged (the model is kept, for a look).
        Interrupted: SIGINT/SIGTERM, or a progress display that asked to stop.
        RunError: the run directory cannot be written (disk full, permissions); the run is
            left `interrupted`, to be resumed.
        InternalError: anything else, a bug; its traceback goes to crash.log.
    """
    try:
        yield
    except TrainingError as exc:
        with contextlib.suppress(OSError):  # the divergence is the news, not a full disk
            save_model(model, run.path)
        # The guard put back the weights of the last finished epoch.
        _record_quietly(run, "failed", error=exc.render(), weights_epoch=len(run.history.rows))
        raise TrainingError(f"{exc.message}; the run is in {run.path}", fix=exc.fix) from None
    except DlrecapError:
        raise
    except KeyboardInterrupt:
        if run.info.get("status") != "completed":  # stopped while removing checkpoints
            _record_quietly(run, "interrupted")
        raise Interrupted(interrupted_message(loaded, run, checkpointer.saved_epoch)) from None
    except OSError as exc:
        # Disk full, file too large, permissions changed: the user's to fix, then resume.
        _record_quietly(run, "interrupted", error=f"cannot write: {exc.strerror or exc}")
        resumable = (run.path / runs.METRICS_FILE).is_file()
        raise cannot_write(exc, loaded, run.path, resumable=resumable) from None
    except Exception as exc:
        log = write_crash_log(run.path / "crash.log", exc)
        _record_quietly(run, "failed", error=f"internal error: {type(exc).__name__}")
        raise InternalError(f"internal error during training: {type(exc).__name__}: {first_line(exc)}",
                            fix=f"traceback in {log}" if log else None) from exc


def _record_quietly(run: Run, status: str, **extra: Any) -> None:
    """Record `status` in metrics.json, if it can be written.

    When it cannot, readers show the `running` left there as interrupted once the run lock
    is released (`dlrecap.runs.shown_status`).
    """
    with contextlib.suppress(OSError):
        run.record(status, **extra)


def interrupted_message(loaded: LoadedConfig, run: Run, saved_epoch: int) -> str:
    """Where an interrupted run stands, and the command that continues it."""
    done, command = len(run.history.rows), resume_command(loaded, run.path)
    if done <= saved_epoch:
        return f"interrupted after epoch {saved_epoch}; continue with: {command}"
    kept = f"its last checkpoint at epoch {saved_epoch}" if saved_epoch else "before its first checkpoint"
    return f"interrupted after epoch {done}, {kept}; continue with: {command}"
