"""`dlrecap train CONFIG --watch`: retrain each time the config or its data file is saved.

One process serves the whole session, so TensorFlow and every module are imported once:
a retrain costs the run itself, not the seconds of start-up. Each retrain is an ordinary
run directory, and the new result is shown beside the previous one with the config keys
that changed (`dlrecap.compare`).

Saves are noticed by polling every `POLL_S` seconds: it needs nothing beyond the standard
library and behaves the same on every file system. A file counts as changed when its
content changes (a save that writes the same bytes retrains nothing), and a change counts
once it has settled: editors that write a file in two steps (empty it, then write; or
write a copy, then rename it over) trigger one retrain, not two.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Protocol

from dlrecap.errors import DlrecapError, ExpectationError, Interrupted

if TYPE_CHECKING:
    from dlrecap.compare import Comparison
    from dlrecap.config.load import LoadedConfig
    from dlrecap.pipeline import TrainResult

# How often the files are looked at, and how long a change must hold still to count.
POLL_S = 0.2
SETTLE_S = 0.1
# A file that never holds still (a log being appended to) is taken as it is after this long.
SETTLE_LIMIT_S = 2.0


@dataclass(frozen=True)
class Look:
    """One file as last seen: `(mtime_ns, size)` and a hash of its bytes; None when missing."""

    stat: tuple[int, int] | None
    digest: bytes | None


def look(path: Path, before: Look | None = None) -> Look:
    """How `path` looks now; its bytes are hashed only when its stat differs from `before`'s.

    The config is small and hashed on every look (`before=None`): a save within the file
    system's timestamp granularity that keeps the size is still seen. A large data file is
    hashed only when its time or size moved.
    """
    try:
        st = path.stat()
    except OSError:
        return Look(None, None)
    stat = (st.st_mtime_ns, st.st_size)
    if before is not None and before.stat == stat:
        return before
    digest = hashlib.blake2b(digest_size=16)
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return Look(None, None)
    return Look(stat, digest.digest())


class Watcher:
    """The config file, and the data file it names, as last read.

    Args:
        config: the config file.
        poll_s: seconds between looks.
        settle_s: how long a change must hold still before it counts.
    """

    def __init__(self, config: Path, poll_s: float = POLL_S, settle_s: float = SETTLE_S):
        self.config = config
        self.data: Path | None = None
        self.poll_s, self.settle_s = poll_s, settle_s
        self.seen: dict[Path, Look] = {config: look(config)}

    @property
    def paths(self) -> list[Path]:
        """The files watched: the config, then the data file when there is one."""
        return [self.config, *([self.data] if self.data else [])]

    def follow(self, data: Path | None) -> None:
        """Watch `data` (the config's `data.path`, when it is a file) instead of the previous one.

        Called once a config has been read: the data file is taken as it is now, which is
        close enough to what the run reads next.
        """
        data = data if data is not None and data.is_file() else None
        if data != self.data:
            self.data = data
            self.seen = {p: self.seen.get(p) or look(p) for p in self.paths}

    def _looks(self) -> dict[Path, Look]:
        return {p: look(p, None if p == self.config else self.seen.get(p)) for p in self.paths}

    def wait(self) -> list[Path]:
        """Block until a watched file's content changes and settles; return the files that changed.

        Raises:
            KeyboardInterrupt: Ctrl-C (or SIGTERM, under `signals.command_line`).
        """
        while True:
            now = self._looks()
            if now != self.seen:
                now = self._settled(now)
                changed = [p for p in self.paths if now[p].digest != self.seen[p].digest]
                self.seen = now
                if changed:
                    return changed
            time.sleep(self.poll_s)

    def _settled(self, now: dict[Path, Look]) -> dict[Path, Look]:
        end = time.monotonic() + SETTLE_LIMIT_S
        while time.monotonic() < end:
            time.sleep(self.settle_s)
            again = self._looks()
            if again == now:
                break
            now = again
        return now


class WatchDisplay(Protocol):
    """What a watch session shows between runs (the runs show themselves)."""

    def failed(self, error: DlrecapError) -> None:
        """A config, data or training error: shown, and the session goes on."""

    def compared(self, comparison: Comparison) -> None:
        """The new run beside the previous one: the keys that changed, the metrics."""

    def waiting(self, paths: list[Path]) -> None:
        """The session waits for the next save of `paths`."""

    def saved(self, paths: list[Path]) -> None:
        """`paths` were saved: a retrain starts."""


def data_file(loaded: LoadedConfig) -> Path | None:
    """The config's data file (`data.path`, made absolute by the loader), or None."""
    path = loaded.config.data.path
    return Path(path) if path else None


def watch(config: Path, load: Callable[[], LoadedConfig], train: Callable[[LoadedConfig], TrainResult],
          display: WatchDisplay, watcher: Watcher | None = None) -> NoReturn:
    """Train, then retrain after each save of the config or its data file, until Ctrl-C.

    A run that cannot start (a config saved with an error, a missing data file) or that
    fails (divergence, unmet expectations) is shown and the session goes on watching.

    Args:
        config: the config file.
        load: reads and validates the config as it is now.
        train: trains one run of a loaded config (showing its progress and result).
        display: what is shown between runs.
        watcher: the files' watcher (default: one on `config` with the default timings).

    Raises:
        Interrupted: Ctrl-C or SIGTERM, in a run or between runs.
    """
    watcher = watcher or Watcher(config)
    previous: Path | None = None
    try:
        while True:
            try:
                previous = _attempt(load, train, display, watcher, previous)
            except Interrupted:
                raise
            except DlrecapError as exc:
                display.failed(exc)
            display.waiting(watcher.paths)
            display.saved(watcher.wait())
    except KeyboardInterrupt:
        raise Interrupted(f"stopped watching {config}") from None


def _attempt(load: Callable[[], LoadedConfig], train: Callable[[LoadedConfig], TrainResult],
             display: WatchDisplay, watcher: Watcher, previous: Path | None) -> Path:
    """One run of the config as it is now; return its run directory."""
    from dlrecap.compare import compare_runs

    loaded = load()
    watcher.follow(data_file(loaded))
    fresh_session()
    result = train(loaded)
    if previous is not None and previous.is_dir():
        display.compared(compare_runs([previous, result.run_dir]))
    if result.unmet:
        display.failed(ExpectationError(result.unmet, str(result.run_dir)))
    return result.run_dir


def fresh_session() -> None:
    """Drop the previous run's Keras state (graphs, layer names), as a new process starts.

    Before the first run Keras is not imported yet: nothing to drop, and importing it here
    would bypass the start-up that hides TensorFlow's loading noise (`train.device`).
    """
    from dlrecap.train import warm

    warm.ENABLED = True  # a run of the same shape reuses the last one's compiled functions
    if "keras" in sys.modules:
        import keras

        keras.backend.clear_session()
