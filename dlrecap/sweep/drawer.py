"""A sweep's trial pictures, drawn in a process of their own while the next trial trains.

A trial of a small network keeps one core busy; drawing its learning curves, decision
boundary and confusion matrix takes about as long again. The sweep process trains one trial
at a time, so the pictures are handed to a drawing process: it draws them from the run
directory with NumPy alone (as `dlrecap plot` does) and then marks the run completed, so
that, as for any run, `completed` means every file is written. Once the trials are trained,
the sweep process draws the queued ones alongside, and waits for the rest before it ends.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
from pathlib import Path
from typing import Any

# What the drawing process is sent to end.
_DONE = None
# How often an idle drawing process checks that the sweep that started it still runs.
PARENT_CHECK_S = 1.0


class Drawer:
    """The drawing process: `submit` a finished trial's run directory, `close` at the end."""

    def __init__(self) -> None:
        # Spawned, not forked: this process may hold TensorFlow's threads.
        context = multiprocessing.get_context("spawn")
        self._tasks: Any = context.Queue()
        self._done: Any = context.Queue()
        self._process = context.Process(target=_serve, args=(self._tasks, self._done, os.getpid()),
                                         name="dlrecap-pictures", daemon=True)
        self._process.start()
        self._pending: list[str] = []

    def submit(self, run_dir: Path) -> None:
        """Draw the run's pictures, then mark it completed."""
        self._pending.append(str(run_dir))
        self._tasks.put(str(run_dir))

    def close(self) -> list[str]:
        """Wait until every submitted run is drawn and completed; return the warnings.

        The runs still queued are drawn here too, as the drawing process draws the one it
        took (this process has nothing else to do by then), and so are those the drawing
        process left (it died).
        """
        warnings = []
        while self._pending:
            try:  # (a short wait: the drawing process may hold the queue's lock a moment)
                run_dir = self._tasks.get(timeout=0.05)
            except queue.Empty:
                break
            self._pending.remove(run_dir)
            warnings.append(draw_and_complete(Path(run_dir)))
        self._tasks.put(_DONE)
        while self._pending:
            try:
                run_dir, warning = self._done.get(timeout=0.2)
            except queue.Empty:
                if self._process.is_alive():
                    continue
                warnings += [draw_and_complete(Path(run_dir)) for run_dir in self._pending]
                break
            self._pending.remove(run_dir)
            warnings.append(warning)
        self._process.join()
        return [line for line in warnings if line]


def draw_and_complete(run_dir: Path) -> str:
    """Draw a trained run's pictures and mark it completed; a warning when drawing failed."""
    from dlrecap.pipeline import complete_drawn
    from dlrecap.plots import draw_run

    warning = ""
    try:
        draw_run(run_dir, inside=False)
    except Exception as exc:  # noqa: BLE001 - pictures are a convenience; say why and go on
        warning = (f"{run_dir.name}: could not draw the run's pictures "
                   f"({type(exc).__name__}: {exc}); try again with: dlrecap plot {run_dir}")
    complete_drawn(run_dir)
    return warning


def _serve(tasks: Any, done: Any, parent: int) -> None:
    # The sweep decides when to stop: a Ctrl-C there must not cut a run's pictures short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Imported while the first trial trains, not after it.
    import sklearn.model_selection  # noqa: F401 - the data split, when a run is loaded

    import dlrecap.evaluate  # noqa: F401
    import dlrecap.plots  # noqa: F401

    while True:
        try:
            task = tasks.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            if os.getppid() != parent:  # the sweep was killed: nothing more will come
                return
            continue
        if task is _DONE:
            return
        done.put((task, draw_and_complete(Path(task))))
