"""`sweep --jobs 2` with long trials: a worker process joins the sweep process, Ctrl-C stops
both, and kill -9 of the sweep leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFIG = """\
name: orphans
data: {dataset: xor, samples: 64}
model: {layers: [4]}
training: {epochs: 100000, batch_size: 8}
sweep:
  grid:
    seed: [0, 1]
"""


def _trial_pids(runs_dir: Path) -> set[int]:
    """Pids of trials that have started training (their metrics.json says so)."""
    pids = set()
    for metrics in runs_dir.glob("**/metrics.json"):
        try:
            info = json.loads(metrics.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being replaced right now
        if isinstance(info, dict) and info.get("status") == "running":
            pids.add(info["pid"])
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose; its parent (init) reaps it.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def _wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def _start_sweep(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """`dlrecap sweep --jobs 2` of CONFIG's two endless trials, in a process group of its own."""
    config = tmp_path / "orphans.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    runs_dir = tmp_path / "runs"
    sweep = subprocess.Popen([sys.executable, "-m", "dlrecap", "sweep", str(config), "--jobs", "2",
                              "--runs-dir", str(runs_dir)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    return sweep, runs_dir


@pytest.mark.slow
def test_workers_exit_when_the_sweep_parent_is_killed(tmp_path):
    parent, runs_dir = _start_sweep(tmp_path)
    try:
        # The sweep process trains one trial; its first epochs say the trials are long, so
        # it starts a worker process, which takes the other.
        assert _wait_until(lambda: len(_trial_pids(runs_dir)) == 2, timeout=240), "trials never started"
        workers = _trial_pids(runs_dir) - {parent.pid}
        assert len(workers) == 1
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait_until(lambda: not any(_alive(p) for p in workers), timeout=60), \
            f"workers still running: {[p for p in workers if _alive(p)]}"
    finally:
        os.killpg(parent.pid, signal.SIGKILL) if _group_alive(parent.pid) else None


@pytest.mark.slow
def test_a_worker_joins_long_trials_and_ctrl_c_stops_both_trials_resumably(tmp_path):
    sweep, runs_dir = _start_sweep(tmp_path)
    try:
        assert _wait_until(lambda: len(_trial_pids(runs_dir)) == 2, timeout=240), "trials never started"
        assert sweep.pid in _trial_pids(runs_dir)  # one trial trains in the sweep process
        os.killpg(sweep.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole group
        _, err = sweep.communicate(timeout=120)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL) if _group_alive(sweep.pid) else None
    assert sweep.returncode == 130, err
    assert "sweep interrupted with 0 of 2 trials completed" in err
    statuses = sorted(json.loads(m.read_text())["status"] for m in runs_dir.glob("*/*/metrics.json"))
    assert statuses == ["interrupted", "interrupted"]
    assert _wait_until(lambda: not _group_alive(sweep.pid), timeout=60), "processes left behind"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
