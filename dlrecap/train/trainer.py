"""Run one training job end to end and keep the run directory current throughout.

Order matters for "bad input loses nothing": the config and the data are checked before
the run directory exists, so an error there leaves nothing behind.
"""

from __future__ import annotations

import math
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

import dlrecap
from dlrecap import runs
from dlrecap.config.checks import check_task
from dlrecap.config.load import LoadedConfig
from dlrecap.config.schema import parse_expectation
from dlrecap.errors import ConfigError, TrainingError
from dlrecap.model import MAXIMIZED

_OPS = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b, "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    metrics: dict[str, Any]
    unmet: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def train(
    loaded: LoadedConfig,
    runs_dir: Path,
    *,
    device: str = "auto",
    deterministic: bool = False,
    progress: Any = None,
    on_warning: Any = None,
) -> TrainResult:
    """Train the config's model and write its run directory.

    Args:
        loaded: the validated config with its source marks.
        runs_dir: where the run directory is created.
        device: `auto`, `cpu` or `gpu`.
        deterministic: TensorFlow op determinism.
        progress: a `callbacks.Progress` that sees each epoch, or None.
        on_warning: called with each warning line, or None.

    Raises:
        ConfigError, DataError: bad input; nothing was written.
        TrainingError: training diverged; the run is marked `failed`.
    """
    from dlrecap.data import load_splits
    from dlrecap.model import plan_head

    config = loaded.config
    warn = on_warning or (lambda _line: None)
    splits = load_splits(config.data, config.seed)
    try:
        check_task(config, splits.task)
        head = plan_head(config, splits.task, splits.n_classes)
    except ConfigError as exc:
        raise loaded.locate(exc) from None

    from dlrecap.train.device import setup_tensorflow

    device_label = setup_tensorflow(device, deterministic, config.seed)
    from dlrecap.model import build_model, encode_targets, parameter_count
    from dlrecap.train import callbacks as cb
    from dlrecap.train.engines import pick_engine

    try:
        engine = pick_engine(config.training.engine, head, splits.x_train,
                             tensorboard=config.training.tensorboard)
    except ConfigError as exc:
        raise loaded.locate(exc) from None
    model = build_model(config, splits, head)
    has_val = len(splits.x_val) > 0
    monitor = config.training.early_stopping.monitor if config.training.early_stopping else "val_loss"
    if monitor.startswith("val_") and not has_val:
        warn(f"data.validation_split is 0, so {monitor} does not exist: "
             f"monitoring {monitor[4:]} (the training value) instead")
        monitor = monitor[4:]

    run_dir = runs.create_run_dir(runs_dir, config.name)
    started = datetime.now()
    clock = time.perf_counter()
    runs.write_text(run_dir / runs.CONFIG_FILE,
                    yaml.safe_dump(config.resolved(), sort_keys=False, allow_unicode=True))
    info: dict[str, Any] = {
        "name": config.name,
        "status": "running",
        "pid": os.getpid(),
        "started_at": started.isoformat(timespec="seconds"),
        "task": splits.task,
        "labels": splits.label_names,
        "features": splits.feature_names,
        "rows": {"train": len(splits.x_train), "validation": len(splits.x_val),
                 "test": len(splits.x_test)},
        "parameters": parameter_count(model),
        "monitor": monitor,
        "engine": engine.__name__.rsplit(".", 1)[-1].removesuffix("_engine"),
        "device": device_label,
        "seed": config.seed,
        "versions": _versions(),
    }
    runs.write_json(run_dir / runs.METRICS_FILE, info)

    encoded = {name: (x, encode_targets(y, head)) for name, (x, y) in
               (("train", splits.split("train")), ("validation", splits.split("validation")),
                ("test", splits.split("test")))}
    columns = cb.history_columns(head.metrics, has_val)
    writer = cb.HistoryWriter(run_dir / runs.HISTORY_FILE, columns, progress)
    guard = cb.FiniteLossGuard()
    callbacks: list[Any] = [guard, writer]
    stopper = None
    if config.training.early_stopping:
        es = config.training.early_stopping
        stopper = _keras_early_stopping(es, monitor)
        callbacks.append(stopper)
    if progress:
        progress.start(config.training.epochs, columns)
    try:
        fit_start = time.perf_counter()
        engine.fit(model, head, config, encoded["train"],
                   encoded["validation"] if has_val else None, callbacks)
        fit_s = time.perf_counter() - fit_start
    except TrainingError as exc:
        info.update(status="failed", error=exc.render(), epochs_run=len(writer.rows),
                    duration_s=round(time.perf_counter() - clock, 3))
        _save_model(model, run_dir)
        runs.write_json(run_dir / runs.METRICS_FILE, info)
        raise
    except KeyboardInterrupt:
        info.update(status="interrupted", epochs_run=len(writer.rows))
        _save_model(model, run_dir)
        runs.write_json(run_dir / runs.METRICS_FILE, info)
        raise
    except Exception:
        info.update(status="failed", error="internal error", epochs_run=len(writer.rows))
        (run_dir / "crash.log").write_text(traceback.format_exc(), encoding="utf-8")
        runs.write_json(run_dir / runs.METRICS_FILE, info)
        raise
    finally:
        if progress:
            progress.finish()

    rows = writer.rows
    if stopper is not None:
        best_epoch = stopper.best_epoch + 1
        stopped_early = stopper.stopped_epoch > 0
    else:
        best_epoch = _best_epoch(rows, monitor)
        stopped_early = False
    evaluate = engine.evaluator(model, head)
    results = {name: evaluate(*encoded[name]) if len(encoded[name][0]) else None
               for name in ("train", "validation", "test")}
    _save_model(model, run_dir)
    info.update(
        status="completed",
        epochs_run=len(rows),
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        duration_s=round(time.perf_counter() - clock, 3),
        fit_s=round(fit_s, 3),
        finished_at=datetime.now().isoformat(timespec="seconds"),
        **results,
    )
    runs.write_json(run_dir / runs.METRICS_FILE, info, durable=True)
    return TrainResult(run_dir, info, unmet_expectations(config.expect, info))


def _keras_early_stopping(es: Any, monitor: str) -> Any:
    import keras

    mode = "max" if monitor.removeprefix("val_") in MAXIMIZED else "min"
    return keras.callbacks.EarlyStopping(
        monitor=monitor, patience=es.patience, min_delta=es.min_delta, mode=mode,
        restore_best_weights=es.restore_best_weights,
    )


def _best_epoch(rows: list[dict[str, float]], monitor: str) -> int:
    values = [(r.get(monitor, math.nan), r["epoch"]) for r in rows]
    values = [(v, e) for v, e in values if math.isfinite(v)]
    if not values:
        return len(rows)
    pick = max if monitor.removeprefix("val_") in MAXIMIZED else min
    return int(pick(values, key=lambda t: t[0])[1])


def _save_model(model: Any, run_dir: Path) -> None:
    with runs.atomic_path(run_dir / runs.MODEL_FILE) as tmp:
        model.save(tmp)


def unmet_expectations(expect: dict[str, str], metrics: dict[str, Any]) -> list[str]:
    """Each `expect:` line the run's metrics do not meet, as a readable sentence."""
    unmet = []
    for key, text in expect.items():
        split, _, metric = key.partition("_")
        op, bound = parse_expectation(text)
        value = (metrics.get(split) or {}).get(metric)
        if value is None:
            unmet.append(f"{key} {text}: the run has no {split} {metric}")
        elif not _OPS[op](value, bound):
            unmet.append(f"{key} {text}: got {value:.4g}")
    return unmet


def _versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow as tf

    return {"dlrecap": dlrecap.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}
