"""The run directory while a run trains: metrics.json's record, history.csv, model.keras.

`open_run` creates the directory (or reopens a resumed one) and writes config.yaml and the
first metrics.json; `Run.record` keeps metrics.json's status current as training goes on.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

import dlrecap
from dlrecap import runs
from dlrecap.config.load import LoadedConfig
from dlrecap.data.split import ROWS_FILE, n_rows, save_rows
from dlrecap.vocab import SPLITS

if TYPE_CHECKING:
    import keras

    from dlrecap.config.schema import Config
    from dlrecap.data import Splits
    from dlrecap.model import Head, TargetScale
    from dlrecap.train.callbacks import HistoryWriter, Progress
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

    A standardized regression target adds `target_scale`: the mean and std it trains with.
    """
    from dlrecap.model import parameter_count

    scaled = {"target_scale": {"mean": scale.mean, "std": scale.std}} if scale else {}
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
        "device": device_label,
        "distribute": cluster.label,
        "seed": config.seed,
        **scaled,
        "versions": _versions(),
    }


def open_run(loaded: LoadedConfig, runs_dir: Path, resume: Path | None, cluster: Cluster,
             info: dict[str, Any], head: Head, splits: Splits, initial_epoch: int,
             progress: Progress | None) -> Run:
    """Create (or reopen) the run directory: config.yaml, metrics.json, history.csv's writer.

    Args:
        info: metrics.json's first contents (`describe_run`).
        initial_epoch: the epochs a resumed run has done; its history keeps their rows.
        progress: where history rows are shown as well, or None.
    """
    from dlrecap.train.callbacks import HistoryWriter, history_columns

    config = loaded.config
    path = cluster.run_dir(runs_dir, config.name or "run", resume)  # multi_worker: chief only
    clock = time.perf_counter()
    previous = runs.read_metrics(path) if resume is not None else {}
    runs.write_text(path / runs.CONFIG_FILE,
                    yaml.safe_dump(config.resolved(), sort_keys=False, allow_unicode=True))
    info["started_at"] = previous.get("started_at") or timestamp()
    if resume is not None:
        info["resumed_from_epoch"] = initial_epoch
    runs.write_json(path / runs.METRICS_FILE, info)
    with runs.atomic_path(path / ROWS_FILE) as tmp:  # eval scores the same rows, without splitting
        save_rows(splits, tmp)
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
