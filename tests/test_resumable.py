"""Tests for dlrecap.resume: which runs `train --resume` may continue, without training any."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from dlrecap import runs
from dlrecap.config.load import load_config
from dlrecap.errors import ConfigError, RunError
from dlrecap.resume import check_resumable, first_difference, resuming

from helpers import make_run_dir

CONFIG = {"seed": 1, "data": {"dataset": "xor"}, "model": {"layers": [8]},
          "training": {"epochs": 10}}


def loaded(tmp_path, overrides=()):
    path = tmp_path / "now.yaml"
    path.write_text(yaml.safe_dump(CONFIG, sort_keys=False), encoding="utf-8")
    return load_config(path, overrides)


def run_dir(tmp_path, **metrics):
    return make_run_dir(tmp_path / "run", metrics=metrics, config=CONFIG)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_interrupted_run_with_the_same_config_may_resume(tmp_path):
    check_resumable(run_dir(tmp_path, status="interrupted"), loaded(tmp_path))


def test_more_epochs_or_another_learning_rate_may_resume(tmp_path):
    now = loaded(tmp_path, ["training.epochs=50", "training.learning_rate=0.5"])
    check_resumable(run_dir(tmp_path, status="interrupted"), now)


def test_a_completed_run_is_refused(tmp_path):
    with pytest.raises(RunError, match="already completed; nothing to resume"):
        check_resumable(run_dir(tmp_path, status="completed"), loaded(tmp_path))


def test_a_run_still_training_is_refused_naming_its_process(tmp_path):
    run = run_dir(tmp_path, status="running", pid=os.getpid())
    with runs.locked(run):  # as the training process holds it
        with pytest.raises(RunError, match=f"is in use by process {os.getpid()} on "):
            with resuming(run, loaded(tmp_path)):
                pass


def test_a_run_whose_process_died_may_resume(tmp_path):
    run = run_dir(tmp_path, status="running", pid=dead_pid())
    (run / runs.LOCK_FILE).write_text("elsewhere 1\n")  # left by a process that is gone
    with resuming(run, loaded(tmp_path)):
        assert runs.is_locked(run)
    assert not runs.is_locked(run)


@pytest.mark.parametrize("override, difference", [
    ("model.layers=[16]", "model.layers[0].units: 8 -> 16"),
    ("seed=2", "seed: 1 -> 2"),
    ("data.dataset=moons", "data.dataset: 'xor' -> 'moons'"),
])
def test_a_change_to_the_model_data_or_seed_is_refused_at_its_key(tmp_path, override, difference):
    run = run_dir(tmp_path, status="interrupted")
    with pytest.raises(ConfigError) as info:
        check_resumable(run, loaded(tmp_path, [override]))
    error = info.value
    assert f"differs from the run being resumed ({difference})" in str(error)
    assert error.key == difference.split(":")[0]
    assert error.source == f"--set {override}"
    assert error.fix == f"use the run's own config, {run / 'config.yaml'}"


@pytest.mark.parametrize("override", ["training.lr_schedule=cosine",
                                      "training.lr_schedule={name: exponential}"])
def test_a_switch_to_a_per_step_schedule_is_refused(tmp_path, override):
    # A fixed rate is an optimizer variable, a schedule is not: the saved state would not fit.
    run = run_dir(tmp_path, status="interrupted")
    with pytest.raises(ConfigError, match="switches between a per-step schedule") as info:
        check_resumable(run, loaded(tmp_path, [override]))
    assert info.value.key == "training.lr_schedule"
    assert info.value.source == f"--set {override}"


def test_a_rate_the_optimizer_holds_may_become_reduce_on_plateau(tmp_path):
    check_resumable(run_dir(tmp_path, status="interrupted"),
                    loaded(tmp_path, ["training.lr_schedule=reduce_on_plateau"]))


@pytest.mark.parametrize("a, b, found", [
    ({"layers": [8, 8]}, {"layers": [8, 8]}, None),
    ({"layers": [8, 8]}, {"layers": [8, 16]}, "m.layers[1]: 8 -> 16"),
    ({"layers": [8]}, {"layers": [8, 8]}, "m.layers: [8] -> [8, 8]"),
    ({"a": 1}, {"a": 1, "b": 2}, "m.b: None -> 2"),
    ({"a": 1, "b": 2}, {"b": 2}, "m.a: 1 -> None"),
    ({"a": {"x": 1}, "b": 1}, {"a": {"x": 2}, "b": 3}, "m.a.x: 1 -> 2"),
    ([{"u": 1}], [{"u": 2}], "m[0].u: 1 -> 2"),
    ({"a": 1}, None, "m: {'a': 1} -> None"),  # a section added or removed
])
def test_first_difference_names_the_first_differing_place(a, b, found):
    assert first_difference(a, b, "m") == found
