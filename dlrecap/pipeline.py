"""One training run, read top to bottom: the steps of the lecture, each a small function.

`train` locks a resumed run, loads the data, prepares the device, picks the engine, builds
the model, opens (and locks) the run directory, fits, evaluates, records and draws. Order
matters for "bad input loses nothing": the config and the data are checked before the run
directory exists, so an error there leaves nothing behind.

Faults end in the contract's exit codes with the run's status consistent: a stop signal
before training starts leaves nothing (`starting`); once the run directory exists,
`recording_failures` records how it ended: `interrupted` after a signal or a write that
failed (disk full, permissions), both resumable; `failed` after a divergence or a bug.

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

from dlrecap.config.checks import check_task
from dlrecap.config.load import LoadedConfig
from dlrecap.data.split import n_rows
from dlrecap.errors import (
    ConfigError,
    Interrupted,
)
from dlrecap.expect import check_expectations, unmet_lines
from dlrecap.hooks import Callbacks, Encoded, Warn, make_callbacks, weights_epoch
from dlrecap.record import (
    Run,
    describe_run,
    interrupted_message,
    open_run,
    recording_failures,
    run_directory,
    save_model,
    timestamp,
)
from dlrecap.resume import resuming
from dlrecap.signals import pause_point
from dlrecap.vocab import SPLITS, effective_monitor, is_maximized

if TYPE_CHECKING:
    import keras

    from dlrecap.config.schema import Config
    from dlrecap.data import Splits
    from dlrecap.data.split import Rows
    from dlrecap.model import Head, TargetScale
    from dlrecap.train.callbacks import Progress
    from dlrecap.train.checkpoint import ResumableEarlyStopping
    from dlrecap.train.distributed import Cluster
    from dlrecap.train.engines import Engine



@dataclass
class TrainResult:
    """What a finished run produced.

    Args:
        run_dir: the run directory.
        metrics: its metrics.json contents.
        unmet: each `expect:` line the run did not meet, as a sentence.
        splits: the run's data, for the pictures `draw_inside` draws after the result.
    """

    run_dir: Path
    metrics: dict[str, Any]
    unmet: list[str] = field(default_factory=list)
    splits: Splits | None = field(default=None, repr=False)


def train(
    loaded: LoadedConfig, runs_dir: Path, *,
    resume: Path | None = None,
    device: str = "auto", deterministic: bool = False,
    progress: Progress | None = None, on_warning: Warn | None = None,
    on_result: Callable[[TrainResult], None] | None = None,
    rows: Rows | None = None,
    pictures: Callable[[Path], None] | None = None,
) -> TrainResult:
    """Train the config's model and write its run directory, holding its lock (`runs.locked`).

    Args:
        loaded: the validated config with its source marks.
        runs_dir: where the run directory is created.
        resume: an interrupted run directory to continue, or None for a new run.
        device: `auto`, `cpu` or `gpu`.
        deterministic: TensorFlow op determinism.
        progress: a `Progress` that sees each epoch, or None.
        on_warning, on_result: called with each warning line; with the result, before the
            pictures (`finish`). Or None.
        rows: row numbers per split instead of the seeded split (`dlrecap cv`'s folds).
        pictures: has another process draw the pictures and complete the run (`finish`).

    Raises:
        ConfigError, DataError, RunError: bad input; nothing was written. RunError also
            when the run is in use, or its folder cannot be written (the run can be resumed).
        TrainingError: training diverged; the run is marked `failed`.
        Interrupted: SIGINT/SIGTERM; the run is marked `interrupted` and can be resumed.
    """
    warn = on_warning or _ignore
    config = loaded.config
    with contextlib.ExitStack() as held:  # the run lock, and what must end with it
        with starting():
            pause_point("startup")
            if resume is not None:
                held.enter_context(resuming(resume, loaded))  # before anything is read or written
            splits, head = load_data(loaded, saved_rows(resume) if resume else rows, warn)
            scale = scale_target(config, splits)
            device_label, cluster = prepare_device(loaded, runs_dir, device, deterministic, warn)
            engine = pick_engine(loaded, head, splits, cluster, device_label)
            model = build_model(config, splits, head, engine, cluster, warm=resume is None)
            kept = output_model(model, scale, cluster)  # what model.keras holds: target units
            state, best_weights = restore_checkpoint(model, resume)
            monitor = choose_monitor(config, splits, warn)
            info = describe_run(config, splits, model, monitor, engine, device_label, cluster, scale)
            path = held.enter_context(run_directory(loaded, runs_dir, resume, cluster))
            run = open_run(path, resume, info, head, splits, state["epochs_done"], progress)
            encoded = encode(splits, head, scale)
            hooks = make_callbacks(config, run, head, encoded, monitor, state, best_weights,
                                   cluster, warn, scale, splits)
        with recording_failures(loaded, run, kept, hooks.checkpointer):
            run.begin(config, splits)
            fit_s = fit(loaded, run, engine, model, head, encoded, hooks, state["epochs_done"])
            # Scored in the target's own units, as the saved model answers.
            scored = encode(splits, head) if scale else encoded
            result = conclude(run, config, engine, kept, splits, head, scored, hooks, monitor,
                              fit_s, warn)
            finish(run, kept, splits, head, warn, result, on_result, pictures)
        cluster.finish()
        return result


# --- before the run directory exists: bad input leaves nothing behind -------------------


@contextlib.contextmanager
def starting() -> Iterator[None]:
    """Before training starts, a stop signal ends the run with nothing written (exit 130).

    A new run directory made meanwhile recorded nothing, so `run_directory` removes it.
    """
    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted("interrupted before training started; nothing was written") from None


@contextlib.contextmanager
def _located(loaded: LoadedConfig) -> Iterator[None]:
    """A ConfigError raised within names the file, line and column of the key at fault."""
    try:
        yield
    except ConfigError as exc:
        raise loaded.locate(exc) from None


def saved_rows(run_dir: Path) -> Rows | None:
    """A run's own row numbers per split (its splits.npz), or None."""
    from dlrecap.data.split import ROWS_FILE, load_rows

    return load_rows(run_dir / ROWS_FILE)


def load_data(loaded: LoadedConfig, rows: Rows | None = None,
              warn: Warn | None = None) -> tuple[Splits, Head]:
    """The config's data, split (or cut into the given `rows`), and the output head its task calls for.

    The network's size is checked here too, before TensorFlow loads: one too large for the
    memory there is is refused (a ConfigError at `model.layers`) instead of being built.
    What the data holds that a learner should know (`data.notes`) goes to `warn`.
    """
    from dlrecap.data import load_splits
    from dlrecap.data.notes import warn_about_data
    from dlrecap.model import check_memory, input_width, plan_head, weigh_classes, weight_count

    config = loaded.config
    with _located(loaded):
        splits = load_splits(config.data, config.seed, rows=rows)
        check_task(config, splits.task, splits.label_names)
        head = weigh_classes(plan_head(config, splits.task, splits.n_classes), config,
                             splits.y_train, splits.label_names)
        check_memory(weight_count(config, input_width(splits), head))
    if warn is not None:
        warn_about_data(loaded, splits, warn)
    pause_point("data")
    return splits, head


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


def pick_engine(loaded: LoadedConfig, head: Head, splits: Splits, cluster: Cluster,
                device_label: str = "cpu") -> Engine:
    """The engine `training.engine` asks for, or the fastest one that can train this job."""
    from dlrecap.train import engines

    training = loaded.config.training
    with _located(loaded):
        return engines.pick_engine(training.engine, head, splits.x_train,
                                   tensorboard=training.tensorboard, distribute=cluster.mode,
                                   config=loaded.config, on_gpu=device_label.startswith("gpu"))


def build_model(config: Config, splits: Splits, head: Head, engine: Engine,
                cluster: Cluster, warm: bool = False) -> keras.Model:
    """The compiled model, its variables on the strategy's devices.

    With `warm` (a new run) in a process that trains many (`train.warm.ENABLED`), the fast
    engine trains in the model kept from an earlier run of the same shape, which takes this
    one's fresh state, so its compiled functions are reused.
    """
    from dlrecap import model as builder
    from dlrecap.train import warm as kept

    with cluster.scope():
        model = builder.build_model(config, splits, head)
        engine.compile(model, head, config, n_rows(splits.x_train))
    if warm and kept.ENABLED and engine.name == "fast" and cluster.mode == "none":
        return kept.adopt(model, kept.shape_key(config, splits, head))
    return model


def scale_target(config: Config, splits: Splits) -> TargetScale | None:
    """The regression target's training mean and std when it is standardized, else None."""
    from dlrecap.model import target_scale

    return target_scale(config, splits)


def output_model(model: keras.Model, scale: TargetScale | None, cluster: Cluster) -> keras.Model:
    """The model that answers in the target's units: `model` itself, or `model` + a rescaling."""
    from dlrecap.model import in_target_units

    with cluster.scope():
        return in_target_units(model, scale)


def restore_checkpoint(model: keras.Model, resume: Path | None) -> tuple[dict[str, Any], Any]:
    """Load a resumed run's last checkpoint into `model`.

    Returns:
        The checkpoint's state (`epochs_done`, `early_stopping`; zero and None when there is
        none) and the best weights early stopping kept, or None.
    """
    from dlrecap.train import checkpoint as ckpt

    path = ckpt.latest_checkpoint(resume) if resume is not None else None
    if path is None:
        return {"epochs_done": 0, "early_stopping": None, "lr_schedule": None}, None
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


def encode(splits: Splits, head: Head, scale: TargetScale | None = None) -> Encoded:
    """(x, y) per split, the targets as the loss expects them (one-hot, class indices, ...).

    With a `scale`, regression targets are standardized as the network trains on them.
    """
    from dlrecap.model import encode_targets

    return {name: (x, encode_targets(y, head, scale)) for name, (x, y) in
            ((s, splits.split(s)) for s in SPLITS)}


# --- training ----------------------------------------------------------------------------


def fit(loaded: LoadedConfig, run: Run, engine: Engine, model: keras.Model, head: Head,
        encoded: Encoded, hooks: Callbacks, initial_epoch: int) -> float:
    """Train from `initial_epoch`; return the seconds it took.

    Raises:
        Interrupted: after a first SIGINT/SIGTERM, once the epoch is saved.
    """
    config, progress = loaded.config, run.history.progress
    validation = encoded["validation"] if n_rows(encoded["validation"][0]) else None
    if progress:  # a resumed run's earlier epochs are announced, not shown again
        progress.start(config.training.epochs, run.history.columns, done=initial_epoch)
    start = time.perf_counter()
    try:
        with hooks.stop.catching_signals():
            if hooks.stopper is not None and hooks.stopper.stopped_before():
                end_without_epochs(model, hooks.all)
            else:
                engine.fit(model, head, config, encoded["train"], validation, hooks.all,
                           initial_epoch)
    finally:
        if progress:
            progress.finish()
    if hooks.stop.requested:
        run.record("interrupted")
        raise Interrupted(interrupted_message(loaded, run, hooks.checkpointer.saved_epoch))
    return time.perf_counter() - start


def end_without_epochs(model: keras.Model, callbacks: list[Any]) -> None:
    """Begin and end training with no epoch: for a run that early stopping had already ended.

    The callbacks end it as after its last epoch: early stopping puts the best weights back,
    the boundary frames draw the weights kept.
    """
    import keras

    hooks = keras.callbacks.CallbackList(callbacks, model=model)
    hooks.on_train_begin()
    hooks.on_train_end()


# --- after training ----------------------------------------------------------------------


def conclude(run: Run, config: Config, engine: Engine, model: keras.Model, splits: Splits,
             head: Head, encoded: Encoded, hooks: Callbacks, monitor: str, fit_s: float,
             warn: Warn) -> TrainResult:
    """Score the trained model, save it and record the results (status still `running`).

    Returns:
        The result, with each `expect:` line the run did not meet.
    """
    pause_point("final_writes")
    results = evaluate(engine, model, head, encoded, splits.label_names)
    save_model(model, run.path)
    outcome = check_expectations(config.expect, results) if config.expect else None
    rows = run.history.rows
    # Recorded before the pictures are drawn: the learning curves mark the best epoch from it.
    run.record("running", **best_epoch(rows, monitor, hooks.stopper),
               weights_epoch=weights_epoch(len(rows), hooks.stopper), fit_s=round(fit_s, 3),
               **engine_calls(engine),
               warnings=hooks.health.warnings if hooks.health else [], **results,
               baseline=baselines(splits, head), **({"expect": outcome} if outcome else {}))
    return TrainResult(run.path, run.info, unmet_lines(config.expect, outcome) if outcome else [],
                       splits)


def finish(run: Run, model: keras.Model, splits: Splits, head: Head, warn: Warn,
           result: TrainResult, on_result: Callable[[TrainResult], None] | None,
           pictures: Callable[[Path], None] | None = None) -> None:
    """Show the result, then draw the pictures and mark the run completed.

    The result comes first, so that it is seen at once; the pictures take longer than the
    scores. `completed` is recorded last: a run marked completed has every file written.
    With `pictures`, another process draws them and then marks the run (`complete_drawn`).
    """
    if on_result is not None:
        on_result(result)
    if pictures is not None:
        pictures(run.path)
        return
    draw(run, model, splits, head, warn)
    complete(run)


def engine_calls(engine: Engine) -> dict[str, float]:
    """`epochs_per_call`: how many epochs the fast engine ran per compiled call, if it trained."""
    per_call = getattr(engine, "epochs_per_call", None)
    return {"epochs_per_call": per_call} if per_call else {}


def evaluate(engine: Engine, model: keras.Model, head: Head, encoded: Encoded,
             labels: list[str] | None = None) -> dict[str, dict[str, float] | None]:
    """Loss and metrics on each split (None for a split without rows); class metrics exact."""
    from dlrecap.evaluate import exact_class_scores

    score = engine.evaluator(model, head)
    return {name: exact_class_scores(score(*encoded[name]), model, head, *encoded[name], labels)
            if n_rows(encoded[name][0]) else None for name in SPLITS}


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


def baselines(splits: Splits, head: Head) -> dict[str, dict[str, float] | None]:
    """The trivial predictor's metrics on each split (None for a split without rows)."""
    from dlrecap.baseline import baseline_metrics

    return {name: baseline_metrics(splits.task, head.loss, head.metrics, splits.y_train, y,
                                   splits.label_names)
            if n_rows(x) else None for name, (x, y) in ((s, splits.split(s)) for s in SPLITS)}


def draw(run: Run, model: keras.Model, splits: Splits, head: Head, warn: Warn) -> None:
    """The run's pictures; once the model and metrics are saved, only a full disk fails the run.

    Raises:
        Interrupted: SIGINT/SIGTERM while drawing; the run is completed first.
        OSError: a picture cannot be written (disk full, permissions).
    """
    from dlrecap.plots import draw_run

    redraw = f"dlrecap plot {run.path}"
    try:
        pause_point("pictures")
        # The pictures of the network's inside take seconds: `draw_inside`, after the result.
        draw_run(run.path, model=model, splits=splits, head=head, inside=False)
    except KeyboardInterrupt:
        complete(run)
        raise Interrupted(f"interrupted while drawing the pictures; the run completed "
                          f"(model and metrics saved): draw them with: {redraw}") from None
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - pictures are a convenience; say why and go on
        warn(f"could not draw the run's pictures ({type(exc).__name__}: {exc}); "
             f"try again with: {redraw}")


def draw_inside(result: TrainResult, warn: Warn) -> list[Path]:
    """boundary.gif and neurons.png (or activations.png) of a completed run, once its result
    is out; like the other pictures, only a full disk fails here.

    Raises:
        Interrupted: SIGINT/SIGTERM while drawing; the run stays completed.
        RunError: a picture cannot be written (disk full, permissions); the run stays completed.
    """
    import os

    from dlrecap.errors import RunError
    from dlrecap.plots import draw_inside as draw

    splits = result.splits
    if splits is None:
        return []
    redraw = f"dlrecap plot {result.run_dir}"
    try:
        return draw(result.run_dir, splits, result.metrics.get("labels") or splits.label_names or [],
                    result.metrics.get("name") or result.run_dir.name)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while drawing the pictures; the run completed: "
                          f"draw them with: {redraw}") from None
    except OSError as exc:
        where = os.fsdecode(exc.filename) if exc.filename is not None else result.run_dir
        raise RunError(f"cannot write {where}: {exc.strerror or exc}; the run completed",
                       fix=f"free disk space or check permissions, then draw them with: "
                           f"{redraw}") from None
    except Exception as exc:  # noqa: BLE001 - pictures are a convenience; say why and go on
        warn(f"could not draw the run's pictures ({type(exc).__name__}: {exc}); "
             f"try again with: {redraw}")
        return []


def complete(run: Run) -> None:
    """Mark the run completed and remove its checkpoints, which nothing will resume now."""
    from dlrecap.runs import remove_checkpoints

    run.record("completed", finished_at=timestamp())
    remove_checkpoints(run.path)


def complete_drawn(run_dir: Path) -> None:
    """`complete` for a run whose pictures another process drew (`train(pictures=...)`)."""
    from dlrecap import runs

    info = runs.read_metrics(run_dir)
    info.update(status="completed", finished_at=timestamp())
    runs.write_json(run_dir / runs.METRICS_FILE, info, durable=True)
    runs.remove_checkpoints(run_dir)


def _ignore(_line: str) -> None:
    pass
