"""A sweep's Optuna study in a relational database: the one record every worker shares.

Every sweep keeps its trials in an Optuna study: by default `study.db`, a SQLite file in the
sweep directory; with `--storage URL`, a database that workers on several machines reach.
The study is named after the sweep and carries the sweep's fingerprint, so a study of the
same name with another config is refused.

Each of the sweep's trials is a *slot*, enqueued once as a waiting Optuna trial by whichever
starter created the study: grid and random slots carry their values, tpe slots none (TPE
picks them when a worker takes the slot, from every result so far). A worker takes a slot
by moving it from WAITING to RUNNING, which the database lets exactly one worker do. While it
trains it records heartbeats; a trial whose worker stopped sending them (killed, machine
lost) is failed by the next worker that looks, and its slot queued again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

from dlrecap.errors import RunError, first_line
from dlrecap.sweep.search import SearchSpace, distributions

STUDY_FILE = "study.db"
# Heartbeats every HEARTBEAT_S seconds; a trial silent for GRACE_S is taken as dead.
# `DLRECAP_SWEEP_HEARTBEAT_S` changes both (grace = 4 heartbeats), e.g. to notice a lost
# machine sooner, or to allow longer stalls on a slow shared file system.
HEARTBEAT_ENV = "DLRECAP_SWEEP_HEARTBEAT_S"
HEARTBEAT_S = 10
# A slot whose workers died this many times is left failed (the trial itself may kill them).
MAX_RETRIES = 3
# How long a starter waits for the one that created the study to finish filling it.
READY_WAIT_S = 60.0
_HASH_ATTR, _READY_ATTR = "dlrecap_fingerprint", "dlrecap_ready"


class StorageError(RunError):
    """The study's database cannot be reached or used."""


def storage_url(text: str) -> str:
    """A `--storage` value as SQLAlchemy takes it: PostgreSQL through psycopg 3."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if text.startswith(prefix):
            return "postgresql+psycopg://" + text.removeprefix(prefix)
    return text


def shown_url(url: str) -> str:
    """The URL as users write it, without its password, for messages."""
    url = re.sub(r"^postgresql\+psycopg://", "postgresql://", url)
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def heartbeat_s() -> int:
    value = os.environ.get(HEARTBEAT_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else HEARTBEAT_S


@contextlib.contextmanager
def reaching(url: str) -> Iterator[None]:
    """Turns the database's failures into one-line StorageErrors (exit 2)."""
    try:
        yield
    except RunError:
        raise
    except Exception as exc:
        if not _is_storage_failure(exc):
            raise
        reason = first_line(_root_cause(exc))
        raise StorageError(f"storage {shown_url(url)}: {reason}",
                           fix="check that the database is up and the URL is right") from None


def _root_cause(exc: BaseException) -> BaseException:
    """The database driver's own error under SQLAlchemy's and Optuna's wrappers."""
    seen = exc
    while True:
        inner = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
        if inner is None or inner is seen:
            return seen
        seen = inner


def _is_storage_failure(exc: BaseException) -> bool:
    if isinstance(exc, ImportError) and isinstance(exc.__cause__, ModuleNotFoundError):
        exc = exc.__cause__  # Optuna re-raises the missing driver's error as a plain ImportError
    if isinstance(exc, ModuleNotFoundError):  # the URL names a driver that is not installed
        return (exc.name or "").split(".")[0] in ("psycopg", "psycopg2", "pymysql", "MySQLdb")
    names = {cls.__module__.split(".")[0] for cls in type(exc).__mro__}
    return bool(names & {"sqlalchemy", "psycopg", "sqlite3"}) or type(exc).__name__ == "StorageInternalError"


def open_storage(url: str) -> Any:
    """An Optuna RDBStorage with heartbeats on; creates the tables on first use.

    Raises:
        StorageError: the database cannot be reached, or the URL is not one SQLAlchemy knows.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    beat = heartbeat_s()
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):  # several processes write one file: wait for its lock
        engine["connect_args"] = {"timeout": 60}
    elif url.startswith("postgresql"):
        engine["connect_args"] = {"connect_timeout": 10}
    stores = optuna.storages
    retry: dict[str, Any]
    with reaching(url), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeat options are marked experimental
        if hasattr(stores, "RetryHeartbeatStaleTrialCallback"):  # Optuna 4.9 and later
            retry = {"heartbeat_stale_trial_callback": stores.RetryHeartbeatStaleTrialCallback(MAX_RETRIES)}
        else:
            retry = {"failed_trial_callback": stores.RetryFailedTrialCallback(MAX_RETRIES)}
        try:
            return _first_open(lambda: stores.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=beat, grace_period=4 * beat, **retry))
        except ValueError as exc:  # not a database URL SQLAlchemy knows
            raise StorageError(f"--storage {shown_url(url)}: {first_line(exc)}",
                               fix="use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB") from None


def _first_open(make: Any) -> Any:
    """`make()`, again when it raced another worker creating the same tables."""
    for attempt in range(10):
        try:
            return make()
        except Exception as exc:
            text = f"{type(exc).__name__} {exc}"
            if attempt == 9 or not any(s in text for s in ("IntegrityError", "already exists",
                                                           "UniqueViolation")):
                raise
            time.sleep(0.2 + 0.1 * attempt)


def join_study(storage: Any, name: str, fingerprint: str, slots: list[dict[str, Any]],
               direction: str) -> Any:
    """The sweep's study: created and filled with its slots, or joined if it exists.

    Args:
        storage: from `open_storage`.
        name: the study's name (the sweep's).
        fingerprint: the sweep's; a study of this name with another one is refused.
        slots: each slot's encoded values (empty for tpe), in trial order.
        direction: `minimize` or `maximize`.

    Raises:
        StorageError: the study holds another sweep, or its creator never finished filling it.
    """
    import optuna

    try:
        study = optuna.create_study(storage=storage, study_name=name,
                                    direction="maximize" if direction == "maximize" else "minimize")
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=_quiet_sampler())
        _wait_until_ready(study, fingerprint)
        return study
    # Only the starter that created the study fills it, so no slot is enqueued twice.
    study.set_user_attr(_HASH_ATTR, fingerprint)
    for index, params in enumerate(slots):
        study.enqueue_trial(params, user_attrs={"slot": index}, skip_if_exists=False)
    study.set_user_attr(_READY_ATTR, True)
    return study


def load_study(storage: Any, name: str, fingerprint: str) -> Any:
    """An existing study, checked to hold this sweep (for `--status`); None if there is none."""
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=_quiet_sampler())
    except KeyError:
        return None
    _wait_until_ready(study, fingerprint)
    return study


def _quiet_sampler() -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=0)


def _wait_until_ready(study: Any, fingerprint: str) -> None:
    end = time.monotonic() + READY_WAIT_S
    while True:
        attrs = study.user_attrs
        if attrs.get(_HASH_ATTR) not in (None, fingerprint):
            raise StorageError(
                f"the study {study.study_name!r} holds another sweep (its config or settings differ)",
                fix="use the same config and options, or another name: in the config")
        if attrs.get(_READY_ATTR):
            return
        if time.monotonic() > end:
            raise StorageError(f"the study {study.study_name!r} was created but never filled",
                               fix="delete it (optuna delete-study) and start the sweep again")
        time.sleep(0.5)


def encode_slots(space: SearchSpace, params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slots for `join_study`: grid/random values as Optuna stores them; tpe: `trials` empty ones."""
    if space.settings["search"] == "tpe":
        return [{} for _ in range(space.settings["trials"])]
    grid = space.settings["grid"]
    return [{k: json.dumps(v) if k in grid else v for k, v in p.items()} for p in params]


def decode(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    grid = space.settings["grid"]
    return {k: json.loads(params[k]) if k in grid else params[k] for k in space.keys if k in params}


def take_slot(storage: Any, name: str, space: SearchSpace,
              last: dict[str, Any] | None = None) -> Any:
    """Take one waiting slot (RUNNING now, for this worker only) with its values; None if none.

    The database moves a trial from WAITING to RUNNING for one caller only; the tpe values
    are drawn now, from every trial finished or running (constant liar), with a seed of the
    sweep's seed and the slot, so one worker alone repeats the same search. Grid and random
    slots are taken in the order `shape_order` gives after this worker's `last` values.
    """
    import optuna

    study = optuna.load_study(study_name=name, storage=storage, sampler=_quiet_sampler())
    # Not `ask`: it makes a new trial when none waits, past the sweep's count.
    trial_id = _pop_waiting(storage, storage.get_study_id_from_name(name),
                            lambda trials: shape_order(space, trials, last))
    if trial_id is None:
        return None
    study.get_trials(deepcopy=False)  # so the study's cache knows the trial taken
    trial = optuna.Trial(study, trial_id)
    slot = int(trial.user_attrs.get("slot", trial.number))
    study.sampler = _sampler(space, slot)
    for key, dist in distributions(space).items():
        _suggest(trial, key, dist)
    return study, trial, slot


def worker_name() -> str:
    """The `worker` attribute of the trials this process takes: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


# Keys a trial's network does not hold as constants: trials that differ only in these train
# in one kept model, with its compiled functions (`train.warm`).
SHAPE_FREE = ("training.learning_rate", "training.epochs")


def shape_order(space: SearchSpace, trials: dict[str, list[Any]],
                last: dict[str, Any] | None) -> list[Any]:
    """The waiting trials, those a worker should take first first.

    First the ones of the shape this worker trained `last` (it kept that model), then the
    ones of a shape no worker is training now (another worker may take the rest of that
    shape), then the others; in slot order within each.

    Args:
        trials: `{"waiting": [...], "running": [...]}` frozen trials.
    """
    def shape(trial: Any) -> tuple | None:
        fixed = trial.system_attrs.get("fixed_params")
        if not fixed:
            return None  # tpe: drawn when taken
        values = decode(space, fixed)
        return tuple(sorted((k, json.dumps(v)) for k, v in values.items() if k not in SHAPE_FREE))

    mine = None if last is None else tuple(sorted(
        (k, json.dumps(v)) for k, v in last.items() if k not in SHAPE_FREE))
    busy = {shape(t) for t in trials["running"]}

    def rank(trial: Any) -> int:
        here = shape(trial)
        if here is None:
            return 2
        return 0 if here == mine else 1 if here not in busy else 2

    return sorted(trials["waiting"], key=rank)


def _pop_waiting(storage: Any, study_id: int, order: Any) -> int | None:
    """Move one waiting trial to RUNNING; its id, or None when none waits.

    Args:
        order: `{"waiting": [...], "running": [...]}` -> the waiting trials in the order to
            try them.

    One conditional UPDATE, so that exactly one worker gets each trial on SQLite as well:
    Optuna's own pop reads, then writes, and SQLite lets two processes read the same
    WAITING row before either writes (PostgreSQL locks the row; SQLite has no row locks).
    """
    import datetime

    import optuna
    from optuna.storages._rdb import models

    state = optuna.trial.TrialState
    table = models.TrialModel.__table__
    trials = {name: storage.get_all_trials(study_id, deepcopy=False, states=(kind,))
              for name, kind in (("waiting", state.WAITING), ("running", state.RUNNING))}
    for waiting in order(trials):
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # Optuna: naive UTC
        with storage.engine.begin() as conn:
            taken = conn.execute(
                table.update()
                .where(table.c.trial_id == waiting._trial_id, table.c.state == state.WAITING)
                .values(state=state.RUNNING, datetime_start=now))
        if taken.rowcount == 1:
            return waiting._trial_id
    return None


def _sampler(space: SearchSpace, slot: int) -> Any:
    import optuna

    seed = space.settings["seed"] * 100003 + slot
    if space.settings["search"] != "tpe":
        return optuna.samplers.RandomSampler(seed=seed)  # every value is fixed: never asked
    trials = space.settings["trials"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant_liar is marked experimental
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True,
                                          n_startup_trials=max(2, min(10, trials // 3)))


def _suggest(trial: Any, key: str, dist: Any) -> None:
    if hasattr(dist, "choices"):
        trial.suggest_categorical(key, dist.choices)
    elif type(dist).__name__ == "IntDistribution":
        trial.suggest_int(key, dist.low, dist.high, log=dist.log)
    else:
        trial.suggest_float(key, dist.low, dist.high, log=dist.log)


def fail_stale(study: Any) -> None:
    """Fail the trials whose worker stopped sending heartbeats; their slots wait again."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)


def unfinished(study: Any) -> tuple[int, int]:
    """(waiting, running) trials of the study."""
    import optuna

    state = optuna.trial.TrialState
    found = study.get_trials(deepcopy=False, states=(state.WAITING, state.RUNNING))
    waiting = sum(t.state == state.WAITING for t in found)
    return waiting, len(found) - waiting


def set_attrs(trial: Any, attrs: dict[str, Any]) -> None:
    """Store the trial's user attributes in one transaction.

    One commit for all of them, where `trial.set_user_attr` commits each: on SQLite every
    commit waits for the disk (about 20 ms), and a trial's result has a dozen attributes.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: the trial has ended already.
    """
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        storage = getattr(trial.storage, "_backend", trial.storage)  # under Optuna's cache
        write = storage._set_trial_attr_without_commit
        session_of = storage.scoped_session
    except (ImportError, AttributeError):  # an Optuna without these: one commit each
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    with _create_scoped_session(session_of, True) as session:
        for key, value in attrs.items():
            write(session, models.TrialUserAttributeModel, trial._trial_id, key, value)


def finish(study: Any, trial: Any, attrs: dict[str, Any], score: float | None) -> None:
    """Store the trial's result (`attrs`: status, metrics, run...) and end it."""
    import optuna

    try:
        set_attrs(trial, attrs)
        if score is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, score)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Failed for want of heartbeats while it trained (a stalled worker): its slot was
        # queued again, and the retry's result is the one the study keeps.
        pass


def requeue(study: Any, trial: Any, slot: int) -> None:
    """An interrupted trial: end it as failed, and queue its slot again with the same values."""
    import optuna

    params, dists = trial.params, trial.distributions
    trial.set_user_attr("status", "interrupted")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=params, distributions=dists,
        user_attrs={"slot": slot}))


def latest_per_slot(study: Any) -> dict[int, Any]:
    """The current trial of every slot: the last one made for it (a retry replaces a dead one)."""
    found: dict[int, Any] = {}
    for trial in study.get_trials(deepcopy=False):  # in creation order
        found[int(trial.user_attrs.get("slot", trial.number))] = trial
    return found


class Heartbeat:
    """Records the trial's heartbeat every few seconds in a thread, while the block runs."""

    def __init__(self, storage: Any, trial_id: int):
        self.storage, self.trial_id = storage, trial_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()

    def _beat(self) -> None:
        interval = self.storage.get_heartbeat_interval()
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # busy or gone: beat again; the worker finds out when it reports
                pass
            if self.stop.wait(interval):
                return
