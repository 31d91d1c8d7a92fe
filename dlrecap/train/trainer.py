"""Run one training job end to end and keep the run directory current throughout.

Order matters for "bad input loses nothing": the config and the data are checked before
the run directory exists, so an error there leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

import dlrecap
from dlrecap import runs
from dlrecap.config.checks import check_task
from dlrecap.config.load import LoadedConfig, load_config
from dlrecap.config.schema import parse_expectation
from dlrecap.data.split import n_rows
from dlrecap.errors import (
    ConfigError,
    InternalError,
    Interrupted,
    RunError,
    TrainingError,
    first_line,
    write_crash_log,
)
from dlrecap.vocab import SPLITS, direction, effective_monitor, is_maximized

_OPS = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b, "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}
# Sections that fix the model's shape and data: a resumed run must keep them.
_RESUME_FIXED = ("seed", "data", "model")


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    metrics: dict[str, Any]
    unmet: list[str] = field(default_factory=list)


def train(
    loaded: LoadedConfig,
    runs_dir: Path,
    *,
    resume: Path | None = None,
    device: str = "auto",
    deterministic: bool = False,
    progress: Any = None,
    on_warning: Any = None,
) -> TrainResult:
    """Train the config's model and write its run directory.

    Args:
        loaded: the validated config with its source marks.
        runs_dir: where the run directory is created.
        resume: an interrupted run directory to continue, or None for a new run.
        device: `auto`, `cpu` or `gpu`.
        deterministic: TensorFlow op determinism.
        progress: a `callbacks.Progress` that sees each epoch, or None.
        on_warning: called with each warning line, or None.

    Raises:
        ConfigError, DataError, RunError: bad input; nothing was written.
        TrainingError: training diverged; the run is marked `failed`.
        Interrupted: SIGINT/SIGTERM; the run is marked `interrupted` and can be resumed.
    """
    from dlrecap.data import load_splits
    from dlrecap.model import plan_head

    config = loaded.config
    warn = on_warning or (lambda _line: None)
    if resume is not None:
        _check_resumable(resume, loaded)
    try:
        splits = load_splits(config.data, config.seed)
        check_task(config, splits.task)
        head = plan_head(config, splits.task, splits.n_classes)
    except ConfigError as exc:
        raise loaded.locate(exc) from None

    from dlrecap.train.device import setup_tensorflow

    device_label = setup_tensorflow(device, deterministic, config.seed)
    if deterministic and device_label.startswith("gpu"):
        warn("--deterministic: GPU ops use deterministic kernels, which are slower; "
             "leave it off when bit-identical GPU runs are not needed")
    # --- distribution and precision: the strategy must exist before any variable does ---
    from dlrecap.train import distributed
    from dlrecap.train.device import set_precision

    try:
        cluster = distributed.make_cluster(config.training.distribute, runs_dir, config)
    except ConfigError as exc:
        raise loaded.locate(exc) from None
    if note := set_precision(config.training.precision, device_label.startswith("gpu")):
        warn(note)
    # --- end distribution and precision ---
    from dlrecap.model import build_model, encode_targets, parameter_count
    from dlrecap.train import callbacks as cb
    from dlrecap.train import checkpoint as ckpt
    from dlrecap.train.engines import pick_engine

    try:
        engine = pick_engine(config.training.engine, head, splits.x_train,
                             tensorboard=config.training.tensorboard,
                             distribute=cluster.mode)
    except ConfigError as exc:
        raise loaded.locate(exc) from None
    with cluster.scope():  # model and optimizer variables live on the strategy's devices
        model = build_model(config, splits, head)
        engine.compile_model(model, head, config, n_rows(splits.x_train))
    saved_state, best_weights = {"epochs_done": 0, "early_stopping": None}, None
    checkpoint_path = ckpt.latest_checkpoint(resume) if resume is not None else None
    if checkpoint_path is not None:
        saved_state, best_weights = ckpt.restore(model, checkpoint_path)
    initial_epoch = saved_state["epochs_done"]

    has_val = n_rows(splits.x_val) > 0
    es = config.training.early_stopping
    monitor = es.monitor if es else "val_loss"
    if (fallback := effective_monitor(monitor, has_val)) != monitor:
        warn(f"data.validation_split is 0, so {monitor} does not exist: "
             f"monitoring {fallback} (the training value) instead")
        monitor = fallback

    run_dir = cluster.run_dir(runs_dir, config.name, resume)  # multi_worker: chief only
    clock = time.perf_counter()
    previous = runs.read_metrics(run_dir) if resume is not None else {}
    runs.write_text(run_dir / runs.CONFIG_FILE,
                    yaml.safe_dump(config.resolved(), sort_keys=False, allow_unicode=True))
    info: dict[str, Any] = {
        "name": config.name,
        "status": "running",
        "pid": os.getpid(),
        "started_at": previous.get("started_at") or datetime.now().isoformat(timespec="seconds"),
        "task": splits.task,
        "labels": splits.label_names,
        "features": splits.feature_names,
        "rows": {"train": n_rows(splits.x_train), "validation": n_rows(splits.x_val),
                 "test": n_rows(splits.x_test)},
        "parameters": parameter_count(model),
        "monitor": monitor,
        "engine": engine.__name__.rsplit(".", 1)[-1].removesuffix("_engine"),
        "device": device_label,
        "distribute": cluster.label,
        "seed": config.seed,
        "versions": _versions(),
    }
    if resume is not None:
        info["resumed_from_epoch"] = initial_epoch
    runs.write_json(run_dir / runs.METRICS_FILE, info)

    encoded = {name: (x, encode_targets(y, head)) for name, (x, y) in
               ((s, splits.split(s)) for s in SPLITS)}
    columns = cb.history_columns(head.metrics, has_val)
    writer = cb.HistoryWriter(run_dir / runs.HISTORY_FILE, columns, progress)
    writer.rows = cb.read_history(run_dir / runs.HISTORY_FILE)[:initial_epoch]
    stopper = None
    if es:
        stopper = ckpt.ResumableEarlyStopping(
            monitor=monitor, patience=es.patience, min_delta=es.min_delta,
            mode=direction(monitor),
            restore_best_weights=es.restore_best_weights,
            initial_state=saved_state["early_stopping"], best_weights=best_weights,
        )
    stop = ckpt.StopRequest()
    checkpointer = ckpt.Checkpointer(run_dir, stopper, stop)
    # Order matters: the guard sees a NaN first; early stopping decides before the checkpoint.
    callbacks: list[Any] = [cb.FiniteLossGuard(), writer, *([stopper] if stopper else []),
                            checkpointer]
    callbacks += cluster.callbacks(run_dir, writer, stopper)  # multi_worker: restart backup
    health = _health_monitor(config, run_dir, encoded, head, warn, resumed=initial_epoch > 0)
    callbacks += [health] if health else []
    if config.training.tensorboard:
        import keras

        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")))
    if progress:
        progress.start(config.training.epochs, columns)
        for row in writer.rows:
            progress.epoch(int(row["epoch"]), row)

    def record(status: str, **extra: Any) -> None:
        info.update(status=status, epochs_run=len(writer.rows),
                    duration_s=round(previous.get("duration_s", 0) + time.perf_counter() - clock, 3),
                    **extra)
        runs.write_json(run_dir / runs.METRICS_FILE, info, durable=True)

    fit_start = time.perf_counter()
    try:
        with stop.catching_signals():
            engine.fit(model, head, config, encoded["train"],
                       encoded["validation"] if has_val else None, callbacks, initial_epoch)
    except TrainingError as exc:
        _save_model(model, run_dir)
        record("failed", error=exc.render())
        raise
    except KeyboardInterrupt:
        record("interrupted")
        raise Interrupted(_interrupted_message(loaded, run_dir, checkpointer.saved_epoch)) from None
    except OSError as exc:
        # Disk full, permissions changed, runs directory removed: the user's to fix.
        with contextlib.suppress(OSError):  # the disk may still be full
            record("failed", error=f"cannot write the run: {exc.strerror or exc}")
        raise RunError(f"cannot write to {run_dir}: {exc.strerror or exc}",
                       fix="free disk space or check permissions, then --resume") from None
    except Exception as exc:
        log = write_crash_log(run_dir / "crash.log", exc)
        record("failed", error=f"internal error: {type(exc).__name__}")
        raise InternalError(f"internal error during training: {type(exc).__name__}: {first_line(exc)}",
                            fix=f"traceback in {log}" if log else None) from exc
    finally:
        if progress:
            progress.finish()
    fit_s = time.perf_counter() - fit_start

    if stop.requested:
        record("interrupted")
        raise Interrupted(_interrupted_message(loaded, run_dir, checkpointer.saved_epoch))

    rows = writer.rows
    if stopper is not None:
        best_epoch = stopper.best_epoch + 1
        stopped_early = stopper.stopped_epoch > 0
    else:
        best_epoch = _best_epoch(rows, monitor)
        stopped_early = False
    evaluate = engine.evaluator(model, head)
    results = {name: evaluate(*encoded[name]) if n_rows(encoded[name][0]) else None
               for name in SPLITS}
    _save_model(model, run_dir)
    record("completed", best_epoch=best_epoch, stopped_early=stopped_early,
           fit_s=round(fit_s, 3), finished_at=datetime.now().isoformat(timespec="seconds"),
           warnings=health.warnings if health else [], **results)
    ckpt.remove_checkpoints(run_dir)
    _draw_pictures(run_dir, model, splits, head, warn)
    cluster.finish()
    return TrainResult(run_dir, info, unmet_expectations(config.expect, info))


def _health_monitor(config: Any, run_dir: Path, encoded: dict[str, Any], head: Any, warn: Any,
                    resumed: bool) -> Any:
    """Dead/saturated units and gradient norms per layer, on a sample of validation rows."""
    from dlrecap.diagnostics import HealthMonitor

    x, y = encoded["validation"] if n_rows(encoded["validation"][0]) else encoded["train"]
    if isinstance(x, dict):  # a model with text columns is not a plain Dense stack to probe
        return None
    # About 20 probes per run: enough to see a layer die, cheap next to fast-engine epochs.
    every = max(1, config.training.epochs // 20)
    return HealthMonitor(x, run_dir / "diagnostics.csv", y_sample=y, loss_fn=head.loss,
                         every=every, on_warning=warn, seed=config.seed, append=resumed)


def _draw_pictures(run_dir: Path, model: Any, splits: Any, head: Any, warn: Any) -> None:
    """The run's plots; a plotting failure must not fail a finished run."""
    from dlrecap.plots import draw_run

    try:
        draw_run(run_dir, model=model, splits=splits, head=head)
    except Exception as exc:  # noqa: BLE001 - pictures are a convenience; say why and go on
        warn(f"could not draw the run's pictures ({type(exc).__name__}: {exc}); "
             f"try again with: dlrecap plot {run_dir}")


def _check_resumable(run_dir: Path, loaded: LoadedConfig) -> None:
    """Refuse to resume a run that is not interrupted or whose model/data would change."""
    metrics = runs.read_metrics(run_dir)
    status = metrics.get("status")
    if status == "completed":
        raise RunError(f"{run_dir} already completed; nothing to resume",
                       fix="train without --resume for a new run")
    if status == "running" and runs.process_alive(metrics.get("pid")):
        raise RunError(f"{run_dir} is still being trained by process {metrics.get('pid')}")
    before = load_config(run_dir / runs.CONFIG_FILE).config.resolved()
    now = loaded.config.resolved()
    for section in _RESUME_FIXED:
        difference = _first_difference(before.get(section), now.get(section), section)
        if difference:
            raise loaded.locate(ConfigError(
                f"differs from the run being resumed ({difference}): resuming needs the same "
                "model shape and data", key=difference.split(":")[0],
                fix=f"use the run's own config, {run_dir / runs.CONFIG_FILE}",
            ))


def _first_difference(a: Any, b: Any, key: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(k), b.get(k), f"{key}.{k}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{key}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{key}: {a!r} -> {b!r}"


def _interrupted_message(loaded: LoadedConfig, run_dir: Path, saved_epoch: int) -> str:
    return (f"interrupted after epoch {saved_epoch}; continue with: "
            f"dlrecap train {loaded.source} --resume {run_dir}")


def _best_epoch(rows: list[dict[str, float]], monitor: str) -> int:
    values = [(r.get(monitor, math.nan), r["epoch"]) for r in rows]
    values = [(v, e) for v, e in values if math.isfinite(v)]
    if not values:
        return len(rows)
    pick = max if is_maximized(monitor) else min
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
