"""Stop signals: who hears SIGINT (Ctrl-C) and SIGTERM, and for how long.

Handlers are installed for a block and the previous ones put back after it, so that a
library call never leaves its handlers behind in the program that called it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

# The signals that ask a run to stop: Ctrl-C in a terminal, and a polite kill.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Test-only: the phase at which `pause_point` waits, and the file that says it is waiting.
PAUSE_PHASE_ENV = "DLRECAP_TEST_PAUSE"
PAUSE_FILE_ENV = "DLRECAP_TEST_PAUSE_FILE"
PAUSE_PHASES = ("startup", "data", "first_epoch", "checkpoint", "final_writes", "pictures")
# Test-only: seconds between checkpoints instead of the default, so that a test can rely on
# none being written between two pauses however slow a loaded machine makes the epochs.
CHECKPOINT_SECONDS_ENV = "DLRECAP_TEST_CHECKPOINT_SECONDS"
# A paused process that nobody signals goes on by itself after this long.
PAUSE_LIMIT_S = 600.0

_received = 0  # stop signals seen by handlers installed here: a pause ends when it changes
_paused: set[str] = set()


@contextmanager
def handled_by(handler: Callable[[int], Any],
               signums: tuple[signal.Signals, ...] = STOP_SIGNALS) -> Iterator[bool]:
    """Within the block, each signal in `signums` calls `handler(signum)`.

    Python lets only the main thread set signal handlers; in any other thread the block
    runs with the handlers as they are.

    Args:
        handler: called with the signal's number; it may raise (e.g. KeyboardInterrupt).
        signums: the signals to handle, SIGINT and SIGTERM unless told otherwise.

    Yields:
        Whether the handlers were installed.

    Example:

    ```python
    seen = []
    with signals.handled_by(seen.append):
        long_work()  # Ctrl-C lands in `seen` instead of raising KeyboardInterrupt
    ```
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {s: signal.signal(s, _calling(handler)) for s in signums}
    try:
        yield True
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def raise_interrupt(_signum: int) -> NoReturn:
    """A handler that turns a stop signal into KeyboardInterrupt, as Python does for Ctrl-C."""
    raise KeyboardInterrupt


@contextmanager
def command_line() -> Iterator[None]:
    """The signal handling of the `dlrecap` command, for the whole of its run.

    SIGTERM stops the command as Ctrl-C does (KeyboardInterrupt: exit 130 with a message,
    the run recorded as interrupted), in every phase; training narrows that to "stop after
    this epoch". SIGXFSZ is ignored, so that a write past the file-size limit (RLIMIT_FSIZE)
    fails with an error the command reports, instead of killing it silently.
    """
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with handled_by(raise_interrupt):
            yield
    finally:
        signal.signal(signal.SIGXFSZ, previous)


def pause_point(phase: str) -> None:
    """Test-only: at `phase`, say so in a file and wait until a stop signal arrives.

    Does nothing unless `$DLRECAP_TEST_PAUSE` names `phase`; then, the first time only, it
    writes `$DLRECAP_TEST_PAUSE_FILE` and sleeps until a signal is handled (a handler that
    raises ends the wait with its exception). Tests use it to send a signal in a known phase
    without guessing with sleeps.

    Args:
        phase: one of `PAUSE_PHASES`.
    """
    if os.environ.get(PAUSE_PHASE_ENV) != phase or phase in _paused:
        return
    _paused.add(phase)
    seen = _received
    ready = os.environ.get(PAUSE_FILE_ENV)
    if ready:
        Path(ready).write_text(f"{phase} {os.getpid()}\n", encoding="utf-8")
    end = time.monotonic() + PAUSE_LIMIT_S
    while _received == seen and time.monotonic() < end:
        time.sleep(0.02)


def handle_for_good(handler: Callable[[int], Any], signums: tuple[signal.Signals, ...]) -> None:
    """From now on, each signal in `signums` calls `handler(signum)`; nothing is put back.

    Only for a process dlrecap owns from start to end, such as a sweep's worker process;
    a library call inside someone else's program uses `handled_by`. Main thread only.
    """
    for s in signums:
        signal.signal(s, _calling(handler))


def _calling(handler: Callable[[int], Any]) -> Callable[[int, Any], None]:
    """A signal handler (`(signum, frame)`) that calls `handler(signum)`."""

    def on_signal(signum: int, _frame: Any) -> None:
        global _received
        _received += 1  # ends a `pause_point` wait
        handler(signum)

    return on_signal
