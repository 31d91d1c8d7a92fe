"""One training run, read top to bottom: the steps of the lecture, each a small function.

`train` resolves the config, loads the data, prepares the device, picks the engine, builds
the model, opens the run directory, fits, evaluates, records and draws. Order matters for
"bad input loses nothing": the config and the data are checked before the run directory
exists, so an error there leaves nothing behind.

TensorFlow loads only once a step needs it (`prepare_device`), so that importing this
module stays cheap.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlrecap import runs
from dlrecap.config.checks import check_task
from dlrecap.config.load import LoadedConfig
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
from dlrecap.expect import unmet_expectations
from dlrecap.record import Run, describe_run, open_run, save_model, timestamp
from dlrecap.resume import check_resumable
from dlrecap.vocab import SPLITS, direction, effective_monitor, is_maximized

if TYPE_CHECKING:
    import keras

    from dlrecap.config.schema import Config
    from dlrecap.data import Splits
    from dlrecap.model import Head
    from dlrecap.train.callbacks import Progress
    from dlrecap.train.checkpoint import Checkpointer, ResumableEarlyStopping, StopRequest
    from dlrecap.train.distributed import Cluster
    from dlrecap.train.engines import Engine
    from dlrecap.train.health import HealthMonitor

Warn = Callable[[str], None]
# (x, y) per split, the targets encoded as the loss expects them.
Encoded = dict[str, tuple[Any, Any]]


@dataclass
class TrainResult:
    """What a finished run produced.

    Args:
        run_dir: the run directory.
        metrics: its metrics.json contents.
        unmet: each `expect:` line the run did not meet, as a sentence.
    """

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
    progress: Progress | None = None,
    on_warning: Warn | None = None,
) -> TrainResult:
    """Train the config's model and write its run directory.

    Args:
        loaded: the validated config with its source marks.
        runs_dir: where the run directory is created.
        resume: an interrupted run directory to continue, or None for a new run.
        device: `auto`, `cpu` or `gpu`.
        deterministic: TensorFlow op determinism.
        progress: a `Progress` that sees each epoch, or None.
        on_warning: called with each warning line, or None.

    Raises:
        ConfigError, DataError, RunError: bad input; nothing was written.
        TrainingError: training diverged; the run is marked `failed`.
        Interrupted: SIGINT/SIGTERM; the run is marked `interrupted` and can be resumed.
    """
    warn = on_warning or _ignore
    config = resolve_config(loaded, resume)
    splits, head = load_data(loaded)
    device_label, cluster = prepare_device(loaded, runs_dir, device, deterministic, warn)
    engine = pick_engine(loaded, head, splits, cluster)
    model = build_model(config, splits, head, engine, cluster)
    state, best_weights = restore_checkpoint(model, resume)
    initial_epoch = state["epochs_done"]
    monitor = choose_monitor(config, splits, warn)

    info = describe_run(config, splits, model, monitor, engine, device_label, cluster)
    run = open_run(loaded, runs_dir, resume, cluster, info, head, splits, initial_epoch, progress)
    encoded = encode(splits, head)
    hooks = make_callbacks(config, run, head, encoded, monitor, state, best_weights, cluster, warn)
    fit_s = fit(loaded, run, engine, model, head, encoded, hooks, initial_epoch)

    results = evaluate(engine, model, head, encoded)
    save_model(model, run.path)
    # Recorded before the pictures are drawn: the learning curves mark the best epoch from it.
    run.record("completed", **best_epoch(run.history.rows, monitor, hooks.stopper),
               fit_s=round(fit_s, 3), finished_at=timestamp(),
               warnings=hooks.health.warnings if hooks.health else [], **results)
    _remove_checkpoints(run.path)
    draw(run.path, model, splits, head, warn)
    cluster.finish()
    return TrainResult(run.path, run.info, unmet_expectations(config.expect, run.info))


# --- before the run directory exists: bad input leaves nothing behind -------------------


def resolve_config(loaded: LoadedConfig, resume: Path | None) -> Config:
    """The config to train; a resumed run must be resumable and keep its model and data."""
    if resume is not None:
        check_resumable(resume, loaded)
    return loaded.config


@contextlib.contextmanager
def _located(loaded: LoadedConfig) -> Iterator[None]:
    """A ConfigError raised within names the file, line and column of the key at fault."""
    try:
        yield
    except ConfigError as exc:
        raise loaded.locate(exc) from None


def load_data(loaded: LoadedConfig) -> tuple[Splits, Head]:
    """The config's data, split, and the output head its task calls for."""
    from dlrecap.data import load_splits
    from dlrecap.model import plan_head

    config = loaded.config
    with _located(loaded):
        splits = load_splits(config.data, config.seed)
        check_task(config, splits.task)
        return splits, plan_head(config, splits.task, splits.n_classes)


def prepare_device(loaded: LoadedConfig, runs_dir: Path, device: str, deterministic: bool,
                   warn: Warn) -> tuple[str, Cluster]:
    """Set up TensorFlow, the distribution strategy and the precision; return the device label.

    The strategy must exist before any variable does, so this comes before the model.
    """
    from dlrecap.train.device import set_precision, setup_tensorflow

    config = loaded.config
    # First: it loads TensorFlow with its start-up noise hidden, before any module imports it.
    device_label = setup_tensorflow(device, deterministic, config.seed)
    from dlrecap.train.distributed import make_cluster

    on_gpu = device_label.startswith("gpu")
    if deterministic and on_gpu:
        warn("--deterministic: GPU ops use deterministic kernels, which are slower; "
             "leave it off when bit-identical GPU runs are not needed")
    with _located(loaded):
        cluster = make_cluster(config.training.distribute, runs_dir, config)
    if note := set_precision(config.training.precision, on_gpu):
        warn(note)
    return device_label, cluster


def pick_engine(loaded: LoadedConfig, head: Head, splits: Splits, cluster: Cluster) -> Engine:
    """The engine `training.engine` asks for, or the fastest one that can train this job."""
    from dlrecap.train import engines

    training = loaded.config.training
    with _located(loaded):
        return engines.pick_engine(training.engine, head, splits.x_train,
                                   tensorboard=training.tensorboard, distribute=cluster.mode)


def build_model(config: Config, splits: Splits, head: Head, engine: Engine,
                cluster: Cluster) -> keras.Model:
    """The compiled model, its variables on the strategy's devices."""
    from dlrecap import model as builder

    with cluster.scope():
        model = builder.build_model(config, splits, head)
        engine.compile(model, head, config, n_rows(splits.x_train))
    return model


def restore_checkpoint(model: keras.Model, resume: Path | None) -> tuple[dict[str, Any], Any]:
    """Load a resumed run's last checkpoint into `model`.

    Returns:
        The checkpoint's state (`epochs_done`, `early_stopping`; zero and None when there is
        none) and the best weights early stopping kept, or None.
    """
    from dlrecap.train import checkpoint as ckpt

    path = ckpt.latest_checkpoint(resume) if resume is not None else None
    if path is None:
        return {"epochs_done": 0, "early_stopping": None}, None
    return ckpt.restore(model, path)


def choose_monitor(config: Config, splits: Splits, warn: Warn) -> str:
    """What early stopping and the best epoch watch: `val_x` falls back to `x` without validation rows."""
    es = config.training.early_stopping
    monitor = es.monitor if es else "val_loss"
    fallback = effective_monitor(monitor, n_rows(splits.x_val) > 0)
    if fallback != monitor:
        warn(f"data.validation_split is 0, so {monitor} does not exist: "
             f"monitoring {fallback} (the training value) instead")
    return fallback


def encode(splits: Splits, head: Head) -> Encoded:
    """(x, y) per split, the targets as the loss expects them (one-hot, class indices, ...)."""
    from dlrecap.model import encode_targets

    return {name: (x, encode_targets(y, head)) for name, (x, y) in
            ((s, splits.split(s)) for s in SPLITS)}


# --- training ----------------------------------------------------------------------------


@dataclass
class Callbacks:
    """The callbacks of one `fit`, and those the steps after it ask about."""

    all: list[Any]
    stop: StopRequest
    checkpointer: Checkpointer
    stopper: ResumableEarlyStopping | None = None
    health: HealthMonitor | None = None


def make_callbacks(config: Config, run: Run, head: Head, encoded: Encoded, monitor: str,
                   state: dict[str, Any], best_weights: Any, cluster: Cluster,
                   warn: Warn) -> Callbacks:
    """NaN guard, history, early stopping, checkpoints, health and TensorBoard, in that order."""
    from dlrecap.train import callbacks as cb
    from dlrecap.train import checkpoint as ckpt

    es = config.training.early_stopping
    stopper = None
    if es:
        stopper = ckpt.ResumableEarlyStopping(
            monitor=monitor, patience=es.patience, min_delta=es.min_delta,
            mode=direction(monitor), restore_best_weights=es.restore_best_weights,
            initial_state=state["early_stopping"], best_weights=best_weights,
        )
    stop = ckpt.StopRequest()
    checkpointer = ckpt.Checkpointer(run.path, stopper, stop)
    # Order matters: the guard sees a NaN first; early stopping decides before the checkpoint.
    hooks: list[Any] = [cb.FiniteLossGuard(), run.history, *([stopper] if stopper else []),
                        checkpointer]
    hooks += cluster.callbacks(run.path, run.history, stopper)  # multi_worker: restart backup
    health = health_monitor(config, run.path, encoded, head, warn,
                            resumed=state["epochs_done"] > 0)
    hooks.append(health)
    if config.training.tensorboard:
        import keras

        hooks.append(keras.callbacks.TensorBoard(log_dir=str(run.path / "tensorboard")))
    return Callbacks(hooks, stop, checkpointer, stopper, health)


def health_monitor(config: Config, run_dir: Path, encoded: Encoded, head: Head, warn: Warn,
                   resumed: bool) -> HealthMonitor:
    """Dead/saturated units and gradient norms per layer, on a sample of validation rows."""
    from dlrecap.train.health import HealthMonitor

    x, y = encoded["validation"] if n_rows(encoded["validation"][0]) else encoded["train"]
    # About 20 probes per run: enough to see a layer die, cheap next to fast-engine epochs.
    every = max(1, config.training.epochs // 20)
    return HealthMonitor(x, run_dir / runs.DIAGNOSTICS_FILE, y_sample=y, loss_fn=head.loss,
                         every=every, on_warning=warn, seed=config.seed, append=resumed)


def fit(loaded: LoadedConfig, run: Run, engine: Engine, model: keras.Model, head: Head,
        encoded: Encoded, hooks: Callbacks, initial_epoch: int) -> float:
    """Train from `initial_epoch`; return the seconds it took.

    Raises:
        TrainingError, Interrupted, RunError, InternalError: as `recording_failures` says;
            Interrupted also after a first SIGINT/SIGTERM, once the epoch is saved.
    """
    config, progress = loaded.config, run.history.progress
    validation = encoded["validation"] if n_rows(encoded["validation"][0]) else None
    if progress:
        progress.start(config.training.epochs, run.history.columns)
        for row in run.history.rows:
            progress.epoch(int(row["epoch"]), row)
    start = time.perf_counter()
    with recording_failures(loaded, run, model, hooks.checkpointer):
        with hooks.stop.catching_signals():
            engine.fit(model, head, config, encoded["train"], validation, hooks.all,
                       initial_epoch)
    if hooks.stop.requested:
        run.record("interrupted")
        raise Interrupted(_interrupted(loaded, run.path, hooks.checkpointer.saved_epoch))
    return time.perf_counter() - start


@contextlib.contextmanager
def recording_failures(loaded: LoadedConfig, run: Run, model: keras.Model,
                       checkpointer: Checkpointer) -> Iterator[None]:
    """Record how training ended in metrics.json, and turn it into the error the user sees.

    Raises:
        TrainingError: training diverged (the model is kept, for a look).
        Interrupted: a second Ctrl-C, or a progress display that asked to stop.
        RunError: the run directory cannot be written (disk full, permissions).
        InternalError: anything else, a bug; its traceback goes to crash.log.
    """
    try:
        yield
    except TrainingError as exc:
        save_model(model, run.path)
        run.record("failed", error=exc.render())
        raise
    except KeyboardInterrupt:
        run.record("interrupted")
        raise Interrupted(_interrupted(loaded, run.path, checkpointer.saved_epoch)) from None
    except OSError as exc:
        # Disk full, permissions changed, runs directory removed: the user's to fix.
        with contextlib.suppress(OSError):  # the disk may still be full
            run.record("failed", error=f"cannot write the run: {exc.strerror or exc}")
        raise RunError(f"cannot write to {run.path}: {exc.strerror or exc}",
                       fix="free disk space or check permissions, then --resume") from None
    except Exception as exc:
        log = write_crash_log(run.path / "crash.log", exc)
        run.record("failed", error=f"internal error: {type(exc).__name__}")
        raise InternalError(f"internal error during training: {type(exc).__name__}: {first_line(exc)}",
                            fix=f"traceback in {log}" if log else None) from exc
    finally:
        if run.history.progress:
            run.history.progress.finish()


def _interrupted(loaded: LoadedConfig, run_dir: Path, saved_epoch: int) -> str:
    return (f"interrupted after epoch {saved_epoch}; continue with: "
            f"dlrecap train {loaded.source} --resume {run_dir}")


# --- after training ----------------------------------------------------------------------


def evaluate(engine: Engine, model: keras.Model, head: Head,
             encoded: Encoded) -> dict[str, dict[str, float] | None]:
    """Loss and metrics on each split (None for a split without rows)."""
    score = engine.evaluator(model, head)
    return {name: score(*encoded[name]) if n_rows(encoded[name][0]) else None for name in SPLITS}


def best_epoch(rows: list[dict[str, float]], monitor: str,
               stopper: ResumableEarlyStopping | None) -> dict[str, Any]:
    """`best_epoch` and `stopped_early`: early stopping's verdict, else the best `monitor` row."""
    if stopper is not None:
        return {"best_epoch": stopper.best_epoch + 1, "stopped_early": stopper.stopped_epoch > 0}
    values = [(r.get(monitor, math.nan), r["epoch"]) for r in rows]
    values = [(v, e) for v, e in values if math.isfinite(v)]
    if not values:
        return {"best_epoch": len(rows), "stopped_early": False}
    pick = max if is_maximized(monitor) else min
    return {"best_epoch": int(pick(values, key=lambda t: t[0])[1]), "stopped_early": False}


def _remove_checkpoints(run_dir: Path) -> None:
    from dlrecap.train.checkpoint import remove_checkpoints

    remove_checkpoints(run_dir)


def draw(run_dir: Path, model: keras.Model, splits: Splits, head: Head, warn: Warn) -> None:
    """The run's pictures; a plotting failure must not fail a finished run."""
    from dlrecap.plots import draw_run

    try:
        draw_run(run_dir, model=model, splits=splits, head=head)
    except Exception as exc:  # noqa: BLE001 - pictures are a convenience; say why and go on
        warn(f"could not draw the run's pictures ({type(exc).__name__}: {exc}); "
             f"try again with: dlrecap plot {run_dir}")


def _ignore(_line: str) -> None:
    pass
