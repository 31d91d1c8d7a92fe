"""The callbacks of one training run, assembled from its config.

Order matters, and lives here: metrics are put in the target's units before anyone reads
them; the NaN guard sees a diverged loss first; early stopping decides before the
checkpoint is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlrecap import runs
from dlrecap.data.split import n_rows
from dlrecap.vocab import direction, effective_monitor

if TYPE_CHECKING:
    from dlrecap.config.schema import Config
    from dlrecap.data import Splits
    from dlrecap.model import Head, TargetScale
    from dlrecap.record import Run
    from dlrecap.train.callbacks import BoundaryFrames, ResumableReduceLROnPlateau
    from dlrecap.train.checkpoint import Checkpointer, ResumableEarlyStopping, StopRequest
    from dlrecap.train.distributed import Cluster
    from dlrecap.train.health import HealthMonitor

Warn = Callable[[str], None]
# (x, y) per split, the targets encoded as the loss expects them.
Encoded = dict[str, tuple[Any, Any]]


@dataclass
class Callbacks:
    """The callbacks of one `fit`, and those the steps after it ask about."""

    all: list[Any]
    stop: StopRequest
    checkpointer: Checkpointer
    stopper: ResumableEarlyStopping | None = None
    health: HealthMonitor | None = None
    frames: BoundaryFrames | None = None


def make_callbacks(config: Config, run: Run, head: Head, encoded: Encoded, monitor: str,
                   state: dict[str, Any], best_weights: Any, cluster: Cluster,
                   warn: Warn, scale: TargetScale | None = None,
                   splits: Splits | None = None) -> Callbacks:
    """The callbacks of one `fit`.

    In order: target units (with a `scale`), NaN guard, learning rate, history, early
    stopping or the best-weights keeper, reduce_on_plateau, checkpoints, health, TensorBoard
    and, for data with two numeric features (`splits`), the boundary frames, last so that
    they see the weights kept.
    """
    from dlrecap.train import callbacks as cb
    from dlrecap.train import checkpoint as ckpt

    stopper = best_keeper(config, monitor, state, best_weights)
    plateau = plateau_callback(config, monitor, state, n_rows(encoded["validation"][0]) > 0)
    stop = ckpt.StopRequest()
    checkpointer = ckpt.Checkpointer(run.path, stopper, stop, saved_epoch=state["epochs_done"],
                                     plateau=plateau)
    # The rate is logged as the epoch used it, before reduce_on_plateau may lower it.
    hooks: list[Any] = [*([cb.TargetUnits(scale.std)] if scale else []), cb.FiniteLossGuard(),
                        cb.LearningRateLog(), run.history, *([stopper] if stopper else []),
                        *([plateau] if plateau else []), checkpointer]
    hooks += cluster.callbacks(run.path, run.history, stopper)  # multi_worker: restart backup
    health = health_monitor(config, run.path, encoded, head, warn, state["epochs_done"])
    hooks.append(health)
    if config.training.tensorboard:
        import keras

        hooks.append(keras.callbacks.TensorBoard(log_dir=str(run.path / "tensorboard")))
    frames = None
    if splits is not None and cluster.mode != "multi_worker":
        frames = boundary_frames(config, run.path, splits, stopper, scale, state["epochs_done"])
    hooks += [frames] if frames else []
    return Callbacks(hooks, stop, checkpointer, stopper, health, frames)


def weights_epoch(last: int, keeper: ResumableEarlyStopping | None) -> int:
    """The epoch whose weights the model ends with, `last` trained: the best one when they
    were kept, else the last."""
    if keeper is not None and keeper.restore_best_weights and keeper.best_weights is not None:
        return int(keeper.best_epoch) + 1
    return last


def best_keeper(config: Config, monitor: str, state: dict[str, Any],
                best_weights: Any) -> ResumableEarlyStopping | None:
    """The callback that tracks the best epoch and, for `training.keep: best`, keeps its weights.

    Early stopping when configured (it restores the best weights only for `keep: best`);
    without it, a `KeepBest` for `keep: best`, else None.
    """
    from dlrecap.train import checkpoint as ckpt

    es, keep_best = config.training.early_stopping, config.training.keeps_best()
    resumed = {"initial_state": state["early_stopping"], "best_weights": best_weights}
    if es:
        return ckpt.ResumableEarlyStopping(
            monitor=monitor, patience=es.patience, min_delta=es.min_delta,
            mode=direction(monitor), restore_best_weights=keep_best, **resumed)
    return ckpt.KeepBest(monitor, direction(monitor), **resumed) if keep_best else None


def plateau_callback(config: Config, monitor: str, state: dict[str, Any],
                     has_validation: bool) -> ResumableReduceLROnPlateau | None:
    """Keras' ReduceLROnPlateau for `lr_schedule: reduce_on_plateau` (else None).

    It watches the schedule's own `monitor` when set (its `val_` form falls back to the
    training value without validation rows, as `monitor` does), else the run's `monitor`.
    A resumed run's counters come from its checkpoint `state`.
    """
    from dlrecap.train.callbacks import ResumableReduceLROnPlateau

    schedule = config.training.lr_schedule
    if schedule.name != "reduce_on_plateau":
        return None
    watched = effective_monitor(schedule.monitor, has_validation) if schedule.monitor else monitor
    return ResumableReduceLROnPlateau(
        monitor=watched, mode=direction(watched), factor=schedule.setting("factor"),
        patience=schedule.setting("patience"), min_lr=schedule.setting("min_lr"),
        initial_state=state.get("lr_schedule"))


def health_monitor(config: Config, run_dir: Path, encoded: Encoded, head: Head, warn: Warn,
                   initial_epoch: int) -> HealthMonitor:
    """Dead/saturated units and gradient norms per layer, on a sample of validation rows.

    A resumed run keeps diagnostics.csv's rows up to its checkpoint, `initial_epoch`.
    """
    from dlrecap.train.health import HealthMonitor

    x, y = encoded["validation"] if n_rows(encoded["validation"][0]) else encoded["train"]
    # About 20 probes per run: enough to see a layer die, cheap next to fast-engine epochs.
    every = max(1, config.training.epochs // 20)
    return HealthMonitor(x, run_dir / runs.DIAGNOSTICS_FILE, y_sample=y, loss_fn=head.loss,
                         every=every, on_warning=warn, seed=config.seed, keep_until=initial_epoch)


# Frames over a run: about 30 to 60, whatever its length; the grid is coarser than the
# decision boundary's picture (25 KB a frame), the same plane.
FRAMES_PER_RUN = 60
FRAME_GRID = 80


def boundary_frames(config: Config, run_dir: Path, splits: Splits,
                    stopper: ResumableEarlyStopping | None, scale: TargetScale | None,
                    initial_epoch: int) -> BoundaryFrames | None:
    """The model's surface over the plane of the two numeric features every few epochs,
    or None when the data has not exactly two."""
    from dlrecap.picture_rows import numeric_features, plane_axes, plane_rows, surface
    from dlrecap.train.callbacks import BoundaryFrames

    if len(numeric_features(splits)) != 2:
        return None
    xs, ys = plane_axes(splits, FRAME_GRID)

    every = -(-config.training.epochs // FRAMES_PER_RUN)
    return BoundaryFrames(run_dir / runs.FRAMES_FILE, plane_rows(splits, xs, ys), xs, ys, every,
                          surface, scale=(scale.mean, scale.std) if scale else None,
                          kept_epoch=partial(weights_epoch, keeper=stopper),
                          keep_until=initial_epoch)
