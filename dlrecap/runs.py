"""Run directories: create them, write their files atomically, find and list them.

A run directory is `<runs-dir>/<name>-<YYYYmmdd-HHMMSS>[-N]/` holding config.yaml,
model.keras, history.csv and metrics.json (CONTRACT §3).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dlrecap.errors import RunError

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
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
    The temporary name keeps the suffix, because Keras picks the format from it.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    # mkstemp creates the file private (0600); give it the permissions of a normal new file.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


def read_json(directory: Path, name: str, kind: str) -> dict[str, Any]:
    """`directory/name` parsed, or a RunError saying the folder is not a `kind` directory."""
    path = Path(directory) / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{directory} is not a {kind} directory (no {name})") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: unreadable ({exc})") from None


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """metrics.json of a run, or a RunError saying what is wrong with it."""
    return read_json(run_dir, METRICS_FILE, "run")


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
        if metrics.get("status") == "running" and not process_alive(metrics.get("pid")):
            metrics["status"] = "interrupted"  # its process is gone: killed or crashed
        started = metrics.get("started_at") or _stamp_time(match.group("stamp"))
        runs.append(RunInfo(path, metrics.get("name") or match.group("name"), started, metrics))
    # Within one second the suffix counts up: -10 comes after -9, not after -1.
    return sorted(runs, key=lambda r: (r.started, _suffix(r.path.name), r.path.name))


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
