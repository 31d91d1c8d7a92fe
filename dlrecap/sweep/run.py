"""Run a sweep: many ordinary training runs that differ in a few keys, then rank them.

The layout is `<runs-dir>/<name>-sweep-<stamp>/`, holding `sweep.json` (the settings, and at
the end every trial's status), `study.db` (the Optuna study, unless `--storage` names a
shared database), one normal run directory per trial this machine trained
(`<name>-<NN>-<values>-<stamp>/`, so `dlrecap runs --runs-dir SWEEP_DIR` and `dlrecap eval`
work on them), and at the end `sweep.csv`, `best.yaml` and `sweep.png`.

The study is the record of the sweep: running the same sweep again (here, or on another
machine with the same `--storage`) joins it and trains only the trials still waiting;
`--resume SWEEP_DIR` names the directory directly.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from dlrecap import runs, signals
from dlrecap.errors import Interrupted, RunError
from dlrecap.sweep import study as st
from dlrecap.sweep.drawer import Drawer
from dlrecap.sweep.plan import SweepPlan, Trial, available_cores, plan_sweep, trial_name
from dlrecap.sweep.plot import PLOT_FILE, plot_sweep
from dlrecap.sweep.results import (
    BEST_FILE,
    CSV_FILE,
    Row,
    best_row,
    ranked,
    study_row,
    trial_warnings,
    write_best,
    write_csv,
)
from dlrecap.sweep.seeds import SUMMARY_FILE, write_summary
from dlrecap.sweep.worker import SweepJob, import_seconds, init_worker, work

SWEEP_FILE = "sweep.json"


class SweepProgress(Protocol):
    """Where a sweep reports its trials (the CLI draws a live table; tests may collect)."""

    def start(self, plan: SweepPlan, rows: list[Row], sweep_dir: Path) -> None: ...

    def trial_started(self, trial: Trial) -> None: ...

    def trial_finished(self, row: Row) -> None: ...

    def finish(self) -> None: ...


@dataclass
class SweepResult:
    """A finished sweep: its directory, its rows best first, the winner."""

    sweep_dir: Path
    plan: SweepPlan
    rows: list[Row]
    best: Row | None
    reused: int = 0
    warnings: list[str] = field(default_factory=list)


def plan_from_dir(sweep_dir: Path, jobs: int | None = None) -> SweepPlan:
    """Rebuild the plan of an existing sweep from its sweep.json (for `--resume SWEEP_DIR`)."""
    state = read_state(sweep_dir)
    settings = state["settings"]
    search = settings["search"]
    return plan_sweep(
        state["config"], state.get("set", []), grid=settings["grid"], ranges=settings["ranges"],
        search=search, trials=None if search == "grid" else settings["trials"],
        seed=settings["seed"], jobs=jobs, metric=settings["metric"],
    )


def read_state(sweep_dir: Path) -> dict[str, Any]:
    return runs.read_json(sweep_dir, SWEEP_FILE, "sweep")


def find_sweep(plan: SweepPlan, runs_dir: Path) -> Path | None:
    """The latest sweep directory in `runs_dir` that ran this same sweep, if any."""
    found = []
    for path in runs_dir.glob(f"{plan.name}-sweep-*/{SWEEP_FILE}"):
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("fingerprint") == plan.fingerprint():
                found.append(path.parent)
        except (OSError, ValueError):
            continue
    return max(found, key=lambda p: p.name) if found else None


def run_sweep(
    plan: SweepPlan,
    runs_dir: Path,
    *,
    resume: Path | None = None,
    fresh: bool = False,
    device: str = "auto",
    progress: SweepProgress | None = None,
    storage: str | None = None,
) -> SweepResult:
    """Train the study's waiting trials, then write sweep.csv, best.yaml and sweep.png.

    Args:
        plan: from `plan_sweep` (every trial already validated).
        runs_dir: where this machine's sweep directory is created or found.
        resume: a sweep directory to continue; it must hold this same sweep.
        fresh: start a new sweep directory (and study.db) even if this sweep ran before.
        device: `auto`, `cpu` or `gpu`, for every trial.
        progress: sees each trial start and finish.
        storage: a database URL shared by several workers; default: study.db in the sweep directory.

    Raises:
        RunError: `resume` is not a sweep directory, or holds a different sweep.
        StorageError: the database cannot be reached, or its study holds another sweep.
        Interrupted: after queuing the interrupted trials again (rerun to go on).
    """
    sweep_dir, state = _open(plan, runs_dir, resume, fresh)
    job = _job(plan, sweep_dir, storage, device)
    _save(sweep_dir, plan, state)
    with st.reaching(job.url):
        storage = st.open_storage(job.url)
        study = st.join_study(storage, plan.name, plan.fingerprint(),
                              st.encode_slots(plan, [t.params for t in plan.trials]), plan.direction)
        before = study_rows(plan, study)
    reused = sum(r.status == "completed" for r in before)
    if progress:
        progress.start(plan, before, sweep_dir)
    # This process trains one trial at a time, which leaves a core idle: a drawing process
    # draws each trial's pictures meanwhile.
    drawer = Drawer() if reused < plan.total_trials else None
    try:
        _train_trials(job, plan, storage, study, progress, drawer)
        with st.reaching(job.url):
            rows = ranked(study_rows(plan, study), plan.direction)
        result = write_results(plan, sweep_dir, state, rows, reused)
    finally:  # the last trial's pictures are drawn while the results are written
        drawn = drawer.close() if drawer else []
    result.warnings.extend(drawn)
    return result


def _train_trials(job: SweepJob, plan: SweepPlan, storage: Any, study: Any,
                  progress: SweepProgress | None, drawer: Drawer | None) -> None:
    """Train the waiting trials (`_work`); an interruption says how far the sweep got."""
    try:
        with signals.handled_by(_interrupt, (signal.SIGTERM,)):
            _work(job, plan, storage, study, progress, drawer)
    except (KeyboardInterrupt, Interrupted):
        with st.reaching(job.url):
            done = sum(r.status == "completed" for r in study_rows(plan, study))
        raise Interrupted(
            f"sweep interrupted with {done} of {plan.total_trials} trials completed",
            fix=f"run the same command again, or dlrecap sweep --resume {job.sweep_dir}",
        ) from None
    finally:
        if progress:
            progress.finish()


def sweep_status(plan: SweepPlan, runs_dir: Path, *, resume: Path | None = None,
                 storage: str | None = None) -> SweepResult:
    """The study's rows as they are now, best first, without training anything.

    Raises:
        RunError: no sweep directory (default storage) or no study of this sweep.
    """
    sweep_dir = resume
    if storage is None and sweep_dir is None:
        sweep_dir = find_sweep(plan, runs_dir)
        if sweep_dir is None:
            raise RunError(f"no sweep of this config and settings in {runs_dir}",
                           fix="start it: the same command without --status")
    url = st.storage_url(storage) if storage else _default_url(Path(sweep_dir or "."))
    with st.reaching(url):
        study = None
        if storage is not None or (Path(sweep_dir or ".") / st.STUDY_FILE).is_file():
            study = st.load_study(st.open_storage(url), plan.name, plan.fingerprint())
        if study is None:
            raise RunError(f"no study named {plan.name!r} in {st.shown_url(url)}",
                           fix="start the sweep first: the same command without --status")
        rows = ranked(study_rows(plan, study), plan.direction)
    return SweepResult(Path(sweep_dir or "."), plan, rows, best_row(rows, plan.direction))


def study_rows(plan: SweepPlan, study: Any) -> list[Row]:
    """Every trial of the study that has values, in trial order (its latest attempt)."""
    rows = []
    for slot, frozen in sorted(st.latest_per_slot(study).items()):
        params = st.decode(plan, frozen.params or frozen.system_attrs.get("fixed_params") or {})
        if len(params) < len(plan.keys):  # a tpe trial not yet taken: no values yet
            continue
        name = frozen.user_attrs.get("name") or trial_name(plan.name, slot + 1, params)
        rows.append(study_row(Trial(slot + 1, name, params), frozen))
    return rows


def write_results(plan: SweepPlan, sweep_dir: Path, state: dict[str, Any], rows: list[Row],
                  reused: int = 0) -> SweepResult:
    """sweep.json's trial list, sweep.csv, best.yaml and sweep.png, from the study's rows."""
    _save(sweep_dir, plan, state, sorted(rows, key=lambda r: r.trial.index))
    write_csv(sweep_dir / CSV_FILE, rows, plan)
    write_summary(sweep_dir / SUMMARY_FILE, rows, plan)  # several seeds: mean ± std per setting
    best = best_row(rows, plan.direction)
    if best is not None:
        write_best(sweep_dir / BEST_FILE, best, plan)
        plot_sweep(sweep_dir / PLOT_FILE, rows, plan)
    return SweepResult(sweep_dir, plan, rows, best, reused, trial_warnings(rows))


def _default_url(sweep_dir: Path) -> str:
    return f"sqlite:///{(sweep_dir / st.STUDY_FILE).resolve()}"


def _job(plan: SweepPlan, sweep_dir: Path, storage: str | None, device: str) -> SweepJob:
    return SweepJob(
        url=st.storage_url(storage) if storage else _default_url(sweep_dir),
        study=plan.name, sweep_dir=str(sweep_dir.resolve()), config_path=str(plan.config_path),
        overrides=list(plan.base_overrides), name=plan.name, settings=plan.settings,
        direction=plan.direction, device=device)


def _open(plan: SweepPlan, runs_dir: Path, resume: Path | None, fresh: bool):
    if resume is not None:
        state = read_state(resume)
        if state.get("fingerprint") != plan.fingerprint():
            raise RunError(f"{resume} holds a different sweep (its config or settings changed)",
                           fix="start a new sweep: drop --resume")
        return Path(resume), state
    found = None if fresh else find_sweep(plan, runs_dir)
    if found is not None:
        return found, read_state(found)
    sweep_dir = runs.create_run_dir(runs_dir, f"{plan.name}-sweep")
    return sweep_dir, {"created_at": datetime.now().isoformat(timespec="seconds")}


def _save(sweep_dir: Path, plan: SweepPlan, state: dict[str, Any], rows: list[Row] | None = None) -> None:
    """Write sweep.json (atomically): settings, fingerprint and, at the end, every trial's status."""
    data = {
        "name": plan.name,
        "config": str(plan.config_path.resolve()),
        "set": plan.base_overrides,
        "settings": plan.settings,
        "fingerprint": plan.fingerprint(),
        "created_at": state.get("created_at"),
        "updated_at": datetime.now().isoformat(timespec="seconds"),
        "trials": [{"index": r.trial.index, "name": r.trial.name, "params": r.trial.params,
                    "status": r.status, "run": r.run.name if r.run else None, "error": r.error,
                    "duration_s": r.duration_s} for r in rows or []],
    }
    runs.write_json(sweep_dir / SWEEP_FILE, data)


def _interrupt(_signum: int) -> None:
    raise KeyboardInterrupt


def _stop_workers(executor: Any) -> None:
    """Ask running trials to stop at their next epoch end (the trainer handles SIGINT)."""
    processes = getattr(executor, "_processes", None) or {}  # ProcessPoolExecutor: pid -> process
    for pid in list(processes):
        try:
            os.kill(pid, signal.SIGINT)
        except OSError:  # already gone
            pass


def _work(job: SweepJob, plan: SweepPlan, storage: Any, study: Any,
          progress: SweepProgress | None, drawer: Drawer | None = None) -> None:
    """Train the study's waiting trials here, one at a time, until it is done; with `--jobs N`,
    N - 1 worker processes join once the trials left would repay their start (`_Helpers`).
    Trials run here hand their pictures to `drawer` when there is one."""
    with st.reaching(job.url):
        waiting = st.unfinished(study)[0]
    jobs = min(plan.jobs, max(1, waiting))
    pictures = drawer.submit if drawer else None
    if jobs == 1:
        work(job, progress, storage, pictures)
        return
    helpers = _Helpers(job, plan, study, jobs - 1, progress)
    try:
        work(job, progress, storage, pictures, pace=helpers.pace)
    except BaseException:
        helpers.stop()
        raise
    if helpers.close():
        work(job, progress, storage, pictures)  # what worker processes that died left


def worth_helpers(trials_left: int, trial_s: float, start_s: float) -> bool:
    """Whether worker processes started now end a sweep sooner than this process alone.

    Alone, it trains the trials left in `trials_left * trial_s`. A worker starts in about
    `start_s` (it imports what a trial needs, as this process did for its first trial), on a
    core that the pictures and this process use too, and only then takes trials: it pays
    once the work left is more than twice its start.
    """
    return trials_left * trial_s > HELPERS_PAY_AFTER * start_s


# A worker process is started once the trials left take this many times its start.
HELPERS_PAY_AFTER = 2.0
# A worker's start when this process cannot time its own (its libraries were loaded before
# the sweep): about what importing TensorFlow takes on a small machine.
DEFAULT_START_S = 4.0


class _Helpers:
    """The N - 1 worker processes of `--jobs N`, started when they pay (`worth_helpers`).

    Until then the sweep process trains alone, as `--jobs 1` does: a sweep of short trials
    is over before a worker would have imported TensorFlow, and two imports at once on a
    machine with few cores slow each other down. Once started, the workers take trials from
    the study like this process; a thread tells the display what they do.
    """

    def __init__(self, job: SweepJob, plan: SweepPlan, study: Any, count: int,
                 progress: SweepProgress | None):
        self.job, self.plan, self.study, self.count, self.progress = job, plan, study, count, progress
        self.executor: ProcessPoolExecutor | None = None
        self.futures: list[Any] = []
        self.finished = threading.Event()
        self.threads: list[threading.Thread] = []
        self.next_look = 0.0

    def pace(self, trial_s: float) -> None:
        """Start the workers if, at `trial_s` seconds a trial (at least), they pay
        (`worker.Pace`)."""
        now = time.monotonic()
        if self.executor is not None or now < self.next_look:
            return
        self.next_look = now + LOOK_S
        measured = import_seconds()
        start_s = DEFAULT_START_S if measured is None else measured
        if not worth_helpers(self.plan.total_trials, trial_s, start_s):
            return  # not even were every trial left: no need to ask the study
        with st.reaching(self.job.url):
            left = st.unfinished(self.study)[0]
        if worth_helpers(left, trial_s, start_s):
            self.start()

    def start(self) -> None:
        threads = max(1, available_cores() // (self.count + 1))
        self.executor = ProcessPoolExecutor(max_workers=self.count, mp_context=_worker_context(),
                                            initializer=init_worker, initargs=(threads,))
        # Submitting waits for the fork server's imports: in a thread, while trials train here.
        for target in (self._submit, self._watch):
            thread = threading.Thread(target=target, name=f"dlrecap-sweep{target.__name__}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)

    def _submit(self) -> None:
        try:
            for _ in range(self.count):
                self.futures.append(self.executor.submit(work, self.job))  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - shut down meanwhile (interrupted), or no fork server
            pass  # this process trains what is left, as with --jobs 1

    def _watch(self) -> None:
        """Tell the display the workers' trials, as they start and finish."""
        storage = st.open_storage(self.job.url)  # its own connection: this runs in a thread
        with st.reaching(self.job.url):
            watch = _Watch(self.plan, st.load_study(storage, self.plan.name, self.plan.fingerprint()),
                           self.progress, skip=st.worker_name())
            while not self.finished.wait(WATCH_S):
                watch.poll()
            watch.poll()

    def stop(self) -> None:
        """On an interruption: have the workers' running trials stop at their next epoch
        end, and wait for the workers to exit."""
        if self.executor is not None:
            _stop_workers(self.executor)
            self.executor.shutdown(wait=True, cancel_futures=True)
        self.finished.set()

    def close(self) -> bool:
        """Wait for the workers to end (they end when the study has nothing left); whether
        any had started."""
        if self.executor is None:
            return False
        self.threads[0].join()  # every worker submitted
        for future in self.futures:
            try:
                future.result()
            except BrokenProcessPool:  # a worker died: its trial goes stale and is retried
                pass
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.finished.set()
        self.threads[1].join()  # the display told of the last trials
        return True


# How often the display hears of the workers' trials; how often a trial's pace is weighed.
WATCH_S, LOOK_S = 0.5, 1.0


def _worker_context() -> Any:
    """How worker processes start: forked from one process that imported TensorFlow once.

    Spawned fresh, each worker would import TensorFlow itself (seconds of CPU each, which
    on a machine with few cores costs more than a second job gains). The fork server
    imports it before any thread pool or device exists (`preload`), so forking it is safe.
    Where there is no fork server (Windows, macOS' default), workers are spawned.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods() or sys.platform == "darwin":
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["dlrecap.sweep.preload"])
    forkserver.ensure_running()  # it imports in the background while this process goes on
    return context


class _Watch:
    """Tells the display what the worker processes did, from the study's rows; trials of the
    worker named `skip` (this process, which tells the display itself) are left out."""

    def __init__(self, plan: SweepPlan, study: Any, progress: SweepProgress | None, skip: str = ""):
        self.plan, self.study, self.progress, self.skip = plan, study, progress, skip
        self.seen = {r.trial.index: r.status for r in study_rows(plan, study)}

    def poll(self) -> None:
        if self.progress is None:
            return
        for row in study_rows(self.plan, self.study):
            if row.worker == self.skip:
                continue
            before = self.seen.get(row.trial.index)
            if row.status == before:
                continue
            self.seen[row.trial.index] = row.status
            if row.status == "running":
                self.progress.trial_started(row.trial)
            elif row.status != "pending":
                self.progress.trial_finished(row)
