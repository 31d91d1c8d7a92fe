"""Run files that are malformed, and run directories in use: exit 2 or an `unreadable` row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dlrecap import runs
from dlrecap.errors import RunError


def run_dir_with(tmp_path: Path, metrics: object, name: str = "x-20240101-000000") -> Path:
    path = tmp_path / name
    path.mkdir(parents=True)
    (path / runs.METRICS_FILE).write_text(json.dumps(metrics), encoding="utf-8")
    return path


@pytest.mark.parametrize("metrics, problem", [
    ([1, 2], "a JSON list, not an object"),
    ("text", "a JSON str, not an object"),
    ({"status": 3}, "status is a int"),
    ({"started_at": 20240101}, "started_at is a int"),
    ({"epochs_run": "7"}, "epochs_run is a str"),
    ({"test": {"accuracy": "high"}}, "test.accuracy is not a number"),
    ({"test": [0.5]}, "test is a list"),
])
def test_malformed_metrics_are_unreadable_naming_file_and_field(tmp_path, metrics, problem):
    run = run_dir_with(tmp_path, metrics)
    with pytest.raises(RunError) as info:
        runs.read_metrics(run)
    assert info.value.exit_code == 2
    assert str(run / runs.METRICS_FILE) in info.value.message and problem in info.value.message


def test_one_malformed_run_does_not_hide_the_others(tmp_path):
    run_dir_with(tmp_path, [1], "bad-20240101-000000")
    run_dir_with(tmp_path, {"started_at": 5}, "worse-20240101-000001")
    run_dir_with(tmp_path, {"status": "completed", "name": "good"}, "good-20240101-000002")
    listed = {r.path.name: r.metrics["status"] for r in runs.list_runs(tmp_path)}
    assert listed == {"bad-20240101-000000": "unreadable", "worse-20240101-000001": "unreadable",
                      "good-20240101-000002": "completed"}


def test_runs_command_lists_a_malformed_run(tmp_path):
    run_dir_with(tmp_path, [1], "bad-20240101-000000")
    done = subprocess.run([sys.executable, "-m", "dlrecap", "runs", "--runs-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "unreadable" in done.stdout


def test_a_second_lock_holder_is_refused_naming_the_first(tmp_path):
    with runs.locked(tmp_path):
        assert runs.is_locked(tmp_path)
        with pytest.raises(RunError) as info, runs.locked(tmp_path, wait_s=0.1):
            pass
    assert f"process {os.getpid()} on " in info.value.message
    assert not runs.is_locked(tmp_path)
    with runs.locked(tmp_path):  # free again once released
        pass


def test_a_lock_dies_with_its_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time, pathlib; from dlrecap import runs\n"
        f"with runs.locked(pathlib.Path({str(tmp_path)!r})):\n"
        "    print('ready', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"  # blocks until the lock is held
        assert runs.is_locked(tmp_path)
        with pytest.raises(RunError, match=f"process {holder.pid} on "):
            with runs.locked(tmp_path, wait_s=0.1):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not runs.is_locked(tmp_path)
    with runs.locked(tmp_path):
        pass


def test_running_without_a_lock_holder_shows_as_interrupted(tmp_path):
    run = run_dir_with(tmp_path, {"status": "running", "pid": os.getpid()})
    (run / runs.LOCK_FILE).touch()  # a lock file nobody holds: the trainer is gone
    assert runs.shown_status(run, runs.read_metrics(run)) == "interrupted"
    with runs.locked(run):
        assert runs.shown_status(run, runs.read_metrics(run)) == "running"
