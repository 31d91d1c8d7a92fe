"""Run a sweep: many ordinary training runs that differ in a few keys, then rank them.

The layout is `<runs-dir>/<name>-sweep-<stamp>/`, holding `sweep.json` (the settings and
every trial's status), one normal run directory per trial (`<name>-<NN>-<values>-<stamp>/`,
so `dlrecap runs --runs-dir SWEEP_DIR` and `dlrecap eval` work on them), and at the end
`sweep.csv`, `best.yaml` and `sweep.png`.

Running the same sweep again finds its directory (same base config, same settings) and
trains only the trials that have not completed; `--resume SWEEP_DIR` names it directly.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from dlrecap import runs, signals
from dlrecap.errors import ConfigError, Interrupted, RunError
from dlrecap.sweep.plan import SweepPlan, Trial, available_cores, check_trials, plan_sweep
from dlrecap.sweep.plot import PLOT_FILE, plot_sweep
from dlrecap.sweep.results import BEST_FILE, CSV_FILE, Row, best_row, make_row, ranked, write_best, write_csv
from dlrecap.sweep.search import TpeSearch
from dlrecap.sweep.seeds import SUMMARY_FILE, write_summary
from dlrecap.sweep.worker import init_worker, run_trial

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
) -> SweepResult:
    """Train every trial not yet completed, then write sweep.csv, best.yaml and sweep.png.

    Args:
        plan: from `plan_sweep` (every trial already validated).
        runs_dir: where the sweep directory is created or found.
        resume: a sweep directory to continue; it must hold this same sweep.
        fresh: start a new sweep directory even if this sweep ran before.
        device: `auto`, `cpu` or `gpu`, for every trial.
        progress: sees each trial start and finish.

    Raises:
        RunError: `resume` is not a sweep directory, or holds a different sweep.
        KeyboardInterrupt: after recording the interrupted trials (rerun to go on).
    """
    sweep_dir, state = _open(plan, runs_dir, resume, fresh)
    records = _reconcile(sweep_dir, plan, state)
    reused = sum(r["status"] == "completed" for r in records.values())
    session = _Session(plan, sweep_dir, records, device, progress, state)
    session.save()
    if progress:
        progress.start(plan, [session.row(t) for t in plan.trials], sweep_dir)
    try:
        session.run()
    except BaseException as exc:
        for record in records.values():
            if record["status"] == "running":
                record["status"] = "interrupted"
        session.save()
        if isinstance(exc, (KeyboardInterrupt, Interrupted)):
            done = sum(r["status"] == "completed" for r in records.values())
            raise Interrupted(
                f"sweep interrupted with {done} of {len(plan.trials)} trials completed",
                fix=f"run the same command again, or dlrecap sweep --resume {sweep_dir}",
            ) from None
        raise
    finally:
        if progress:
            progress.finish()
    rows = ranked([session.row(t) for t in plan.trials], plan.direction)
    write_csv(sweep_dir / CSV_FILE, rows, plan)
    write_summary(sweep_dir / SUMMARY_FILE, rows, plan)  # several seeds: mean ± std per setting
    best = best_row(rows, plan.direction)
    if best is not None:
        write_best(sweep_dir / BEST_FILE, best, plan)
        plot_sweep(sweep_dir / PLOT_FILE, rows, plan)
    return SweepResult(sweep_dir, plan, rows, best, reused, session.warnings)


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


def _reconcile(sweep_dir: Path, plan: SweepPlan, state: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Each trial's record, with `completed` taken from the run directories on disk."""
    previous = {r["index"]: r for r in state.get("trials", [])}
    if plan.settings["search"] == "tpe":  # asked trials are not derivable: replay them
        for index in sorted(previous):
            plan.new_trial(previous[index]["params"])
    records = {}
    for trial in plan.trials:
        old = previous.get(trial.index, {})
        record = {"index": trial.index, "name": trial.name, "params": trial.params,
                  "status": "pending", "run": None, "error": None, "duration_s": None}
        if old.get("name") == trial.name:
            record.update({k: old.get(k) for k in ("status", "error", "duration_s")})
        run = _run_dir_of(sweep_dir, trial.name)
        done = run is not None and _status(run) == "completed"
        record["run"] = run.name if run else None  # a failed one's too, until it is rerun
        if done:
            record["status"] = "completed"
        elif record["status"] in ("completed", "running", None):
            record["status"] = "interrupted" if run is not None else "pending"
        records[trial.index] = record
    return records


def _run_dir_of(sweep_dir: Path, name: str) -> Path | None:
    """The trial's run directory (names are unique within a sweep), newest first."""
    found = [p for p in sweep_dir.glob(f"{name}-*") if (p / runs.METRICS_FILE).is_file()
             and _metrics(p).get("name") == name]
    return max(found, key=lambda p: p.name) if found else None


def _metrics(run: Path) -> dict[str, Any]:
    try:
        return runs.read_metrics(run)
    except RunError:
        return {}


def _status(run: Path) -> str | None:
    return _metrics(run).get("status")


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


class _InProcess:
    """`--jobs 1`: trials run here, one after the other, sharing one TensorFlow import."""

    def submit(self, fn: Any, *args: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


class _Session:
    """One pass over the trials still to run: submit, collect, record, repeat."""

    def __init__(self, plan: SweepPlan, sweep_dir: Path, records: dict[int, dict[str, Any]],
                 device: str, progress: SweepProgress | None, state: dict[str, Any]):
        self.plan, self.sweep_dir, self.records = plan, sweep_dir, records
        self.device, self.progress, self.state = device, progress, state
        self.warnings: list[str] = []
        self.queue = [t for t in plan.trials if records[t.index]["status"] != "completed"]
        self.search = self._tpe() if plan.settings["search"] == "tpe" else None

    def _tpe(self) -> Any:
        done = [(t.params, self.row(t).score) for t in self.plan.trials
                if self.records[t.index]["status"] in ("completed", "failed")
                and t not in self.queue]
        return TpeSearch(self.plan, done)

    def row(self, trial: Trial) -> Row:
        return make_row(self.sweep_dir, trial, self.records[trial.index], self.plan.metric)

    def run(self) -> None:
        jobs = self.plan.jobs if self.search else min(self.plan.jobs, len(self.queue))
        if jobs < 1:
            return
        executor = self._executor(jobs)
        in_flight: dict[Future, Trial] = {}
        try:
            # SIGTERM stops the sweep like Ctrl-C does, so that its state is saved.
            with signals.handled_by(_interrupt, (signal.SIGTERM,)):
                while True:
                    while len(in_flight) < jobs and (trial := self._next()) is not None:
                        in_flight[self._submit(executor, trial)] = trial
                    if not in_flight:
                        return
                    finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                    for future in finished:
                        trial = in_flight.pop(future)
                        try:
                            outcome = future.result()
                        except (KeyboardInterrupt, Interrupted):
                            raise
                        except BrokenProcessPool as exc:
                            outcome = {"status": "failed", "error": f"worker process died ({exc})"}
                            executor.shutdown(wait=False)
                            executor = self._executor(jobs)
                        except Exception as exc:  # e.g. a result that could not be sent back
                            outcome = {"status": "failed", "error": f"internal error: {exc!r}"}
                        self._finished(trial, outcome)
        except BaseException:
            _stop_workers(executor)
            raise
        finally:
            executor.shutdown(wait=True, cancel_futures=True)

    def _executor(self, jobs: int) -> Any:
        if jobs == 1:
            return _InProcess()
        threads = max(1, available_cores() // jobs)
        return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, initargs=(threads,))

    def _next(self) -> Trial | None:
        if self.queue:
            return self.queue.pop(0)
        if self.search is None or len(self.plan.trials) >= self.plan.settings["trials"]:
            return None
        trial = self.plan.new_trial(self.search.ask())
        self.records[trial.index] = {"index": trial.index, "name": trial.name, "params": trial.params,
                                     "status": "pending", "run": None, "error": None,
                                     "duration_s": None}
        try:
            check_trials(self.plan, [trial])
        except ConfigError as exc:  # a sampled value the schema rejects: a failed trial
            self._finished(trial, {"status": "failed", "error": exc.render()})
            return self._next()
        return trial

    def _submit(self, executor: Any, trial: Trial) -> Future:
        stale = _run_dir_of(self.sweep_dir, trial.name)
        while stale is not None:  # an interrupted or failed attempt: its rerun replaces it
            shutil.rmtree(stale)
            stale = _run_dir_of(self.sweep_dir, trial.name)
        self.records[trial.index].update(status="running", run=None, error=None)
        self.save()
        if self.progress:
            self.progress.trial_started(trial)
        return executor.submit(run_trial, str(self.plan.config_path),
                               [*self.plan.base_overrides, *trial.overrides()],
                               str(self.sweep_dir), self.device)

    def _finished(self, trial: Trial, outcome: dict[str, Any]) -> None:
        record = self.records[trial.index]
        run = _run_dir_of(self.sweep_dir, trial.name)
        record.update(status=outcome["status"], error=outcome.get("error"),
                      duration_s=outcome.get("duration_s"), run=run.name if run else None,
                      unmet=outcome.get("unmet") or [])
        for line in outcome.get("warnings") or []:
            if f"#{trial.index}: {line}" not in self.warnings:
                self.warnings.append(f"#{trial.index}: {line}")
        self.save()
        row = self.row(trial)
        if self.search is not None:
            self.search.tell(trial.params, row.score)
        if self.progress:
            self.progress.trial_finished(row)

    def save(self) -> None:
        """Rewrite sweep.json (atomically): settings, fingerprint, every trial's record."""
        plan = self.plan
        state = {
            "name": plan.name,
            "config": str(plan.config_path.resolve()),
            "set": plan.base_overrides,
            "settings": plan.settings,
            "fingerprint": plan.fingerprint(),
            "created_at": self.state.get("created_at"),
            "updated_at": datetime.now().isoformat(timespec="seconds"),
            "trials": [self.records[t.index] for t in plan.trials],
        }
        runs.write_json(self.sweep_dir / SWEEP_FILE, state)
