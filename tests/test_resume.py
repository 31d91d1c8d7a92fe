"""Interrupt and resume with real signals sent to a real `dlrecap train` process."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import wait_for

pytestmark = pytest.mark.slow

CONFIG = """\
name: long
seed: 1
data: {dataset: digits}
model: {layers: [64, 64], dropout: 0.1}
training: {epochs: EPOCHS, batch_size: 16, early_stopping: {patience: 500, min_delta: 0.5}}
"""
DLRECAP = [sys.executable, "-m", "dlrecap"]


def _start(tmp_path: Path, epochs: int) -> tuple[subprocess.Popen, Path, Path]:
    config = tmp_path / "long.yaml"
    # min_delta 0.5: after the first epoch or two nothing counts as an improvement, so a
    # resumed run that kept its early-stopping state keeps its early best epoch
    config.write_text(CONFIG.replace("EPOCHS", str(epochs)))
    runs = tmp_path / "runs"
    proc = subprocess.Popen([*DLRECAP, "train", str(config), "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, config, runs


def _history_epochs(run_dir: Path) -> list[int]:
    if not (run_dir / "history.csv").is_file():
        return []
    with open(run_dir / "history.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _epochs_written(runs: Path) -> int:
    """Rows in history.csv of the run being trained under `runs` (0 before it has one)."""
    return sum(len(_history_epochs(path.parent)) for path in runs.glob("*/history.csv"))


def _run_dir(runs: Path) -> Path:
    (run_dir,) = runs.iterdir()
    return run_dir


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_at_an_epoch_and_resume_continues(tmp_path, signum):
    proc, config, runs = _start(tmp_path, epochs=1000)
    wait_for(lambda: _epochs_written(runs) >= 2, 240, processes=[proc],
             what="2 epochs in history.csv")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    run_dir = _run_dir(runs)
    assert "Traceback" not in err
    assert f"--resume {run_dir}" in err
    stopped = _metrics(run_dir)
    assert stopped["status"] == "interrupted"
    done = stopped["epochs_run"]
    assert _history_epochs(run_dir) == list(range(1, done + 1))

    # Resume with fewer total epochs so the test ends soon; early stopping state carries over.
    total = done + 3
    resumed = subprocess.run(
        [*DLRECAP, "train", str(config), "--resume", str(run_dir), "--quiet",
         "--set", f"training.epochs={total}"], capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    final = _metrics(run_dir)
    assert final["status"] == "completed"
    assert final["resumed_from_epoch"] == done
    assert _history_epochs(run_dir) == list(range(1, final["epochs_run"] + 1))
    assert final["epochs_run"] == total
    assert final["best_epoch"] <= done  # the best value survived the resume
    assert not (run_dir / "checkpoint").exists()


def test_kill_9_leaves_a_resumable_run(tmp_path):
    proc, config, runs = _start(tmp_path, epochs=1000)
    wait_for(lambda: bool(list(runs.glob("*/checkpoint/state.json"))), 240, processes=[proc],
             what="the first checkpoint")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    run_dir = _run_dir(runs)
    listed = subprocess.run([*DLRECAP, "runs", "--runs-dir", str(runs)],
                            capture_output=True, text=True, timeout=60)
    assert "interrupted" in listed.stdout
    saved = json.loads((run_dir / "checkpoint" / "state.json").read_text())["epochs_done"]
    total = saved + 2
    resumed = subprocess.run(
        [*DLRECAP, "train", str(config), "--resume", str(run_dir),
         "--set", f"training.epochs={total}"], capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    final = _metrics(run_dir)
    assert final["status"] == "completed" and final["resumed_from_epoch"] == saved
    # The epochs before the checkpoint are announced, not printed again.
    assert f"resuming after epoch {saved} of {total}\n" in resumed.stderr
    assert f"epoch 1/{total} " not in resumed.stderr and f"epoch {total}/{total} " in resumed.stderr
    assert _history_epochs(run_dir) == list(range(1, final["epochs_run"] + 1))


def test_resume_refuses_a_different_model(tmp_path):
    proc, config, runs = _start(tmp_path, epochs=1000)
    wait_for(lambda: _epochs_written(runs) >= 1, 240, processes=[proc],
             what="1 epoch in history.csv")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    run_dir = _run_dir(runs)
    refused = subprocess.run(
        [*DLRECAP, "train", str(config), "--resume", str(run_dir), "--set", "model.layers=[8]"],
        capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "model.layers" in refused.stderr and "Traceback" not in refused.stderr
    assert _metrics(run_dir)["status"] == "interrupted"
