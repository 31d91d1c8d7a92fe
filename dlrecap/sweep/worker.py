"""Sweep workers: take the study's waiting trials one at a time and train each as a plain run.

`work` is the loop every worker runs, whether it is the sweep command itself, one of the
processes `--jobs N` adds, or the same command started on another machine: all of them meet
in the study's database (`study.py`).

This module imports nothing heavy at the top: worker processes are spawned fresh and must
size TensorFlow's thread pools (through the environment) before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from dlrecap import runs, signals

_stop_requested = False
# How often a worker with nothing to take looks again while other workers' trials run.
POLL_S = 1.0
# A trial's pace is told (`Pace`) from this far into its training, and at its end.
PACE_AFTER_S = 0.5

# Called with how long a trial of the sweep takes at least, in seconds (without the
# process' one-off imports): its time so far at each epoch end, the whole at its end. A
# lower bound, not an extrapolation from its epochs: early stopping may end it any time.
Pace = Callable[[float], None]


class TrialProgress(Protocol):
    """Sees each trial this worker starts and finishes (the sweep's display)."""

    def trial_started(self, trial: Any) -> None: ...

    def trial_finished(self, row: Any) -> None: ...


@dataclasses.dataclass(frozen=True)
class SweepJob:
    """What a worker needs to join a sweep (plain values, so it pickles to worker processes).

    Args:
        url: the study's database (SQLAlchemy URL).
        study: the study's name (the sweep's).
        sweep_dir: where this worker makes its trials' run directories.
        config_path, overrides: the base config and its `--set` overrides.
        name: the base run name.
        settings: the sweep's merged settings (grid, ranges, search, trials, seed, metric).
        direction: `minimize` or `maximize`.
        device: `auto`, `cpu` or `gpu`.
    """

    url: str
    study: str
    sweep_dir: str
    config_path: str
    overrides: list[str]
    name: str
    settings: dict[str, Any]
    direction: str
    device: str = "auto"

    @property
    def keys(self) -> list[str]:
        return [*self.settings["grid"], *self.settings["ranges"]]

    @property
    def metric(self) -> str:
        return self.settings["metric"]


def work(job: SweepJob, progress: TrialProgress | None = None, storage: Any = None,
         pictures: Any = None, pace: Pace | None = None) -> None:
    """Train waiting trials until the study has none left waiting or running.

    While other workers' trials run, this one waits: one of them may die, and its trial,
    failed for want of heartbeats, is queued again for whoever looks next.

    Args:
        job: the sweep to join.
        progress: sees each trial this worker starts and finishes.
        storage: the study's storage when this process opened it already (`open_storage`).
        pictures: where trials hand their pictures to be drawn (`Drawer.submit`), or None
            to draw them in the trial.
        pace: told how long a trial takes, during and after each (`--jobs N` starts its
            worker processes by it), or None.

    Raises:
        StorageError: the database cannot be reached (exit 2).
        Interrupted, KeyboardInterrupt: stopped by a signal; the running trial is queued again.
    """
    import optuna

    from dlrecap.sweep import study as st

    if storage is None:
        storage = st.open_storage(job.url)
    with st.reaching(job.url):
        study = optuna.load_study(study_name=job.study, storage=storage)
        last = None  # this worker's last trial's values: the next one of its shape goes first
        while not _stop_requested:
            st.fail_stale(study)
            taken = st.take_slot(storage, job.study, job, last)
            if taken is not None:
                trial_study, trial, slot = taken
                last = st.decode(job, trial.params)
                _train_slot(job, storage, trial_study, trial, slot, progress, pictures, pace)
            elif sum(st.unfinished(study)) == 0:
                return
            else:
                time.sleep(POLL_S)


def _train_slot(job: SweepJob, storage: Any, study: Any, trial: Any, slot: int,
                progress: TrialProgress | None, pictures: Any = None, pace: Pace | None = None) -> None:
    from dlrecap.errors import Interrupted
    from dlrecap.sweep import study as st
    from dlrecap.sweep.plan import Trial, trial_name
    from dlrecap.sweep.results import make_row, result_attrs

    params = st.decode(job, trial.params)
    item = Trial(slot + 1, trial_name(job.name, slot + 1, params), params)
    st.set_attrs(trial, {"worker": st.worker_name(), "name": item.name})
    sweep_dir = Path(job.sweep_dir)
    while (stale := runs.latest_named(sweep_dir, item.name)) is not None:  # an earlier attempt here
        shutil.rmtree(stale)
    if progress:
        progress.trial_started(item)
    try:
        with st.Heartbeat(storage, trial._trial_id):
            outcome = run_trial(job.config_path, [*job.overrides, *item.overrides()],
                                job.sweep_dir, job.device, pictures, pace)
    except (KeyboardInterrupt, Interrupted):
        st.requeue(study, trial, slot)
        raise
    run = runs.latest_named(sweep_dir, item.name)
    record = {"status": outcome["status"], "error": outcome.get("error"),
              "duration_s": outcome.get("duration_s"), "run": run.name if run else None}
    row = make_row(sweep_dir, item, record, job.metric)
    attrs = result_attrs(row, outcome, job.metric)
    st.finish(study, trial, attrs, row.score if row.status == "completed" else None)
    if progress:
        progress.trial_finished(row)
    if pace is not None:
        pace(outcome["duration_s"] - outcome["import_s"])


def init_worker(threads: int) -> None:
    """Size TensorFlow's thread pools, and the BLAS library's that the NumPy engine's matrix
    products use, so that all jobs together use the cores once.

    Args:
        threads: threads per pool for this process, e.g. cores // jobs.
    """
    from threadpoolctl import threadpool_limits

    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    threadpool_limits(threads, user_api="blas")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signals.handle_for_good(_on_interrupt, (signal.SIGINT,))
    threading.Thread(target=_exit_with_parent, daemon=True).start()


# How long a worker whose parent died lets its trial reach an epoch end before it exits.
ORPHAN_GRACE_S = 10.0


def _exit_with_parent() -> None:
    """End this worker soon after the sweep that started it is gone (killed with -9, say).

    A dead parent never sends more trials, nor reads results: the running trial stops at
    its next epoch end (recorded as interrupted, so it can be resumed) and the process exits
    instead of idling with TensorFlow's memory. The parent is the sweep process itself, also
    when a fork server forked this worker (the fork server's own pid is this one's ppid).
    """
    global _stop_requested
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()  # returns once the sweep process has ended
    else:  # not started by multiprocessing: watch the pid that started it
        ppid = os.getppid()
        while os.getppid() == ppid:
            time.sleep(0.5)
    _stop_requested = True
    time.sleep(ORPHAN_GRACE_S)
    os._exit(130)


def _on_interrupt(_signum: int) -> None:
    # Ctrl-C reaches every process of the terminal's group. Raising here could land inside
    # `import tensorflow` and leave the process hung, so only note it: the running trial
    # stops at its next epoch end (during `fit` the trainer's own handler does the same).
    global _stop_requested
    _stop_requested = True


class _TrialProgress:
    """A trainer `progress` that ends the trial at an epoch boundary once a stop was asked,
    and tells `pace` how long the trial has trained so far."""

    def __init__(self, pace: Pace | None = None):
        self.pace = pace
        self.begin = 0.0

    def start(self, epochs: int, columns: list[str], done: int = 0) -> None:
        self.begin = time.perf_counter()

    def epoch(self, epoch: int, logs: dict[str, float]) -> None:
        if _stop_requested:
            raise KeyboardInterrupt  # the trainer records the run as interrupted
        elapsed = time.perf_counter() - self.begin
        if self.pace is not None and elapsed >= PACE_AFTER_S:
            self.pace(elapsed)

    def finish(self) -> None:
        pass


def run_trial(config_path: str, overrides: list[str], runs_dir: str, device: str = "auto",
              pictures: Any = None, pace: Pace | None = None) -> dict[str, Any]:
    """Train one trial; never raises for a trial that fails, only for an interruption.

    Args:
        config_path: the sweep's base config.
        overrides: the trial's `KEY=VALUE` strings (the `--set` ones first).
        runs_dir: the sweep directory; the trial's run directory is created inside it.
        device: `auto`, `cpu` or `gpu`.
        pictures: draws the trial's pictures elsewhere (`pipeline.train`'s), or None.
        pace: told how long the trial has trained, at its epoch ends, or None.

    Returns:
        `{"status": "completed"|"failed", "run", "error", "unmet", "warnings", "duration_s",
        "import_s"}`; `import_s`: the part of `duration_s` this process spent on its one-off
        imports (the libraries every trial needs, with the first trial).

    Raises:
        Interrupted, KeyboardInterrupt: the trial was stopped by a signal.
    """
    from dlrecap.config.load import load_config
    from dlrecap.errors import DlrecapError, Interrupted
    from dlrecap.pipeline import train

    clock = time.perf_counter()
    warnings: list[str] = []
    outcome: dict[str, Any] = {"status": "failed", "run": None, "error": None, "unmet": [],
                               "warnings": warnings, "import_s": 0.0}
    try:
        loaded = load_config(config_path, overrides)
        # The trial is a plain run: its config.yaml carries no sweep block to re-sweep.
        loaded = dataclasses.replace(loaded, config=loaded.config.model_copy(update={"sweep": None}))
        outcome["import_s"] = _fresh_keras_state()
        if _stop_requested:
            raise KeyboardInterrupt
        result = train(loaded, Path(runs_dir), device=device, progress=_TrialProgress(pace),
                       on_warning=warnings.append, pictures=pictures)
        outcome.update(status="completed", run=str(result.run_dir), unmet=result.unmet)
    except Interrupted:
        raise
    except DlrecapError as exc:
        outcome["error"] = exc.render()
    except Exception as exc:  # one broken trial must not end the sweep; it is recorded
        outcome["error"] = f"internal error: {exc!r}"
    outcome["duration_s"] = round(time.perf_counter() - clock, 3)
    return outcome


def _fresh_keras_state() -> float:
    """Clear what the last trial left; the seconds spent importing the libraries, which the
    first trial of a process does (`import_seconds`)."""
    global _libraries_loaded, _import_s
    imported = 0.0
    if not _libraries_loaded:
        start, loaded_before = time.perf_counter(), "tensorflow" in sys.modules
        # Before the first trial: import what every trial needs, then freeze it (TensorFlow's
        # and Keras' objects live as long as the process), so that the garbage collector never
        # scans it again: a full collection would take a third of a second.
        import dlrecap.sweep.preload  # noqa: F401
        from dlrecap.train import warm

        gc.freeze()
        _libraries_loaded = True
        warm.ENABLED = True  # a trial of the same shape reuses the last one's compiled functions
        imported = time.perf_counter() - start
        if not loaded_before:
            _import_s = imported
    # Trials share a process: each builds new compiled functions, which TensorFlow would
    # report as "retracing" although it is expected here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # Drop the previous trial's graphs and layer names, and collect its models: milliseconds,
    # as the collector skips the frozen libraries.
    import keras

    keras.backend.clear_session(free_memory=False)
    gc.collect()
    return imported


def import_seconds() -> float | None:
    """How long this process' first trial took to import the libraries, or None when none
    was trained here or they were loaded already (a worker process takes about as long to
    start: it imports the same, `sweep.preload`)."""
    return _import_s


_libraries_loaded = False
_import_s: float | None = None
