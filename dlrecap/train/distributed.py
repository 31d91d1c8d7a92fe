"""Training on several devices or machines with `tf.distribute`.

`training.distribute` picks a strategy: `mirrored` copies the model onto every local device
(GPUs, or logical CPU devices); `multi_worker` spans machines described by the standard
`TF_CONFIG` variable. Both train with the loop in this module when they can: the fast
engine's epoch, with every global batch split among the replicas (of all workers) and the
gradients, loss and metrics all-reduced, so that every replica holds the same weights, every
worker sees the same per-epoch logs, and the batches are those one device would see. Keras
3 `fit` is the fallback under `mirrored` only: it does not work under
`MultiWorkerMirroredStrategy` (keras#20585, tensorflow#72388).

Only the chief writes the run directory; the other workers write theirs in a temporary
folder. The chief also keeps a backup of the training state in `<runs-dir>/.multi_worker/`
every few seconds; when the job is started again (a worker was restarted), every worker
restores it and training goes on in the same run directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dlrecap import runs
from dlrecap.errors import ConfigError, DlrecapError, TrainingError
from dlrecap.model import Head
from dlrecap.train import fast_engine
from dlrecap.train.metrics import COUNTED
from dlrecap.vocab import VALIDATION_PREFIX

BACKUP_ROOT = ".multi_worker"
# Back up at most this often: saving costs milliseconds, often more than an epoch here. A
# restart retrains the epochs since, with the same batches, so it reaches the same weights.
BACKUP_EVERY_S = 2.0


@dataclass(frozen=True)
class Cluster:
    """Where and how this process trains.

    Args:
        mode: `none`, `mirrored` or `multi_worker`.
        strategy: the `tf.distribute.Strategy`, or None for `none`.
        chief: whether this process writes the run directory.
        label: what metrics.json records, e.g. `mirrored (2 x CPU)`.
        backup_dir: multi_worker only: the chief's backup of the training state.
        fingerprint: multi_worker only: identifies the config a backup belongs to.
    """

    mode: str = "none"
    strategy: Any = None
    chief: bool = True
    label: str = "none"
    backup_dir: Path | None = None
    fingerprint: str = ""

    def scope(self) -> Any:
        """The strategy's scope (create the model and its optimizer in it), or a no-op."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def run_dir(self, runs_dir: Path, name: str, resume: Path | None = None) -> Path:
        """The run directory: a new one, the resumed one, the chief's after a restart, or a
        temporary one on workers other than the chief.

        Raises:
            DlrecapError: `--resume` with multi_worker, which resumes by itself.
        """
        if self.mode == "multi_worker" and resume is not None:
            raise DlrecapError("--resume does not apply to distribute: multi_worker",
                               fix="start the same command again on every worker: they resume "
                               "from the backup in the runs directory")
        if resume is not None:
            return resume
        if not self.chief:
            return runs.create_run_dir(Path(tempfile.mkdtemp(prefix="dlrecap-worker-")), name)
        state = self.backup_state()
        if state and Path(state.get("run_dir", "")).is_dir():
            return Path(state["run_dir"])
        return runs.create_run_dir(runs_dir, name)

    def callbacks(self, run_dir: Path, history: Any, stopper: Any) -> list[Any]:
        """The callbacks this mode adds: the multi-worker backup, if any."""
        return [WorkerBackup(self, run_dir, history, stopper)] if self.backup_dir else []

    def finish(self) -> None:
        """After a completed training: the chief removes the multi-worker backup."""
        if self.chief and self.backup_dir is not None:
            runs.remove_folder(self.backup_dir)
            with contextlib.suppress(OSError):  # only when no other config's backup is there
                self.backup_dir.parent.rmdir()

    def backup_state(self) -> dict[str, Any] | None:
        """The backup's state.json, when a backup of this config exists."""
        folder = _complete_backup(self.backup_dir)
        if folder is None:
            return None
        try:
            state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state if state.get("fingerprint") == self.fingerprint else None


def make_cluster(distribute: str, runs_dir: Path, config: Any) -> Cluster:
    """Create the strategy `training.distribute` asks for; call before any model exists.

    Args:
        distribute: `auto` (mirrored when more than one GPU is visible), `none`, `mirrored`
            or `multi_worker`.
        runs_dir: the runs directory (multi_worker keeps its backup there).
        config: the validated config (its name and contents key the backup).

    Raises:
        ConfigError: multi_worker without a usable TF_CONFIG.
    """
    gpus = tf.config.get_visible_devices("GPU")
    if distribute == "auto":
        distribute = "mirrored" if len(gpus) > 1 else "none"
    if distribute == "none":
        return Cluster()
    if distribute == "mirrored":
        # Without GPUs, MirroredStrategy would use CPU:0 only; take every logical CPU device.
        devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        kind = "GPU" if gpus else "CPU"
        return Cluster("mirrored", strategy, label=f"mirrored ({strategy.num_replicas_in_sync} x {kind})")
    spec = read_tf_config(os.environ.get("TF_CONFIG"))
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = spec["task"]
    chief = _is_chief(spec)
    workers = sum(len(spec["cluster"].get(t, [])) for t in ("chief", "worker"))
    label = (f"multi_worker ({task['type']} {task['index']} of {workers} tasks, "
             f"{strategy.num_replicas_in_sync} replicas{', chief' if chief else ''})")
    settings = config.resolved()
    settings["training"].pop("epochs", None)  # training longer after a restart is allowed
    fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return Cluster("multi_worker", strategy, chief, label,
                   runs_dir / BACKUP_ROOT / config.name, fingerprint)


def read_tf_config(text: str | None) -> dict[str, Any]:
    """Parse and check the `TF_CONFIG` JSON: a cluster of workers and this process's task.

    Raises:
        ConfigError: when it is missing or malformed, saying what to set.
    """
    key, fix = "training.distribute", "set TF_CONFIG on every worker as in docs/scale.md"
    if not text:
        raise ConfigError("multi_worker reads the cluster from the TF_CONFIG environment "
                          "variable, which is not set", key=key, fix=fix + ", or use mirrored")
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({exc})", key=key, fix=fix) from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not isinstance(cluster.get("worker", []), list) \
            or not (cluster.get("worker") or cluster.get("chief")):
        raise ConfigError('TF_CONFIG has no "cluster" with a "worker" list', key=key, fix=fix)
    if not isinstance(task, dict) or task.get("type") not in ("chief", "worker") \
            or not isinstance(task.get("index"), int) \
            or not 0 <= task["index"] < len(cluster.get(task["type"], [])):
        raise ConfigError('TF_CONFIG\'s "task" must name this process, e.g. '
                          '{"type": "worker", "index": 0}, within "cluster"', key=key, fix=fix)
    return spec


def _is_chief(spec: dict[str, Any]) -> bool:
    """The chief is the `chief` task, or worker 0 when the cluster names no chief."""
    task = spec["task"]
    if spec["cluster"].get("chief"):
        return task["type"] == "chief"
    return task["type"] == "worker" and task["index"] == 0


def _complete_backup(folder: Path | None) -> Path | None:
    return runs.complete_folder(folder, "state.json") if folder is not None else None


class WorkerBackup(keras.callbacks.Callback):
    """Saves the training state after epochs, so that a restarted job resumes.

    The chief writes the backup folder (which, like the runs directory, must be on storage
    that every worker reads) as `<folder>.new` swapped in by renames; the other workers only
    read it. It holds the weights with the optimizer state, the history rows and the early
    stopping state; `Cluster.finish` removes it once the run completed. The loop calls
    `restore_weights` before the callbacks' `on_train_begin` and `restore_callbacks` after.

    Args:
        cluster: the multi-worker cluster.
        run_dir: this process's run directory (recorded so a restarted chief reuses it).
        history: the `HistoryWriter` whose rows are kept, or None.
        stopper: the `ResumableEarlyStopping` whose state is kept, or None.
    """

    def __init__(self, cluster: Cluster, run_dir: Path, history: Any = None, stopper: Any = None):
        super().__init__()
        assert cluster.backup_dir is not None, "only multi_worker clusters keep a backup"
        self.cluster, self.run_dir, self.backup_dir = cluster, run_dir, cluster.backup_dir
        self.history, self.stopper = history, stopper
        self.state: dict[str, Any] | None = None
        self.last_save = 0.0

    def restore_weights(self) -> int:
        """Load the backed-up weights and optimizer state; return the epochs already done."""
        self.state = self.cluster.backup_state()
        if self.state is None:
            return 0
        folder = _complete_backup(self.backup_dir)
        if folder is None:
            return 0
        try:
            self.model.load_weights(folder / "model.weights.h5")
        except Exception as exc:  # a damaged backup: say which, don't crash
            raise TrainingError(f"{folder}: cannot restore the multi-worker backup ({exc})",
                                fix="delete that folder to start over") from None
        return int(self.state["epochs_done"])

    def restore_callbacks(self) -> None:
        """Put back the history rows and the early-stopping state (after `on_train_begin`)."""
        if self.state is None:
            return
        if self.history is not None:
            self.history.rows = list(self.state["rows"])
        es = self.state.get("early_stopping")
        if self.stopper is not None and es:
            self.stopper.best, self.stopper.best_epoch, self.stopper.wait = \
                es["best"], es["best_epoch"], es["wait"]
            folder = _complete_backup(self.backup_dir)
            best = folder / "best_weights.npz" if folder is not None else None
            if best is not None and best.is_file():
                with np.load(best) as data:
                    self.stopper.best_weights = [data[f"arr_{i}"] for i in range(len(data.files))]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.cluster.chief or time.monotonic() - self.last_save < BACKUP_EVERY_S:
            return
        folder = self.backup_dir
        new = folder.with_name(folder.name + ".new")
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir(parents=True)
        self.model.save_weights(new / "model.weights.h5")
        state = {"fingerprint": self.cluster.fingerprint, "epochs_done": epoch + 1,
                 "run_dir": str(self.run_dir.resolve()),
                 "rows": self.history.rows if self.history is not None else [],
                 "early_stopping": None}
        if self.stopper is not None:
            state["early_stopping"] = self.stopper.state()
            if self.stopper.best_weights is not None:
                np.savez(new / "best_weights.npz", *self.stopper.best_weights)
        (new / "state.json").write_text(json.dumps(state), encoding="utf-8")  # written last
        runs.replace_folder(new, folder)
        self.last_save = time.monotonic()


class DistributedEngine(fast_engine.FastEngine):
    """The fast engine's loop with every global batch split among a strategy's replicas.

    It scores with the fast engine's in-graph metrics and its evaluator (weights are
    identical on every worker, so each evaluates locally, with no collectives), and compiles
    like it, inside the strategy's scope.
    """

    name = "distributed"

    def supports(self, head: Head, x: Any, *, tensorboard: bool = False,
                 distribute: str = "none") -> str | None:
        """Why the multi-device loop cannot train `head` on `x`, or None when it can."""
        if any(m in COUNTED for m in head.metrics) or head.class_weights is not None:
            return ("the multi-device loop computes only accuracy, mae, mse and rmse, "
                    "without class weights")
        return super().supports(head, x, tensorboard=tensorboard, distribute=distribute)

    def fit(self, model: keras.Model, head: Head, config: Any, train: tuple[Any, np.ndarray],
            validation: tuple[Any, np.ndarray] | None, callbacks: list[keras.callbacks.Callback],
            initial_epoch: int = 0) -> None:
        """Train `model` under its strategy; callbacks see every epoch as they would under `fit`.

        Every worker runs this with the same data and seed; each global batch is split among
        all replicas, so the result matches one device training on `batch_size` rows per
        step. `model` must have been built and compiled in the strategy's scope.
        """
        step = _ReplicaSteps(model, head, config.training.batch_size, config.seed,
                             model.distribute_strategy)
        x, y = (tf.convert_to_tensor(a) for a in train)
        val = tuple(tf.convert_to_tensor(a) for a in validation) if validation is not None else None
        try:
            _run_epochs(model, head, config, step, (x, y), val, callbacks, initial_epoch)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as exc:
            # A worker died or cannot be reached: every collective fails from here on.
            raise TrainingError(f"lost contact with another worker ({type(exc).__name__})",
                                fix="start the same command again on every worker: training "
                                "resumes from the last backup") from None


def _run_epochs(model: keras.Model, head: Head, config: Any, step: _ReplicaSteps,
                train: tuple[tf.Tensor, tf.Tensor], val: tuple[tf.Tensor, tf.Tensor] | None,
                callbacks: list[keras.callbacks.Callback], initial_epoch: int) -> None:
    backups = [c for c in callbacks if isinstance(c, WorkerBackup)]
    hooks = keras.callbacks.CallbackList(callbacks, model=model)
    for backup in backups:
        initial_epoch = max(initial_epoch, backup.restore_weights())
    step.check_same_start(initial_epoch)
    model.stop_training = False
    hooks.on_train_begin()
    for backup in backups:
        backup.restore_callbacks()
    for epoch in range(initial_epoch, config.training.epochs):
        hooks.on_epoch_begin(epoch)
        logs = fast_engine._as_floats(head, step.train_epoch(*train, tf.constant(epoch, tf.int64)))
        if val is not None and np.isfinite(logs["loss"]):
            scores = fast_engine._as_floats(head, step.evaluate(*val))
            logs.update({VALIDATION_PREFIX + k: v for k, v in scores.items()})
        hooks.on_epoch_end(epoch, logs)
        # A stop asked for on one worker only (a signal) must stop them all at this epoch.
        if step.any_worker(bool(model.stop_training)):
            if not model.stop_training:
                raise KeyboardInterrupt  # another worker was interrupted: so is this run
            break
    hooks.on_train_end()


class _ReplicaSteps(fast_engine._StepFunctions):
    """The fast engine's epoch, with each global batch split among the strategy's replicas."""

    autograph = True  # its epoch is written as a Python loop over tf.range

    def __init__(self, model: keras.Model, head: Head, batch_size: int, seed: int, strategy: Any):
        self.strategy = strategy
        super().__init__(model, head, batch_size, seed)
        self._sum = tf.function(self._sum_fn)

    def _train_epoch(self, x: tf.Tensor, y: tf.Tensor, epoch: tf.Tensor) -> tuple:
        n = tf.shape(x, out_type=tf.int64)[0]
        # Same order on every worker: it depends only on (seed, epoch).
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n), seed=tf.stack([tf.constant(self.seed, tf.int64), epoch]))
        batch = tf.constant(self.batch_size, tf.int64)
        # [loss sum, metric sums..., rows] over the epoch, summed over every replica.
        totals = tf.zeros([len(self.head.metrics) + 2])
        for i in tf.range((n + batch - 1) // batch):
            idx = order[i * batch: tf.minimum((i + 1) * batch, n)]
            per_replica = self.strategy.run(self._replica_step, args=(tf.gather(x, idx), tf.gather(y, idx)))
            sums = self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            totals += sums  # one small all-reduce per step, beside the gradients'
            if not tf.math.is_finite(sums[0]):
                break  # the same on every worker: the loss was all-reduced
        return self._finish(totals[0], tf.unstack(totals[1:-1], num=len(self.head.metrics)),
                            totals[-1])

    def _replica_step(self, xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
        """One replica's share of a global batch: rows r, r + k, r + 2k, ... of k replicas."""
        ctx = tf.distribute.get_replica_context()
        r, k = ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync
        model, optimizer = self.model, self.model.optimizer
        x_local, y_local = xb[r::k], yb[r::k]
        rows = tf.cast(tf.shape(x_local)[0], tf.float32)
        with tf.GradientTape() as tape:
            pred = model(x_local, training=True)
            loss_sum = tf.reduce_sum(tf.cast(self.loss_fn(y_local, pred), tf.float32))
            # The optimizer sums the replicas' gradients: divide by the global rows.
            loss = loss_sum / tf.cast(tf.shape(xb)[0], tf.float32)
            penalty = tf.cast(tf.add_n(model.losses), tf.float32) if model.losses else tf.constant(0.0)
            loss += penalty / k
            scaled = optimizer.scale_loss(loss)  # mixed_float16: the optimizer unscales
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return tf.stack([loss_sum + penalty * rows, *self._sums(y_local, pred), rows])

    def _sum_fn(self, value: tf.Tensor) -> tf.Tensor:
        """`value` summed over every replica (a collective: every worker must call it)."""
        per_replica = self.strategy.run(tf.identity, args=(value,))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def any_worker(self, flag: bool) -> bool:
        """Whether `flag` is true on any worker."""
        return float(self._sum(tf.constant(1.0 if flag else 0.0, tf.float64))) > 0

    def check_same_start(self, epoch: int) -> None:
        """Fail on every worker alike when they would start from different epochs."""
        k, e = self.strategy.num_replicas_in_sync, float(epoch)
        total, squares = (float(self._sum(tf.constant(v, tf.float64))) for v in (e, e * e))
        if abs(k * squares - total * total) > 0.5:  # zero exactly when all are equal
            raise TrainingError(
                "the workers restored different epochs from the multi-worker backup",
                fix="put the runs directory on storage that every worker shares",
            )
