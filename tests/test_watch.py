"""`dlrecap train CONFIG --watch`: the file watcher alone, then a real watch process end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dlrecap.watch import Watcher, look

from helpers import ENV, invoke, wait_for

FAST = {"poll_s": 0.01, "settle_s": 0.05}


def _wait_in_thread(watcher: Watcher) -> tuple[threading.Thread, list[list[Path]]]:
    seen: list[list[Path]] = []
    thread = threading.Thread(target=lambda: seen.append(watcher.wait()), daemon=True)
    thread.start()
    return thread, seen


def test_a_save_of_the_same_bytes_is_not_a_change_and_new_bytes_are(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("seed: 0\n")
    watcher = Watcher(config, **FAST)
    thread, seen = _wait_in_thread(watcher)
    config.write_text("seed: 0\n")
    os.utime(config, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    thread.join(0.5)
    assert thread.is_alive() and seen == []  # still waiting
    config.write_text("seed: 2\n")
    thread.join(5)
    assert seen == [[config]]


def test_a_config_saved_with_its_time_and_size_kept_is_judged_by_its_bytes(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("seed: 0\n")
    kept = config.stat()

    def save(text: str) -> None:
        """An atomic save (a renamed temporary file) that keeps the modification time."""
        new = tmp_path / "c.yaml.tmp"
        new.write_text(text)
        os.utime(new, ns=(kept.st_atime_ns, kept.st_mtime_ns))
        os.replace(new, config)

    watcher = Watcher(config, **FAST)
    thread, seen = _wait_in_thread(watcher)
    save("seed: 0\n")
    thread.join(0.5)
    assert thread.is_alive() and seen == []  # the same bytes: still waiting
    save("seed: 7\n")
    assert look(config).stat == watcher.seen[config].stat  # only the bytes tell
    thread.join(5)
    assert seen == [[config]]


def test_an_editor_that_writes_twice_triggers_one_change(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("seed: 0\n")
    watcher = Watcher(config, poll_s=0.01, settle_s=0.3)
    thread, seen = _wait_in_thread(watcher)
    config.write_text("")  # the first write empties the file ...
    time.sleep(0.1)
    config.write_text("seed: 3\n")  # ... the second fills it, within the settling time
    thread.join(5)
    assert seen == [[config]]
    assert watcher.seen[config] == look(config)  # the change counted is the settled content


def test_the_data_file_is_watched_once_followed(tmp_path):
    config, data, other = tmp_path / "c.yaml", tmp_path / "d.csv", tmp_path / "e.csv"
    for path in (config, data, other):
        path.write_text("x,y\n1,2\n")
    watcher = Watcher(config, **FAST)
    watcher.follow(data)
    watcher.follow(tmp_path)  # a folder is not followed: the data file is dropped
    assert watcher.paths == [config]
    watcher.follow(data)
    assert watcher.paths == [config, data]
    thread, seen = _wait_in_thread(watcher)
    data.write_text("x,y\n1,3\n")
    thread.join(5)
    assert seen == [[data]]


def test_watch_refuses_resume_and_a_missing_config(tmp_path):
    result = invoke("train", "configs/xor.yaml", "--watch", "--resume", "latest")
    assert result.exit_code == 2 and "--watch" in result.stderr
    result = invoke("train", str(tmp_path / "missing.yaml"), "--watch")
    assert result.exit_code == 2 and "missing.yaml" in result.stderr


TINY = """\
name: tiny
seed: 0
data: {dataset: xor, samples: 64}
model: {layers: [4]}
training: {epochs: 3, batch_size: 16, learning_rate: RATE}
"""


def _completed(runs_dir: Path) -> list[Path]:
    done = []
    for metrics in sorted(runs_dir.glob("*/metrics.json")):
        try:
            if json.loads(metrics.read_text())["status"] == "completed":
                done.append(metrics.parent)
        except (ValueError, KeyError):  # being written
            continue
    return done


@pytest.mark.slow
def test_a_watch_session_retrains_on_save_survives_a_broken_save_and_stops_on_ctrl_c(tmp_path):
    config, runs_dir = tmp_path / "tiny.yaml", tmp_path / "runs"
    config.write_text(TINY.replace("RATE", "0.05"))
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "dlrecap", "train", str(config), "--watch",
                                 "--runs-dir", str(runs_dir)], stdout=stdout, stderr=stderr,
                                env={**os.environ, **ENV})
    try:
        wait_for(lambda: len(_completed(runs_dir)) == 1, 120, what="the first run",
                 processes=[proc])
        wait_for(lambda: "watching" in err.read_text(), 30, what="watching", processes=[proc])
        config.write_text(TINY.replace("RATE", "0.02"))
        wait_for(lambda: len(_completed(runs_dir)) == 2, 60, what="the retrain", processes=[proc])
        wait_for(lambda: "training.learning_rate" in out.read_text(), 30,
                 what="the changed key", processes=[proc])
        first, second = _completed(runs_dir)
        changed = next(line for line in out.read_text().splitlines()
                       if "training.learning_rate" in line)
        assert changed.split()[2:] == ["│", "0.05", "│", "0.02", "│"], changed
        assert f"{first.name}" in out.read_text() and f"{second.name}" in out.read_text()

        config.write_text(TINY.replace("RATE", "fast"))  # saved with an error
        wait_for(lambda: "training.learning_rate" in err.read_text(), 30,
                 what="the config error", processes=[proc])
        error = next(line for line in err.read_text().splitlines() if line.startswith("error:"))
        assert f"{config}:5:" in error and "Traceback" not in err.read_text()
        assert proc.poll() is None and len(list(runs_dir.iterdir())) == 2  # still watching

        config.write_text(TINY.replace("RATE", "0.05"))  # fixed, back to the first config
        wait_for(lambda: len(_completed(runs_dir)) == 3, 60, what="the run after the fix",
                 processes=[proc])
        # The same config in the same process trains exactly as it did the first time.
        third = _completed(runs_dir)[2]
        assert (third / "history.csv").read_text() == (first / "history.csv").read_text()
        assert (third / "history.csv").read_text() != (second / "history.csv").read_text()
        wait_for(lambda: err.read_text().count("watching") == 4, 30, what="watching again",
                 processes=[proc])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
        assert f"stopped watching {config}" in err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
