"""One sweep, several workers: the Optuna study in SQLite and in a real PostgreSQL server.

Workers are real `dlrecap sweep` processes started together on one study; the server is a
throwaway cluster (postgres.py). Heartbeats are every second here, so that a killed
worker's trial is found stale after 4 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dlrecap.sweep import study as st
from dlrecap.sweep.plan import plan_sweep

from helpers import ENV, invoke, wait_for
from postgres import PostgresServer, free_port

CONFIG = """\
name: xorsweep
data: {dataset: xor, samples: 32}
model: {layers: [4]}
training: {epochs: 1, batch_size: 16}
"""
SEARCH = ["--search", "random", "--range", "training.learning_rate=0.001:0.1:log",
          "--trials", "6", "--seed", "3", "-j", "1"]
WORKER_ENV = {**os.environ, **ENV, "TF_CPP_MIN_LOG_LEVEL": "2", st.HEARTBEAT_ENV: "1"}


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request, tmp_path) -> str:
    """A storage URL with no study in it yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    server = request.getfixturevalue("postgres")
    return server.new_database(f"sweep_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "xorsweep.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def start_worker(config: Path, storage: str, runs_dir: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dlrecap", "sweep", str(config), *SEARCH, "--storage", storage,
         "--runs-dir", str(runs_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**WORKER_ENV, **env})


def finish(workers: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str]]:
    """Each worker's exit code and stderr; kills them all if one hangs."""
    results = []
    try:
        for worker in workers:
            _, err = worker.communicate(timeout=timeout)
            results.append((worker.returncode, err))
    finally:
        for worker in workers:
            worker.kill()
    return results


def trials_of(config: Path, storage: str) -> list:
    """The study's trials, read with Optuna itself (not through dlrecap's code)."""
    import optuna

    name = "xorsweep"
    return optuna.load_study(study_name=name, storage=st.storage_url(storage)).get_trials()


def run_dirs(runs_dirs: list[Path]) -> list[Path]:
    return sorted(p for d in runs_dirs for p in d.glob("xorsweep-sweep-*/xorsweep-*") if p.is_dir())


def test_storage_urls_pick_psycopg_and_hide_passwords():
    assert st.storage_url("postgresql://u:pw@db/x") == "postgresql+psycopg://u:pw@db/x"
    assert st.storage_url("postgres://db/x") == "postgresql+psycopg://db/x"
    assert st.storage_url("sqlite:///a/study.db") == "sqlite:///a/study.db"
    assert st.shown_url("postgresql+psycopg://u:pw@db:5432/x") == "postgresql://u:***@db:5432/x"


@pytest.mark.parametrize("url, reason", [
    ("postgresql://me:secret@127.0.0.1:{port}/nothing", "Connection refused"),
    ("nosuchdb://x/y", "Can't load plugin"),
    ("mysql://me:secret@127.0.0.1/db", "No module named 'MySQLdb'"),  # a driver not installed
])
def test_a_storage_that_cannot_be_reached_is_exit_2_with_the_reason(tmp_path, config, url, reason):
    url = url.format(port=free_port())
    result = invoke("sweep", str(config), *SEARCH, "--storage", url, "--runs-dir", str(tmp_path / "r"))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: storage ") and reason in lines[0], lines
    assert "secret" not in result.stderr and "Traceback" not in result.output


def test_a_study_of_the_same_name_with_another_config_is_refused(tmp_path, config, storage):
    plan = plan_sweep(config, grid=["seed=0,1"])
    st.join_study(st.open_storage(st.storage_url(storage)), plan.name, plan.fingerprint(),
                  st.encode_slots(plan, [t.params for t in plan.trials]), plan.direction)
    result = invoke("sweep", str(config), "--grid", "seed=0,2", "--storage", storage,
                    "--runs-dir", str(tmp_path / "r"))
    assert result.exit_code == 2, result.output
    assert "the study 'xorsweep' holds another sweep" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(trials_of(config, storage)) == 2  # nothing was added to it

    status = invoke("sweep", str(config), "--grid", "seed=0,1", "--storage", storage, "--status")
    assert status.exit_code == 0, status.output
    assert "0 of 2 trials finished (2 pending)" in status.stderr


def test_status_of_a_sweep_never_started_is_exit_2(tmp_path, config):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = invoke("sweep", str(config), *SEARCH, "--storage", url, "--status")
    assert result.exit_code == 2 and "no study named 'xorsweep'" in result.stderr, result.output
    local = invoke("sweep", str(config), *SEARCH, "--status", "--runs-dir", str(tmp_path / "r"))
    assert local.exit_code == 2 and "no sweep of this config" in local.stderr, local.output
    fresh = invoke("sweep", str(config), *SEARCH, "--storage", url, "--fresh")
    assert fresh.exit_code == 2 and "--fresh" in fresh.stderr, fresh.output
    assert not list(tmp_path.glob("r/*"))


@pytest.mark.slow
@pytest.mark.parametrize("storage, workers", [("sqlite", 2), ("postgresql", 3)],
                         indirect=["storage"])
def test_workers_started_together_share_one_study_of_6_trials(tmp_path, config, storage, workers):
    runs_dirs = [tmp_path / f"worker{i}" for i in range(workers)]
    results = finish([start_worker(config, storage, d) for d in runs_dirs])
    assert [code for code, _ in results] == [0] * workers, [err[-2000:] for _, err in results]

    trials = trials_of(config, storage)
    assert len(trials) == 6 and {t.state.name for t in trials} == {"COMPLETE"}
    assert sorted(t.user_attrs["slot"] for t in trials) == list(range(6))
    made = run_dirs(runs_dirs)
    assert sorted(p.name.split("-")[1] for p in made) == ["01", "02", "03", "04", "05", "06"]
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # the work was shared

    status = invoke("sweep", str(config), *SEARCH, "--storage", storage, "--status")
    assert status.exit_code == 0, status.output
    assert "6 of 6 trials finished (6 completed)" in status.stderr
    # the files of the finished study, written by a worker that saw it end
    csvs = [p for d in runs_dirs for p in d.glob("xorsweep-sweep-*/sweep.csv")]
    assert csvs and all(len(p.read_text().splitlines()) == 7 for p in csvs)


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_its_trial_to_another(tmp_path, config, storage):
    paused = tmp_path / "paused"
    doomed = start_worker(config, storage, tmp_path / "doomed", DLRECAP_TEST_PAUSE="first_epoch",
                          DLRECAP_TEST_PAUSE_FILE=str(paused))
    wait_for(paused.exists, 180, what="the first worker's first epoch", processes=[doomed])
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    [(code, err)] = finish([start_worker(config, storage, tmp_path / "survivor")])
    assert code == 0, err[-2000:]

    trials = trials_of(config, storage)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["slot"] for t in done) == list(range(6))  # each slot once
    [dead] = [t for t in trials if t.state.name == "FAIL"]  # the killed one, failed for silence
    assert dead.user_attrs["slot"] in [t.user_attrs["slot"] for t in done]
    assert len(run_dirs([tmp_path / "survivor"])) == 6


@pytest.mark.slow
def test_the_database_going_away_mid_sweep_is_exit_2(tmp_path, config):
    server = PostgresServer()
    try:
        storage = server.url()
        worker = start_worker(config, storage, tmp_path / "w")
        wait_for(lambda: bool(list((tmp_path / "w").glob("xorsweep-sweep-*/xorsweep-*/metrics.json"))),
                 180, what="the first trial", processes=[worker])
        server.stop()
        [(code, err)] = finish([worker])
    finally:
        server.remove()
    lines = err.strip().splitlines()
    assert code == 2, err[-2000:]
    assert lines[-1].startswith("error: storage postgresql://postgres@127.0.0.1:"), lines[-3:]
    assert "Traceback" not in err
