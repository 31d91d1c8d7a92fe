"""Tests for tf.distribute training on CPU: mirrored on two logical devices, two local workers.

Both need TensorFlow set up before it initializes (logical devices, collective ops), so
they run in subprocesses: slow, but the only faithful way to test them on one machine.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dlrecap.config.load import load_config

from helpers import ENV, TINY_MOONS, invoke, wait_for

DLRECAP = Path(sys.executable).parent / "dlrecap"

# Splits the CPU into two logical devices before TensorFlow initializes, then trains the
# config once per `engine,distribute,batch_size` named on the command line.
TWO_DEVICES = textwrap.dedent("""\
    import json, sys
    from pathlib import Path
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from dlrecap.config.load import load_config
    from dlrecap.pipeline import train
    out = {}
    for spec in sys.argv[3:]:
        engine, mode, batch = spec.split(",")
        sets = [f"training.engine={engine}", f"training.distribute={mode}", f"training.batch_size={batch}"]
        out[spec] = train(load_config(Path(sys.argv[1]), sets), Path(sys.argv[2]) / spec).metrics
    print(json.dumps(out))
""")


def _write(folder: Path, text: str = TINY_MOONS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(run_dir / "model.keras", compile=False).get_weights()


def _assert_same_metrics(got: dict, want: dict) -> None:
    for split in ("train", "validation", "test"):
        for name, value in want[split].items():
            assert got[split][name] == pytest.approx(value, rel=1e-3, abs=1e-4), (split, name)


@pytest.mark.slow
def test_mirrored_on_two_logical_devices_matches_one_device(tmp_path):
    config = _write(tmp_path)
    # Keras fit's tf.data shuffle orders batches differently under a strategy, so its runs
    # are compared with one full batch (order-free); the compiled loop uses mini-batches.
    specs = ["fast,none,16", "auto,mirrored,16", "keras,none,512", "keras,mirrored,512"]
    done = subprocess.run([sys.executable, "-c", TWO_DEVICES, str(config), str(tmp_path / "runs"),
                           *specs], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    one, two = found["fast,none,16"], found["auto,mirrored,16"]
    assert (one["engine"], one["distribute"]) == ("fast", "none")
    assert (two["engine"], two["distribute"]) == ("distributed", "mirrored (2 x CPU)")
    assert two["epochs_run"] == one["epochs_run"] == 6
    _assert_same_metrics(two, one)
    one, two = found["keras,none,512"], found["keras,mirrored,512"]
    assert (two["engine"], two["distribute"]) == ("keras", "mirrored (2 x CPU)")
    _assert_same_metrics(two, one)


def _start_workers(config: Path, runs: Path, *extra: str) -> list[subprocess.Popen]:
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        # TMPDIR: the non-chief's run directory stays inside the test's folder.
        env = {**os.environ, **ENV, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(runs.parent)}
        procs.append(subprocess.Popen(
            [str(DLRECAP), "train", str(config), "--quiet", "--runs-dir", str(runs),
             "--set", "training.distribute=multi_worker", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def _backup_epochs(backup: Path) -> int:
    for folder in (backup, backup.with_name(backup.name + ".old")):
        if (folder / "state.json").is_file():
            try:
                return json.loads((folder / "state.json").read_text())["epochs_done"]
            except (OSError, ValueError):  # being replaced right now
                continue
    return 0


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_two_workers_restart_from_the_backup_and_end_with_identical_weights(tmp_path):
    config, runs = _write(tmp_path), tmp_path / "runs"
    backup = runs / ".multi_worker" / "tiny"
    # 1. Two workers train "forever"; both are killed once the chief has backed up 2 epochs.
    procs = _start_workers(config, runs, "--set", "training.epochs=100000")
    try:
        wait_for(lambda: _backup_epochs(backup) >= 2, 400, processes=procs,
                 what="the chief's backup of 2 epochs")
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.communicate()
    done_before = _backup_epochs(backup)
    assert done_before >= 2
    first = [p.name for p in runs.iterdir() if p.name.startswith("tiny-")]
    assert len(first) == 1
    rows_before = json.loads((backup / "state.json").read_text())["rows"] if (
        backup / "state.json").is_file() else None

    # 2. The same command again (2 more epochs): both resume from the backup and finish.
    epochs = done_before + 2
    procs = _start_workers(config, runs, "--set", f"training.epochs={epochs}")
    outs = [p.communicate(timeout=500) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    chief_dir, other_dir = (Path(out.strip().splitlines()[-1]) for out, _ in outs)
    # Only the chief wrote in the runs directory: the run it started, continued.
    assert sorted(p.name for p in runs.iterdir()) == first
    assert chief_dir == runs / first[0]
    assert other_dir.parent.name.startswith("dlrecap-worker-") and other_dir.is_dir()
    assert other_dir.parent.parent == tmp_path  # a temporary folder (TMPDIR), not runs/
    metrics = json.loads((chief_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == epochs
    assert metrics["distribute"].startswith("multi_worker (worker 0 of 2 tasks, 2 replicas")
    assert metrics["engine"] == "distributed"
    history = _history(chief_dir)
    assert [int(r["epoch"]) for r in history] == list(range(1, epochs + 1))
    if rows_before is not None:  # the history from before the kill was kept
        assert [float(r["loss"]) for r in history[:done_before]] == pytest.approx(
            [r["loss"] for r in rows_before], rel=1e-5)
    for mine, theirs in zip(_weights(chief_dir), _weights(other_dir), strict=True):
        np.testing.assert_array_equal(mine, theirs)

    # 3. Split among two workers, with a restart, the result is one device's, uninterrupted.
    from dlrecap.pipeline import train

    single = train(load_config(config, [f"training.epochs={epochs}", "training.engine=fast"]),
                   tmp_path / "single").metrics
    _assert_same_metrics(metrics, single)


def test_multi_worker_without_tf_config_exits_2(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = _write(tmp_path, TINY_MOONS.replace("epochs: 6}", "epochs: 6, distribute: multi_worker}"))
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {config}:5:")
    assert "training.distribute: multi_worker reads the cluster from the TF_CONFIG" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'no "cluster"'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', '"task" must'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', '"task" must'),
])
def test_a_malformed_tf_config_names_the_problem(text, message):
    from dlrecap.errors import ConfigError
    from dlrecap.train.distributed import read_tf_config

    with pytest.raises(ConfigError, match=message):
        read_tf_config(text)


@pytest.mark.parametrize("spec, chief", [
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
     False),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
     True),
])
def test_the_chief_is_the_chief_task_else_worker_0(spec, chief):
    from dlrecap.train.distributed import _is_chief, read_tf_config

    assert _is_chief(read_tf_config(json.dumps(spec))) is chief


@pytest.mark.parametrize("engine, metrics, key", [
    ("keras", ["accuracy"], "training.engine"),
    ("auto", ["auc"], "training.distribute"),
])
def test_multi_worker_refuses_what_its_loop_cannot_do(engine, metrics, key):
    from dlrecap.errors import ConfigError
    from dlrecap.model import Head
    from dlrecap.train.engines import pick_engine

    head = Head(1, "sigmoid", "binary_crossentropy", False, tuple(metrics))
    with pytest.raises(ConfigError) as caught:
        pick_engine(engine, head, np.zeros((4, 2)), distribute="multi_worker")
    assert caught.value.key == key


def test_distributed_modes_use_the_compiled_loop_and_keras_fit_as_fallback():
    from dlrecap.model import Head
    from dlrecap.train.distributed import DistributedEngine
    from dlrecap.train.engines import pick_engine
    from dlrecap.train.keras_engine import KerasEngine

    head = Head(1, "sigmoid", "binary_crossentropy", False, ("accuracy",))
    x = np.zeros((4, 2))
    assert isinstance(pick_engine("auto", head, x, distribute="mirrored"), DistributedEngine)
    assert isinstance(pick_engine("keras", head, x, distribute="mirrored"), KerasEngine)
    auc = Head(1, "sigmoid", "binary_crossentropy", False, ("auc",))
    assert isinstance(pick_engine("auto", auc, x, distribute="mirrored"), KerasEngine)
    assert isinstance(pick_engine("auto", head, x, distribute="multi_worker"), DistributedEngine)
