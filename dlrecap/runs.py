"""Run directories: create them, write their files and folders atomically, find and list them.

A run directory is `<runs-dir>/<name>-<YYYYmmdd-HHMMSS>[-N]/` holding config.yaml,
model.keras, history.csv and metrics.json (CONTRACT §3).
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dlrecap.errors import RunError

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
DIAGNOSTICS_FILE = "diagnostics.csv"
# The model's surface over the input plane every few epochs (2-feature data); see docs/files.md.
FRAMES_FILE = "boundary_frames.npz"
CHECKPOINT_DIR = "checkpoint"  # what an unfinished run resumes from
LOCK_FILE = ".lock"
_RUN_NAME = re.compile(r"^(?P<name>.+)-(?P<stamp>\d{8}-\d{6})(?:-(?P<n>\d+))?$")


def default_runs_dir() -> Path:
    """`$DLRECAP_RUNS_DIR`, else `./runs`."""
    return Path(os.environ.get("DLRECAP_RUNS_DIR") or "runs")


def create_run_dir(runs_dir: Path, name: str, now: datetime | None = None) -> Path:
    """Make a new, empty run directory; a numeric suffix keeps names unique."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create runs directory {runs_dir}: {exc.strerror}",
                       fix="choose another with --runs-dir") from None
    for n in range(1, 1000):
        path = runs_dir / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunError(f"cannot create {path}: {exc.strerror}",
                           fix="choose another with --runs-dir") from None
    raise RunError(f"too many runs named {name} in the same second in {runs_dir}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    A crash at any moment leaves either the old file or the new one, never half of one.
    The temporary name keeps the suffix, because Keras picks the format from it. An OSError
    (disk full, file too large, permissions) names `path`, not the temporary file.
    """
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(fd)
        # mkstemp creates the file private (0600); give it the permissions of a normal new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with suppress(OSError):
                Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and (exc.filename is None or _is_temporary(exc.filename, path)):
            exc.filename = str(path)
        raise


def _is_temporary(name: Any, path: Path) -> bool:
    """Whether `name` is one of `atomic_path`'s temporary files for `path`."""
    name = Path(os.fsdecode(name))
    return name.parent == path.parent and name.name.startswith(f".{path.stem}.")


@contextmanager
def naming_failures(path: Path) -> Iterator[None]:
    """An OSError raised within the block without a file name (a failed write) names `path`.

    Python's write errors (disk full, file too large) carry no file name; the user needs one.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def write_text(path: Path, text: str, *, durable: bool = False) -> None:
    """Write `text` to `path` atomically.

    The rename alone survives a killed process; `durable` also flushes to disk first, to
    survive a power cut, at a cost of milliseconds (too slow to pay after every epoch).
    """
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())


def write_json(path: Path, data: Any, *, durable: bool = False) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n", durable=durable)


def write_arrays(path: Path, arrays: Mapping[str, Any]) -> None:
    """Write NumPy arrays to the .npz file `path` atomically (uncompressed: fast to rewrite)."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def read_arrays(path: Path) -> dict[str, Any]:
    """The arrays of the .npz file `path`, loaded into memory (no pickled objects).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not a whole .npz file.
    """
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None


def replace_folder(new: Path, target: Path, *, old: Path | None = None) -> None:
    """Put the folder `new` at `target` by renames; the previous `target` is removed only after.

    A kill at any moment leaves one complete version: `target`, or, between the two renames,
    the previous one at `old` (see `complete_folder`).

    Args:
        new: the finished folder, on the same file system as `target`.
        target: where it belongs.
        old: where the previous version waits during the swap (default `<target>.old`).
    """
    old = old if old is not None else _sibling(target, ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def complete_folder(target: Path, marker: str) -> Path | None:
    """The complete version of a folder written by `replace_folder`: `target`, else `<target>.old`.

    Args:
        target: the folder.
        marker: a file written last, whose presence means the folder is complete.
    """
    for path in (target, _sibling(target, ".old")):
        if (path / marker).is_file():
            return path
    return None


def remove_folder(target: Path) -> None:
    """Remove `target` with its `.old` and `.new` companions, if there are any."""
    for suffix in ("", ".old", ".new"):
        shutil.rmtree(_sibling(target, suffix), ignore_errors=True)


def remove_checkpoints(run_dir: Path) -> None:
    """Remove a run's checkpoints, once nothing will resume it."""
    remove_folder(run_dir / CHECKPOINT_DIR)


def _sibling(target: Path, suffix: str) -> Path:
    return target.with_name(target.name + suffix)


def read_history(run_dir: Path) -> list[dict[str, float]]:
    """The rows of a run's history.csv (empty when there is none): `epoch` an int, the rest floats.

    A cell that is empty, or not a number (a file edited by hand or damaged), is left out of
    its row, as a missing value; an `epoch` cell so left out is the row's number, as training
    writes epochs 1, 2, 3, ... in order.

    Raises:
        RunError: the file cannot be read at all, naming it.
    """
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    try:
        # Read whole, then parsed: a file rewritten meanwhile (by hand, without training's
        # atomic writes) cannot give a header from one version and rows from another.
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RunError(f"{path}: unreadable ({exc})") from None
    history = []
    for number, row in enumerate(rows, start=1):
        cells = {k: _number(k, v) for k, v in row.items() if isinstance(k, str) and isinstance(v, str)}
        values = {k: v for k, v in cells.items() if v is not None}
        history.append(values if "epoch" in values else {"epoch": number, **values})
    return history


def _number(column: str, text: str) -> float | None:
    """A history cell's value: an int for `epoch`, else a float; None when it is no number."""
    try:
        value = float(text)
    except ValueError:
        return None
    if column == "epoch":
        return int(value) if value.is_integer() else None
    return value


def history_line(row: Mapping[str, float], columns: Sequence[str]) -> str:
    """One line of history.csv: the row's values in `columns` order, empty where it has none."""
    return ",".join(_cell(row.get(c)) for c in columns)


def write_history(run_dir: Path, columns: Sequence[str], lines: Iterable[str]) -> None:
    """Write a run's history.csv atomically: the header, then one `history_line` per epoch.

    It takes formatted lines, so that a caller rewriting the file after every epoch formats
    each row once and the cost of an epoch stays linear.
    """
    text = "\n".join([",".join(columns), *lines]) + "\n"
    write_text(Path(run_dir) / HISTORY_FILE, text)


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def read_json(directory: Path, name: str, kind: str) -> dict[str, Any]:
    """`directory/name` parsed, or a RunError saying the folder is not a `kind` directory."""
    path = Path(directory) / name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{directory} is not a {kind} directory (no {name})") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: unreadable (a JSON {type(data).__name__}, not an object)")
    return data


# The metrics.json fields every reader relies on, with the types train writes.
_METRICS_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "status": str, "started_at": str, "pid": int, "epochs_run": int,
    "best_epoch": int, "duration_s": (int, float), "task": str, "labels": list,
    "features": list, "train": dict, "validation": dict, "test": dict,
    "weights_epoch": int, "baseline": dict, "expect": dict,
}


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """metrics.json of a run, or a RunError naming the file and the field that is wrong."""
    metrics = read_json(run_dir, METRICS_FILE, "run")
    for key, kind in _METRICS_TYPES.items():
        value = metrics.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise RunError(f"{Path(run_dir) / METRICS_FILE}: unreadable ({key} is a "
                           f"{type(value).__name__})")
    for split in ("train", "validation", "test"):
        for metric, value in (metrics.get(split) or {}).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise RunError(f"{Path(run_dir) / METRICS_FILE}: unreadable "
                               f"({split}.{metric} is not a number)")
    return metrics


@contextmanager
def locked(run_dir: Path, *, wait_s: float = 1.0) -> Iterator[None]:
    """Hold the run directory's lock while a process trains or resumes it.

    `fcntl.flock` on `.lock`: the kernel frees it when the holder exits, killed or not, so a
    lock is never left behind. The file records host and pid, to name the holder. On network
    file systems where flock is not shared between machines, only processes on one machine
    exclude each other.

    Raises:
        RunError: another process holds the lock (exit 2, naming it).
    """
    path = Path(run_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s  # readers hold it shared for a moment
        while not _try_lock(fd, fcntl.LOCK_EX):
            if time.monotonic() > deadline:
                lines = os.pread(fd, 200, 0).decode("utf-8", "replace").splitlines()
                holder = lines[0].split() if lines else []
                who = f"process {holder[1]} on {holder[0]}" if len(holder) == 2 else "another process"
                raise RunError(f"{run_dir} is in use by {who}",
                               fix="wait for it to finish, or stop it first")
            time.sleep(0.05)
        # Written before the old text is cut: a process reading it meanwhile finds a whole
        # first line (this holder's or the last one's), never an empty file.
        holder_line = f"{socket.gethostname()} {os.getpid()}\n".encode()
        os.pwrite(fd, holder_line, 0)
        os.ftruncate(fd, len(holder_line))
        yield
    finally:
        os.close(fd)  # closing releases the lock


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run directory's lock (trains it right now)."""
    try:
        fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        return not _try_lock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def shown_status(run_dir: Path, metrics: dict[str, Any]) -> str:
    """The status to show: `running` with nobody holding the lock means the run was cut short."""
    status = metrics.get("status") or "unknown"
    if status != "running":
        return status
    # A run written before run locks existed has only its pid to go by.
    alive = is_locked(run_dir) if (Path(run_dir) / LOCK_FILE).exists() else process_alive(metrics.get("pid"))
    return status if alive else "interrupted"  # killed, or it could not record its end


def listed_status(metrics: dict[str, Any]) -> str:
    """The status `dlrecap runs` lists: a completed run that missed its `expect:` says so."""
    status = metrics.get("status") or "unknown"
    expect = metrics.get("expect")
    if isinstance(expect, dict) and expect.get("met") is False:
        return f"{status} (expect missed)"
    return status


def epochs_done(run_dir: Path, metrics: dict[str, Any]) -> int | None:
    """Epochs a run has trained: metrics.json's count once it completed, else history.csv's rows.

    A running or killed run records `epochs_run` only at its start and end, while
    history.csv gains a row every epoch.
    """
    recorded = metrics.get("epochs_run")
    if metrics.get("status") == "completed" and isinstance(recorded, int):
        return recorded
    try:
        rows = len(read_history(run_dir))
    except (OSError, ValueError, csv.Error):  # a damaged history: what metrics.json says is all there is
        return recorded if isinstance(recorded, int) else None
    return max(rows, recorded) if isinstance(recorded, int) else rows


def process_alive(pid: Any) -> bool:
    """Whether process `pid` still exists on this machine."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass(frozen=True)
class RunInfo:
    """What `dlrecap runs` shows of a run directory."""

    path: Path
    name: str
    started: str
    metrics: dict[str, Any]


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run directory under `runs_dir`, oldest first."""
    if not runs_dir.is_dir():
        return []
    runs = []
    for path in runs_dir.iterdir():
        match = _RUN_NAME.match(path.name)
        if not match or not (path / METRICS_FILE).is_file():
            continue
        try:
            metrics = read_metrics(path)
        except RunError:
            metrics = {"status": "unreadable"}
        metrics["status"] = shown_status(path, metrics)
        started = metrics.get("started_at") or _stamp_time(match.group("stamp"))
        runs.append(RunInfo(path, metrics.get("name") or match.group("name"), started, metrics))
    # Within one second the suffix counts up: -10 comes after -9, not after -1.
    return sorted(runs, key=lambda r: (r.started, _suffix(r.path.name), r.path.name))


def latest_named(folder: Path, name: str) -> Path | None:
    """The newest run directory in `folder` whose metrics.json names it `name` (any status), or None.

    A cv fold's and a sweep trial's name is unique within its folder: this finds its run.
    """
    found = []
    for path in Path(folder).glob(f"{name}-*"):
        try:
            if read_metrics(path).get("name") == name:
                found.append(path)
        except RunError:
            continue  # no metrics.json, or a damaged one: no run of this name
    return max(found, key=_started, default=None)


def _started(path: Path) -> tuple[str, int]:
    """A run directory's time stamp and suffix, which order runs by when they started."""
    match = _RUN_NAME.match(path.name)
    return (match.group("stamp"), _suffix(path.name)) if match else ("", 0)


def _suffix(name: str) -> int:
    """The count a run name ends with when several start within one second (`-2`), else 1."""
    match = _RUN_NAME.match(name)
    return int(match.group("n") or 1) if match else 1


def _stamp_time(stamp: str) -> str:
    """`20240517-093005` -> `2024-05-17T09:30:05`, so it sorts with `started_at` values."""
    try:
        return datetime.strptime(stamp, "%Y%m%d-%H%M%S").isoformat(timespec="seconds")
    except ValueError:
        return stamp


def find_run(ref: str | None, runs_dir: Path) -> Path:
    """Resolve RUN: a run directory, a config name (its latest run), or None (the latest run).

    Raises:
        RunError: when nothing matches, naming what was searched.
    """
    if ref is not None:
        path = Path(ref)
        if not path.is_dir() and _RUN_NAME.match(ref) and (runs_dir / ref).is_dir():
            path = runs_dir / ref  # a name as `dlrecap runs` shows it
        if path.is_dir():
            if (path / METRICS_FILE).is_file():
                return path
            raise RunError(f"{ref} is not a run directory (no {METRICS_FILE})")
    runs = list_runs(runs_dir)
    if ref is not None:
        runs = [r for r in runs if r.name == ref]
        if not runs:
            names = sorted({r.name for r in list_runs(runs_dir)})
            known = f"; runs there: {', '.join(names)}" if names else ""
            raise RunError(f"no run directory or run named {ref!r} in {runs_dir}{known}")
    if not runs:
        raise RunError(f"no runs in {runs_dir}", fix="train one: dlrecap train configs/xor.yaml")
    return runs[-1].path


def is_run_name(name: str) -> bool:
    """Whether `name` is shaped like a run directory's name, `<name>-<YYYYmmdd-HHMMSS>[-N]`."""
    return _RUN_NAME.match(name) is not None
