"""Run one sweep trial as an ordinary training run, in this process or a worker process.

This module imports nothing heavy at the top: worker processes are spawned fresh and must
size TensorFlow's thread pools (through the environment) before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dlrecap import signals

_stop_requested = False


def init_worker(threads: int) -> None:
    """Size TensorFlow's thread pools so that all jobs together use the cores once.

    Args:
        threads: threads per pool for this process, e.g. cores // jobs.
    """
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signals.handle_for_good(_on_interrupt, (signal.SIGINT,))
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


# How long a worker whose parent died lets its trial reach an epoch end before it exits.
ORPHAN_GRACE_S = 10.0


def _exit_with_parent(parent: int) -> None:
    """End this worker soon after its parent is gone (killed with -9, say).

    A dead parent never sends more trials, nor reads results: the running trial stops at
    its next epoch end (recorded as interrupted, so it can be resumed) and the process exits
    instead of idling with TensorFlow's memory.
    """
    global _stop_requested
    while os.getppid() == parent:
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


class _StopAtEpochEnd:
    """A trainer `progress` that ends the trial at an epoch boundary once a stop was asked."""

    def start(self, epochs: int, columns: list[str], done: int = 0) -> None:
        pass

    def epoch(self, epoch: int, logs: dict[str, float]) -> None:
        if _stop_requested:
            raise KeyboardInterrupt  # the trainer records the run as interrupted

    def finish(self) -> None:
        pass


def run_trial(config_path: str, overrides: list[str], runs_dir: str, device: str = "auto") -> dict[str, Any]:
    """Train one trial; never raises for a trial that fails, only for an interruption.

    Args:
        config_path: the sweep's base config.
        overrides: the trial's `KEY=VALUE` strings (the `--set` ones first).
        runs_dir: the sweep directory; the trial's run directory is created inside it.
        device: `auto`, `cpu` or `gpu`.

    Returns:
        `{"status": "completed"|"failed", "run", "error", "unmet", "warnings", "duration_s"}`.

    Raises:
        Interrupted, KeyboardInterrupt: the trial was stopped by a signal.
    """
    from dlrecap.config.load import load_config
    from dlrecap.errors import DlrecapError, Interrupted
    from dlrecap.pipeline import train

    clock = time.perf_counter()
    warnings: list[str] = []
    outcome: dict[str, Any] = {"status": "failed", "run": None, "error": None, "unmet": [],
                               "warnings": warnings}
    try:
        loaded = load_config(config_path, overrides)
        # The trial is a plain run: its config.yaml carries no sweep block to re-sweep.
        loaded = dataclasses.replace(loaded, config=loaded.config.model_copy(update={"sweep": None}))
        _fresh_keras_state()
        if _stop_requested:
            raise KeyboardInterrupt
        result = train(loaded, Path(runs_dir), device=device, progress=_StopAtEpochEnd(),
                       on_warning=warnings.append)
        outcome.update(status="completed", run=str(result.run_dir), unmet=result.unmet)
    except Interrupted:
        raise
    except DlrecapError as exc:
        outcome["error"] = exc.render()
    except Exception as exc:  # one broken trial must not end the sweep; it is recorded
        outcome["error"] = f"internal error: {exc!r}"
    outcome["duration_s"] = round(time.perf_counter() - clock, 3)
    return outcome


def _fresh_keras_state() -> None:
    # Trials share a process: each builds new compiled functions, which TensorFlow would
    # report as "retracing" although it is expected here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # Drop the previous trial's graphs and layer names.
    if "keras" in sys.modules:
        import keras

        keras.backend.clear_session()
