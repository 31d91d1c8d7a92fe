"""Faults injected for real: full disks, file-size limits, signals in every phase, kill -9,
two resumes at once, damaged run files. Each ends in the contract's exit code, one line of
message and a run that `--resume` finishes.

Subprocesses run `python -m dlrecap`; a test waits for the readiness file that
`DLRECAP_TEST_PAUSE` makes the process write, never for a guessed time.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dlrecap import runs
from dlrecap.signals import CHECKPOINT_SECONDS_ENV, PAUSE_FILE_ENV, PAUSE_PHASE_ENV

from helpers import invoke, make_run_dir, wait_for

DLRECAP = [sys.executable, "-m", "dlrecap"]
TINY = """\
name: tiny
seed: 0
data: {dataset: xor, samples: 64}
model: {layers: [4], dropout: 0.2}
training: {epochs: EPOCHS, batch_size: 16, engine: ENGINE}
"""
TIMEOUT = 300


def write_config(folder: Path, epochs: int = 5, engine: str = "auto") -> Path:
    """tiny.yaml in `folder`; its runs go to `folder/runs`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.yaml"
    path.write_text(TINY.replace("EPOCHS", str(epochs)).replace("ENGINE", engine))
    return path


def command(config: Path, *args: str) -> list[str]:
    runs_dir = config.parent / "runs"
    return [*DLRECAP, "train", str(config), "--runs-dir", str(runs_dir), "--quiet", *args]


def start(config: Path, *args: str, pause: str | None = None,
          file_limit: int | None = None, checkpoint_s: float | None = None) -> subprocess.Popen:
    """`dlrecap train CONFIG ARGS` in a subprocess, paused at `pause`, under a file-size limit,
    checkpointing every `checkpoint_s` seconds instead of the default interval."""
    env = dict(os.environ)
    if checkpoint_s is not None:
        env[CHECKPOINT_SECONDS_ENV] = str(checkpoint_s)
    if pause:
        ready_file(config).unlink(missing_ok=True)  # an earlier pause's
        env.update({PAUSE_PHASE_ENV: pause, PAUSE_FILE_ENV: str(ready_file(config))})

    def limit() -> None:
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.Popen(command(config, *args), env=env, preexec_fn=limit, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def ready_file(config: Path) -> Path:
    return config.parent / "paused"


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """Wait for `proc`; its exit code and stderr."""
    _out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, err


def signal_at(config: Path, phase: str, signum: int, *args: str,
              file_limit: int | None = None) -> tuple[int, str]:
    """Train until `phase`, send `signum` there; the exit code and stderr."""
    proc = start(config, *args, pause=phase, file_limit=file_limit)
    wait_for(ready_file(config).exists, TIMEOUT, what=f"the {phase} pause", processes=[proc])
    proc.send_signal(signum)
    return finish(proc)


def train(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(config, *args), capture_output=True, text=True, timeout=TIMEOUT)


def run_dirs(config: Path) -> list[Path]:
    folder = config.parent / "runs"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def the_run(config: Path) -> Path:
    (run_dir,) = run_dirs(config)
    return run_dir


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def epochs_in(path: Path) -> list[int]:
    """The epoch column of a CSV run file, in file order."""
    with open(path, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def saved_epoch(run_dir: Path) -> int:
    """The epochs the run's checkpoint holds (0 without one)."""
    state = run_dir / "checkpoint" / "state.json"
    return json.loads(state.read_text())["epochs_done"] if state.is_file() else 0


def one_error_line(err: str) -> str:
    """The one line of stderr that is not a warning (a verdict on the result, which is shown
    before the pictures are drawn, may precede it)."""
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def assert_resumes_to_the_end(config: Path, run_dir: Path, epochs: int) -> None:
    done = train(config, "--resume", str(run_dir))
    assert done.returncode == 0, done.stderr
    final = metrics(run_dir)
    assert final["status"] == "completed" and final["epochs_run"] == epochs
    assert epochs_in(run_dir / "history.csv") == list(range(1, epochs + 1))
    assert not (run_dir / "checkpoint").exists()


# --- writes that fail: file-size limit, full disk, permissions ----------------------------


@pytest.mark.slow
@pytest.mark.parametrize("file, limit, epochs, pause", [
    # config.yaml (640 bytes) is the first write: nothing is recorded, nothing left behind
    ("config.yaml", 300, 5, None),
    # checkpoint/weights.npz (3.6 kB), forced at once by a stop request in the first epoch
    ("checkpoint", 2000, 5, "first_epoch"),
    # history.csv passes 4.5 kB near epoch 110; checkpoints and diagnostics stay below
    ("history.csv", 4500, 200, None),
    ("model.keras", 8000, 5, None),  # 28 kB
    ("learning_curves.png", 40000, 5, None),  # the first picture, 60 kB; model.keras fits
])
def test_a_write_past_the_file_size_limit_exits_2_and_the_run_resumes(tmp_path, file, limit,
                                                                      epochs, pause):
    config = write_config(tmp_path, epochs)
    # A third input feature: no boundary frames, whose file (25 kB a frame) would pass every
    # limit here first; their own write failure is tested below.
    config.write_text(config.read_text().replace("samples: 64}", "samples: 64, derive: [x1*x2]}"))
    if pause:
        code, err = signal_at(config, pause, signal.SIGINT, file_limit=limit)
    else:
        code, err = finish(start(config, file_limit=limit))
    assert code == 2, err
    line = one_error_line(err)
    if file == "config.yaml":  # nothing was recorded: the folder is gone, train again
        assert line.startswith("error: cannot write ") and "config.yaml: File too large" in line
        assert line.endswith(f"then train again with: dlrecap train {config})")
        assert run_dirs(config) == []
        assert train(config).returncode == 0
        return
    run_dir = the_run(config)
    assert line == (f"error: cannot write {run_dir / file}: File too large (free disk space or "
                    f"check permissions, then resume with: dlrecap train {config} "
                    f"--resume {run_dir})")
    assert metrics(run_dir)["status"] == "interrupted"
    assert runs.shown_status(run_dir, metrics(run_dir)) == "interrupted"
    assert_resumes_to_the_end(config, run_dir, epochs)


@pytest.mark.parametrize("file, error, nth", [
    ("metrics.json", errno.ENOSPC, 2),  # the results, after the model: metrics.json stays old
    ("history.csv", errno.EACCES, 1),
    ("diagnostics.csv", errno.ENOSPC, 1),
    ("model.keras", errno.EROFS, 1),
    ("learning_curves.png", errno.ENOSPC, 1),
    ("boundary_frames.npz", errno.ENOSPC, 1),  # while training
])
def test_a_full_disk_or_a_denied_write_exits_2_and_the_run_resumes(tmp_path, monkeypatch,
                                                                   file, error, nth):
    config = write_config(tmp_path)
    real_mkstemp = tempfile.mkstemp
    seen = []

    def failing_mkstemp(*args, prefix="", suffix="", dir=None, **kwargs):
        if f"{prefix}x{suffix}" == f".{Path(file).stem}.x{Path(file).suffix}":
            seen.append(file)
            if len(seen) >= nth:
                raise OSError(error, os.strerror(error), str(Path(dir) / f"{prefix}tmp{suffix}"))
        return real_mkstemp(*args, prefix=prefix, suffix=suffix, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", failing_mkstemp)
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    monkeypatch.undo()
    assert result.exit_code == 2, result.output
    run_dir = the_run(config)
    assert one_error_line(result.stderr) == (
        f"error: cannot write {run_dir / file}: {os.strerror(error)} (free disk space or check "
        f"permissions, then resume with: dlrecap train {config} --resume {run_dir})")
    status = runs.shown_status(run_dir, metrics(run_dir))
    assert status == "interrupted"  # recorded, or a stale `running` nobody holds a lock on
    result = invoke("train", str(config), "--resume", str(run_dir), "--quiet")
    assert result.exit_code == 0, result.output
    assert metrics(run_dir)["status"] == "completed"


def test_a_full_disk_after_the_result_line_exits_2_with_the_run_completed(tmp_path, monkeypatch):
    config = write_config(tmp_path)
    real_mkstemp = tempfile.mkstemp

    def failing_mkstemp(*args, prefix="", suffix="", dir=None, **kwargs):
        if prefix == ".boundary." and suffix == ".gif":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(dir) / f"{prefix}tmp{suffix}"))
        return real_mkstemp(*args, prefix=prefix, suffix=suffix, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", failing_mkstemp)
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    monkeypatch.undo()
    run_dir = the_run(config)
    assert result.exit_code == 2, result.output
    assert result.stdout.strip() == str(run_dir)  # the result line came first
    assert one_error_line(result.stderr) == (
        f"error: cannot write {run_dir / 'boundary.gif'}: {os.strerror(errno.ENOSPC)}; the run "
        f"completed (free disk space or check permissions, then draw them with: "
        f"dlrecap plot {run_dir})")
    assert metrics(run_dir)["status"] == "completed"
    assert not list(run_dir.glob(".boundary*"))


# --- signals in every phase ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("phase, signum", [
    ("startup", signal.SIGTERM),
    ("startup", signal.SIGINT),
    ("data", signal.SIGTERM),
])
def test_a_signal_before_training_leaves_nothing(tmp_path, phase, signum):
    config = write_config(tmp_path)
    code, err = signal_at(config, phase, signum)
    assert code == 130, err
    assert one_error_line(err) == "interrupted before training started; nothing was written"
    assert run_dirs(config) == []


@pytest.mark.slow
@pytest.mark.parametrize("phase, signum", [
    ("first_epoch", signal.SIGTERM),
    ("checkpoint", signal.SIGTERM),
    ("final_writes", signal.SIGINT),
])
def test_a_signal_during_training_keeps_a_resumable_run(tmp_path, phase, signum):
    # A checkpoint comes every 2 s at most: enough epochs that one comes before the end.
    epochs = 100_000 if phase == "checkpoint" else 5
    config = write_config(tmp_path, epochs)
    code, err = signal_at(config, phase, signum)
    assert code == 130, err
    run_dir = the_run(config)
    line = one_error_line(err)
    assert line.startswith("interrupted after epoch ")
    assert line.endswith(f"; continue with: dlrecap train {config} --resume {run_dir}")
    stopped = metrics(run_dir)
    assert stopped["status"] == "interrupted"
    assert epochs_in(run_dir / "history.csv") == list(range(1, stopped["epochs_run"] + 1))
    saved = saved_epoch(run_dir)
    if phase != "final_writes":  # a stop request checkpoints its last epoch
        assert saved == stopped["epochs_run"] and line.startswith(f"interrupted after epoch {saved};")
    if phase == "first_epoch":
        assert saved == 1
    if epochs < 1000:
        assert_resumes_to_the_end(config, run_dir, epochs)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_drawing_completes_the_run(tmp_path, signum):
    config = write_config(tmp_path)
    code, err = signal_at(config, "pictures", signum)
    assert code == 130, err
    run_dir = the_run(config)
    assert one_error_line(err) == (
        "interrupted while drawing the pictures; the run completed (model and metrics saved): "
        f"draw them with: dlrecap plot {run_dir}")
    done = metrics(run_dir)
    assert done["status"] == "completed" and done["test"]["loss"] > 0
    assert (run_dir / "model.keras").is_file() and not (run_dir / "checkpoint").exists()
    drawn = subprocess.run([*DLRECAP, "plot", str(run_dir)], capture_output=True, text=True,
                           timeout=TIMEOUT)
    assert drawn.returncode == 0, drawn.stderr
    assert (run_dir / "learning_curves.png").is_file()


# --- the run lock -------------------------------------------------------------------------


def test_resuming_a_run_whose_lock_is_held_exits_2_naming_the_holder(tmp_path):
    run_dir = make_run_dir(tmp_path / "runs" / "tiny-20240101-000000",
                           metrics={"name": "tiny", "status": "running", "pid": 1})
    config = write_config(tmp_path)
    with runs.locked(run_dir):
        result = invoke("train", str(config), "--resume", str(run_dir))
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == (
        f"error: {run_dir} is in use by process {os.getpid()} on {socket.gethostname()} "
        "(wait for it to finish, or stop it first)")
    assert metrics(run_dir) == {"name": "tiny", "status": "running", "pid": 1}


@pytest.mark.slow
def test_of_two_resumes_at_once_exactly_one_trains(tmp_path):
    config = write_config(tmp_path, epochs=20)
    code, err = signal_at(config, "first_epoch", signal.SIGINT)
    assert code == 130, err
    run_dir = the_run(config)
    procs = [start(config, "--resume", str(run_dir)) for _ in range(2)]
    results = [finish(p) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    (winner,) = [p for p, (code, _) in zip(procs, results, strict=True) if code == 0]
    (loser_err,) = [err for code, err in results if code == 2]
    assert one_error_line(loser_err) == (
        f"error: {run_dir} is in use by process {winner.pid} on {socket.gethostname()} "
        "(wait for it to finish, or stop it first)")
    assert metrics(run_dir)["status"] == "completed"
    assert epochs_in(run_dir / "history.csv") == list(range(1, 21))


# --- kill -9 and resume: every run file back at the checkpoint ----------------------------


@pytest.mark.slow
def test_kill_9_then_resume_leaves_each_epoch_once_in_history_and_diagnostics(tmp_path):
    config = write_config(tmp_path, epochs=30)  # under 40 epochs: diagnostics every epoch
    code, err = signal_at(config, "first_epoch", signal.SIGINT)  # a checkpoint at epoch 1
    assert code == 130, err
    run_dir = the_run(config)
    # Resumed, it trains epochs 2-30, writing their rows; killed before it records the end.
    # No checkpoint in between, however slow the machine: the history runs past the checkpoint.
    proc = start(config, "--resume", str(run_dir), pause="final_writes", checkpoint_s=3600)
    wait_for(ready_file(config).exists, TIMEOUT, what="the final_writes pause", processes=[proc])
    proc.kill()
    proc.communicate(timeout=TIMEOUT)
    saved = saved_epoch(run_dir)
    assert saved == 1 and epochs_in(run_dir / "history.csv") == list(range(1, 31))
    assert runs.shown_status(run_dir, metrics(run_dir)) == "interrupted"

    assert_resumes_to_the_end(config, run_dir, 30)
    diagnostics = epochs_in(run_dir / "diagnostics.csv")
    assert diagnostics == sorted(diagnostics) and sorted(set(diagnostics)) == list(range(1, 31))
    assert len(diagnostics) == 2 * 30  # one row per layer (hidden, output) and epoch


# --- an interrupted run ends where an uninterrupted one does ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["keras", "fast", "numpy"])
def test_a_resumed_run_ends_with_the_uninterrupted_test_loss(tmp_path, engine):
    whole = write_config(tmp_path / "whole", epochs=6, engine=engine)
    done = train(whole)
    assert done.returncode == 0, done.stderr
    expected = metrics(the_run(whole))

    cut = write_config(tmp_path / "cut", epochs=6, engine=engine)
    code, err = signal_at(cut, "first_epoch", signal.SIGINT)
    assert code == 130, err
    run_dir = the_run(cut)
    assert metrics(run_dir)["epochs_run"] == 1
    assert_resumes_to_the_end(cut, run_dir, 6)
    resumed = metrics(run_dir)
    assert resumed["engine"] == expected["engine"] == engine
    assert resumed["test"]["loss"] == pytest.approx(expected["test"]["loss"], abs=1e-5)


# --- damaged run files --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["report", "plot"])
def test_a_non_numeric_history_cell_is_a_gap_not_a_crash(tmp_path, command):
    run_dir = make_run_dir(
        tmp_path / "runs" / "tiny-20240101-000000",
        metrics={"name": "tiny", "status": "completed", "epochs_run": 3, "best_epoch": 2},
        history="epoch,loss,val_loss\n1,0.9,1.0\n2,oops,0.8\nthree,0.5,0.7\n",
        config="name: tiny\n")
    assert runs.read_history(run_dir) == [{"epoch": 1, "loss": 0.9, "val_loss": 1.0},
                                          {"epoch": 2, "val_loss": 0.8},
                                          {"epoch": 3, "loss": 0.5, "val_loss": 0.7}]
    result = invoke(command, str(run_dir))
    assert result.exit_code == 0, result.output


@pytest.mark.slow
@pytest.mark.parametrize("keep", ["best", "last"])
def test_a_run_stopped_early_at_its_interrupted_epoch_resumes_without_training(tmp_path, keep):
    # Patience 1 and a min_delta no epoch beats: early stopping stops at epoch 2 every time.
    text = TINY.replace("EPOCHS", "6").replace("ENGINE", "auto").replace(
        "engine: auto}", f"engine: auto, keep: {keep}, early_stopping: {{patience: 1, min_delta: 100}}}}")
    whole = tmp_path / "whole" / "tiny.yaml"
    cut = tmp_path / "cut" / "tiny.yaml"
    for config in (whole, cut):
        config.parent.mkdir()
        config.write_text(text)
    done = train(whole)
    assert done.returncode == 0, done.stderr
    expected = metrics(the_run(whole))
    assert expected["epochs_run"] == 2 and expected["stopped_early"]

    # A checkpoint after every epoch; the signal, sent during epoch 1's, stops after epoch 2:
    # the epoch at which early stopping stops.
    proc = start(cut, pause="checkpoint", checkpoint_s=0)
    wait_for(ready_file(cut).exists, TIMEOUT, what="the checkpoint pause", processes=[proc])
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code == 130, err
    run_dir = the_run(cut)
    assert saved_epoch(run_dir) == 2

    assert_resumes_to_the_end(cut, run_dir, 2)
    resumed = metrics(run_dir)
    for key in ("epochs_run", "best_epoch", "weights_epoch", "stopped_early"):
        assert resumed[key] == expected[key], key
    assert resumed["test"]["loss"] == pytest.approx(expected["test"]["loss"], abs=1e-5)
    rows, expected_rows = runs.read_history(run_dir), runs.read_history(the_run(whole))
    assert len(rows) == len(expected_rows)
    for row, expected_row in zip(rows, expected_rows, strict=True):
        assert row == pytest.approx(expected_row, abs=1e-5)
