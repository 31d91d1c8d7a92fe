"""Stop signals: who hears SIGINT (Ctrl-C) and SIGTERM, and for how long.

Handlers are installed for a block and the previous ones put back after it, so that a
library call never leaves its handlers behind in the program that called it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# The signals that ask a run to stop: Ctrl-C in a terminal, and a polite kill.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
        handler(signum)

    return on_signal
