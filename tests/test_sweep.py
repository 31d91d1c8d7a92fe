"""Tests for `dlrecap sweep`: planning, up-front validation, failing trials, resumption, results."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from dlrecap.config.load import load_config
from dlrecap.sweep.plan import plan_sweep, trial_name

from helpers import invoke

ROOT = Path(__file__).resolve().parents[1]

# Plain SGD on unscaled regression rows: learning rate 100 overflows within a few epochs,
# 0.01 and 0.001 train (slowly, but finitely).
TINY = """\
name: tiny
data:
  dataset: linear
  samples: 40
  standardize: false
model:
  layers: []
training:
  optimizer: sgd
  learning_rate: 0.01
  epochs: 2
  batch_size: 8
"""


def write(folder: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def read_csv(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "sweep.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def count_trainings(monkeypatch):
    """Counts calls of the trainer made in this process (trials of `--jobs 1`)."""
    from dlrecap import pipeline

    calls: list[str] = []
    real = pipeline.train

    def counting(loaded, *args, **kwargs):
        calls.append(loaded.config.name)
        return real(loaded, *args, **kwargs)

    monkeypatch.setattr(pipeline, "train", counting)
    return calls


# --- planning (no training) ---------------------------------------------------------------


def test_grid_is_every_combination_of_file_and_option_values(tmp_path):
    config = write(tmp_path, TINY + "sweep:\n  grid:\n    seed: [0, 1, 2]\n")
    plan = plan_sweep(config, grid=["model.layers=[2],[4, 4]"])
    assert [t.params for t in plan.trials] == [
        {"seed": s, "model.layers": layers} for s in (0, 1, 2) for layers in ([2], [4, 4])]
    assert len({t.name for t in plan.trials}) == 6
    assert plan.trials[1].name == "tiny-02-seed0-layers4x4"
    resolved = load_config(config, plan.trials[1].overrides()).config
    assert resolved.seed == 0 and [layer.units for layer in resolved.model.layers] == [4, 4]
    # an option replaces the file's values for the same key
    assert [t.params for t in plan_sweep(config, grid=["seed=7"]).trials] == [{"seed": 7}]


def test_grid_values_are_yaml_and_exponents_are_numbers(tmp_path):
    plan = plan_sweep(write(tmp_path, TINY), grid=["training.learning_rate=1e-3,0.1",
                                                   "training.optimizer=sgd,adam"])
    assert plan.settings["grid"] == {"training.learning_rate": [0.001, 0.1],
                                     "training.optimizer": ["sgd", "adam"]}
    assert len(plan.trials) == 4


def test_a_range_option_replaces_the_files_grid_for_its_key(tmp_path):
    config = write(tmp_path, TINY + "sweep:\n  grid:\n    training.learning_rate: [0.1, 0.2]\n"
                   "    seed: [0, 1]\n")
    plan = plan_sweep(config, search="random", trials=3, ranges=["training.learning_rate=0.01:0.05"])
    assert plan.settings["grid"] == {"seed": [0, 1]}
    assert all(0.01 <= t.params["training.learning_rate"] <= 0.05 for t in plan.trials)


def test_trial_names_are_valid_run_names():
    name = trial_name("x" * 80, 12, {"model.layers": [64, 64], "training.learning_rate": 1e-4,
                                     "model.initializer": {"name": "random_normal"}})
    assert len(name) <= 80 and name.startswith("x" * 40 + "-12-")
    assert name.replace("-", "").replace("_", "").replace(".", "").isalnum()


def test_random_search_is_repeatable_and_stays_in_range(tmp_path):
    config = write(tmp_path, TINY)
    options = dict(search="random", trials=5, grid=["seed=0,1"],
                   ranges=["training.learning_rate=1e-4:1e-1:log", "training.batch_size=4:16"])
    plan = plan_sweep(config, seed=3, **options)
    params = [t.params for t in plan.trials]
    assert len(params) == 5
    assert all(1e-4 <= p["training.learning_rate"] <= 1e-1 for p in params)
    assert all(type(p["training.batch_size"]) is int and 4 <= p["training.batch_size"] <= 16
               for p in params)
    assert {p["seed"] for p in params} <= {0, 1}
    assert [t.params for t in plan_sweep(config, seed=3, **options).trials] == params
    assert [t.params for t in plan_sweep(config, seed=4, **options).trials] != params


def test_tpe_slots_are_drawn_when_taken_within_the_ranges_and_never_past_the_count(tmp_path):
    from dlrecap.sweep import study as st

    # One hidden layer, so that its activation is something to search over.
    plan = plan_sweep(write(tmp_path, TINY), ["model.layers=[4]"], search="tpe", trials=4,
                      grid=["model.activation=relu,tanh"],
                      ranges=["training.learning_rate=1e-3:1:log"])
    assert plan.trials == []  # tpe draws each trial's values when a worker takes it
    storage = st.open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = st.join_study(storage, plan.name, plan.fingerprint(), st.encode_slots(plan, []),
                          plan.direction)
    assert st.unfinished(study) == (4, 0)
    taken = []
    while (slot := st.take_slot(storage, plan.name, plan)) is not None:
        trial_study, trial, index = slot
        params = st.decode(plan, trial.params)
        assert params["model.activation"] in ("relu", "tanh")
        assert 1e-3 <= params["training.learning_rate"] <= 1
        st.finish(trial_study, trial, {"status": "completed"}, params["training.learning_rate"])
        taken.append(index)
    assert sorted(taken) == [0, 1, 2, 3] and st.unfinished(study) == (0, 0)
    assert len(study.get_trials()) == 4


def test_shipped_sweeps_plan_and_validate():
    activations = plan_sweep(ROOT / "configs/sweeps/activations.yaml")
    assert {t.params["model.activation"] for t in activations.trials} == {
        "linear", "sigmoid", "tanh", "relu"}
    assert len(activations.trials) == 12
    assert len(plan_sweep(ROOT / "configs/sweeps/learning_rate.yaml").trials) == 10


def test_plain_configs_resolve_without_a_sweep_block():
    assert "sweep" not in load_config(ROOT / "configs/xor.yaml").config.resolved()
    sweep = load_config(ROOT / "configs/sweeps/activations.yaml").config.resolved()["sweep"]
    assert sweep["search"] == "grid" and sweep["jobs"] is None


def test_default_jobs_follow_the_cores(monkeypatch):
    import dlrecap.sweep.plan as sweep_plan

    monkeypatch.setattr(sweep_plan, "available_cores", lambda: 2)
    assert sweep_plan.default_jobs(12) == 1  # half the cores
    monkeypatch.setattr(sweep_plan, "available_cores", lambda: 6)
    assert sweep_plan.default_jobs(12) == 3
    assert sweep_plan.default_jobs(2) == 2
    monkeypatch.setattr(sweep_plan, "available_cores", lambda: 64)
    assert sweep_plan.default_jobs(100) == sweep_plan.MAX_DEFAULT_JOBS


# --- bad input stops the sweep before any training ---------------------------------------


def assert_nothing_trained(result, runs: Path) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ") and result.stdout == ""
    assert not runs.exists()


def test_bad_value_in_the_sweep_block_points_at_it(tmp_path):
    text = TINY + "sweep:\n  grid:\n    model.activation: [relu, rleu]\n"
    config = write(tmp_path, text)
    result = invoke("sweep", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert_nothing_trained(result, tmp_path / "runs")
    line = text.splitlines().index("    model.activation: [relu, rleu]") + 1
    col = text.splitlines()[line - 1].index("rleu") + 1
    assert result.stderr.strip() == (
        f"error: {config}:{line}:{col}: sweep.grid.model.activation[1]: "
        "unknown activation 'rleu' (did you mean 'relu'?)")


def test_bad_key_in_a_grid_option_names_the_option(tmp_path):
    config = write(tmp_path, TINY)
    result = invoke("sweep", str(config), "--grid", "model.actvation=relu,tanh",
                    "--runs-dir", str(tmp_path / "runs"))
    assert_nothing_trained(result, tmp_path / "runs")
    assert result.stderr.startswith("error: --grid model.actvation=relu,tanh: model.actvation: ")
    assert "did you mean 'activation'" in result.stderr


@pytest.mark.parametrize(("block", "expected"), [
    ("  search: gird\n", ":14:11: sweep.search: unknown search 'gird' (did you mean 'grid'?)"),
    ("  grid:\n    seed: []\n", ":15:11: sweep.grid.seed: List should have at least 1 item"),
    ("  grid:\n    name: [a, b]\n", "sweep.grid: Value error, 'name' cannot be swept"),
    ("  search: random\n  ranges:\n    training.batch_size: 4:30\n", "quote the range"),
    ("  search: tpe\n  ranges:\n    training.learning_rate: '1:0.1'\n", "is empty"),
    ("  grid:\n    seed: [1]\n  ranges:\n    training.learning_rate: 0.1:1\n", "ranges need a search"),
    ("  grid:\n    training.learning_rate: [0.1, -1]\n",
     "sweep.grid.training.learning_rate[1]: Input should be greater than 0"),
])
def test_bad_sweep_blocks_exit_2_with_their_place(tmp_path, block, expected):
    config = write(tmp_path, TINY + "sweep:\n" + block)
    result = invoke("sweep", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert_nothing_trained(result, tmp_path / "runs")
    assert result.stderr.startswith(f"error: {config}")
    assert expected.replace("Value error, ", "") in result.stderr


def test_nothing_to_sweep_and_ranges_without_search_are_usage_errors(tmp_path):
    config = write(tmp_path, TINY)
    result = invoke("sweep", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert_nothing_trained(result, tmp_path / "runs")
    assert "nothing to sweep" in result.stderr
    result = invoke("sweep", str(config), "--range", "training.learning_rate=1e-3:1",
                    "--runs-dir", str(tmp_path / "runs"))
    assert_nothing_trained(result, tmp_path / "runs")
    assert "--range training.learning_rate=1e-3:1" in result.stderr and "--search" in result.stderr


def test_resume_refuses_a_different_sweep(tmp_path):
    config = write(tmp_path, TINY)
    other = tmp_path / "runs" / "tiny-sweep-20250101-000000"
    other.mkdir(parents=True)
    (other / "sweep.json").write_text(json.dumps({"fingerprint": "another"}))
    result = invoke("sweep", str(config), "--grid", "seed=0,1", "--resume", str(other))
    assert result.exit_code == 2 and "holds a different sweep" in result.stderr
    assert [p.name for p in other.iterdir()] == ["sweep.json"]


# --- running sweeps -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(tmp_path, count_trainings):
    config = write(tmp_path, TINY)
    result = invoke("sweep", str(config), "--grid", "training.learning_rate=0.01,100,0.001",
                    "--set", "training.epochs=8", "--jobs", "1", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert len(count_trainings) == 3
    sweep_dir = Path(result.stdout.strip().splitlines()[-1])
    assert sweep_dir.parent == tmp_path / "runs" and sweep_dir.name.startswith("tiny-sweep-")
    assert "#2 failed: the loss became inf" in result.stderr

    rows = read_csv(sweep_dir)
    assert float(rows[-1]["training.learning_rate"]) == 100  # failed: last
    assert [r["status"] for r in rows] == ["completed", "completed", "failed"]
    losses = [float(r["val_loss"]) for r in rows[:2]]
    assert losses == sorted(losses) and losses == [float(r["validation_loss"]) for r in rows[:2]]
    assert {"epochs", "test_mae", "train_loss", "duration_s"} <= set(rows[0])

    best = load_config(sweep_dir / "best.yaml").config  # ready to train as it is
    assert best.name == "tiny" and best.sweep is None
    assert best.training.learning_rate == float(rows[0]["training.learning_rate"])
    assert (sweep_dir / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # every trial is a normal run directory
    listed = invoke("runs", "--runs-dir", str(sweep_dir))
    assert listed.exit_code == 0 and listed.stdout.count("tiny-0") == 3
    assert "failed" in listed.stdout
    scored = invoke("eval", str(sweep_dir / rows[0]["run"]), "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["metrics"]["mae"] == pytest.approx(float(rows[0]["test_mae"]),
                                                                       rel=1e-4)


@pytest.mark.slow
def test_running_the_same_sweep_again_trains_only_what_did_not_complete(tmp_path, monkeypatch):
    from dlrecap import pipeline

    calls: list[str] = []
    real = pipeline.train

    def interrupting(loaded, *args, **kwargs):  # Ctrl-C during the second trial, once
        calls.append(loaded.config.name)
        if "-02-" in loaded.config.name and calls.count(loaded.config.name) == 1:
            raise KeyboardInterrupt
        return real(loaded, *args, **kwargs)

    monkeypatch.setattr(pipeline, "train", interrupting)
    config = write(tmp_path, TINY)
    args = ["sweep", str(config), "--grid", "training.learning_rate=0.01,0.001", "-j", "1",
            "--runs-dir", str(tmp_path / "runs")]
    first = invoke(*args)
    assert first.exit_code == 130, first.output
    assert "sweep interrupted with 1 of 2 trials completed" in first.stderr
    sweep_dir = next((tmp_path / "runs").glob("tiny-sweep-*"))
    assert (sweep_dir / "study.db").is_file() and len(calls) == 2

    # the interrupted trial waits in the study again, and only it is trained
    resumed = invoke("sweep", "--resume", str(sweep_dir))
    assert resumed.exit_code == 0, resumed.output
    assert Path(resumed.stdout.strip().splitlines()[-1]) == sweep_dir
    assert calls[2:] == [calls[1]] and "1 trial(s) were already done" in resumed.stderr
    assert [r["status"] for r in read_csv(sweep_dir)] == ["completed", "completed"]
    runs_before = sorted(p.name for p in sweep_dir.iterdir() if p.is_dir())
    assert len(runs_before) == 2

    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert len(calls) == 3  # nothing new trained
    assert Path(again.stdout.strip().splitlines()[-1]) == sweep_dir
    assert "2 trial(s) were already done" in again.stderr
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == runs_before


@pytest.mark.slow
def test_jobs_2_trains_short_trials_in_the_sweep_process_without_starting_workers(tmp_path):
    config = write(tmp_path, TINY)
    args = ["sweep", str(config), "--search", "tpe", "--trials", "3", "--seed", "1",
            "--range", "training.learning_rate=0.001:0.01:log", "--jobs", "2",
            "--runs-dir", str(tmp_path / "runs")]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    sweep_dir = Path(result.stdout.strip().splitlines()[-1])
    rows = read_csv(sweep_dir)
    assert len(rows) == 3 and {r["status"] for r in rows} == {"completed"}
    assert all(0.001 <= float(r["training.learning_rate"]) <= 0.01 for r in rows)
    # Three trials of a fraction of a second: a worker would start after they are done.
    pids = {json.loads((sweep_dir / r["run"] / "metrics.json").read_text())["pid"] for r in rows}
    assert pids == {os.getpid()}
    state = json.loads((sweep_dir / "sweep.json").read_text())
    assert [t["status"] for t in state["trials"]] == ["completed"] * 3

    again = invoke(*args)
    assert again.exit_code == 0 and "3 trial(s) were already done" in again.stderr
    assert read_csv(sweep_dir) == rows


@pytest.mark.parametrize(("left", "trial_s", "start_s", "worth"), [
    (5, 0.3, 3.5, False),   # the bench's XOR grid: 1.5 s of work left, a 3.5 s start
    (5, 1.5, 3.5, True),    # 7.5 s left: a worker ready at 3.5 s takes half of the rest
    (2, 3.5, 3.5, False),   # 7 s: exactly twice the start is not enough
    (0, 60.0, 3.5, False),  # nothing left to share
    (3, 60.0, 3.5, True),
])
def test_workers_start_once_the_trials_left_take_more_than_twice_their_start(left, trial_s,
                                                                               start_s, worth):
    from dlrecap.sweep.run import worth_helpers

    assert worth_helpers(left, trial_s, start_s) is worth


def test_the_pace_of_trials_starts_the_workers_once_and_only_when_they_pay(monkeypatch):
    from dlrecap.sweep import run, worker
    from dlrecap.sweep import study as st

    left = [1]
    monkeypatch.setattr(st, "unfinished", lambda study: (left[0], 1))
    monkeypatch.setattr(worker, "_import_s", 3.0)  # a worker starts in about 3 s
    monkeypatch.setattr(run, "import_seconds", worker.import_seconds)
    helpers = run._Helpers(job=SimpleNamespace(url="sqlite://"),
                           plan=SimpleNamespace(total_trials=6), study=None, count=1, progress=None)
    started: list[bool] = []
    monkeypatch.setattr(helpers, "start", lambda: (started.append(True),
                                                   setattr(helpers, "executor", object())))

    def pace(trial_s: float) -> None:
        helpers.next_look = 0.0  # (it weighs the pace at most every LOOK_S)
        helpers.pace(trial_s)

    pace(4.0)  # one trial left: 4 s against a 3 s start
    assert started == []
    left[0] = 5
    pace(1.0)  # 5 s left
    assert started == []
    helpers.pace(2.0)  # 10 s left, but weighed again only after LOOK_S
    assert started == []
    pace(2.0)
    assert started == [True]
    pace(50.0)
    assert started == [True]  # started once


def test_the_display_hears_of_the_workers_trials_but_not_twice_of_this_process(monkeypatch):
    from dlrecap.sweep import run
    from dlrecap.sweep.plan import Trial
    from dlrecap.sweep.results import Row

    here, worker = "host:1", "host:2"
    mine, theirs = Trial(1, "t-01", {}), Trial(2, "t-02", {})
    states = iter([
        [Row(mine, "pending"), Row(theirs, "pending")],  # when the watch starts
        [Row(mine, "running", worker=here), Row(theirs, "running", worker=worker)],
        [Row(mine, "completed", worker=here), Row(theirs, "completed", worker=worker)],
    ])
    monkeypatch.setattr(run, "study_rows", lambda plan, study: next(states))
    heard: list[tuple[str, int]] = []
    progress = SimpleNamespace(trial_started=lambda t: heard.append(("started", t.index)),
                               trial_finished=lambda r: heard.append(("finished", r.trial.index)))
    watch = run._Watch(plan=None, study=None, progress=progress, skip=here)
    watch.poll()
    watch.poll()
    # This process tells the display of its own trials itself.
    assert heard == [("started", 2), ("finished", 2)]


def test_a_process_that_had_tensorflow_already_does_not_time_a_workers_start_by_it(monkeypatch):
    import tensorflow  # noqa: F401 - loaded before the sweep's first trial

    from dlrecap.sweep import worker
    from dlrecap.train import warm

    monkeypatch.setattr(worker, "_libraries_loaded", False)
    monkeypatch.setattr(worker, "_import_s", None)
    monkeypatch.setattr(warm, "ENABLED", warm.ENABLED)
    assert worker._fresh_keras_state() >= 0.0
    # Its import took no time worth the name: the sweep assumes DEFAULT_START_S instead.
    assert worker.import_seconds() is None
