"""Tests for dlrecap.runs: naming, atomic writes, finding and listing run directories."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest

from dlrecap import runs
from dlrecap.errors import RunError
from dlrecap.evaluate import evaluate_run

from helpers import invoke, make_run_dir

NOW = datetime(2024, 5, 17, 9, 30, 5)


def make_run(runs_dir: Path, name: str, started: str | None, status: str = "completed",
             now: datetime = NOW) -> Path:
    """A run directory with only metrics.json, as train leaves it before the model exists."""
    metrics = {"name": name, "status": status}
    if started:
        metrics["started_at"] = started
    return make_run_dir(runs.create_run_dir(runs_dir, name, now), metrics=metrics)


# --- naming ------------------------------------------------------------------------------


def test_run_dir_name_is_name_and_timestamp(tmp_path):
    path = runs.create_run_dir(tmp_path / "runs", "xor", NOW)
    assert path == tmp_path / "runs" / "xor-20240517-093005"
    assert path.is_dir() and not any(path.iterdir())


def test_a_missing_runs_dir_is_created_with_its_parents(tmp_path):
    run = runs.create_run_dir(tmp_path / "a" / "runs", "xor", NOW)
    assert run.is_dir() and run.parent == tmp_path / "a" / "runs"


def test_taken_names_get_a_suffix(tmp_path):
    made = [runs.create_run_dir(tmp_path, "xor", NOW) for _ in range(3)]
    assert [p.name for p in made] == [
        "xor-20240517-093005", "xor-20240517-093005-2", "xor-20240517-093005-3"]


def test_runs_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    with pytest.raises(RunError, match="cannot create runs directory"):
        runs.create_run_dir(blocker, "xor", NOW)


def test_default_runs_dir(monkeypatch):
    monkeypatch.setenv("DLRECAP_RUNS_DIR", "/somewhere/runs")
    assert runs.default_runs_dir() == Path("/somewhere/runs")
    monkeypatch.delenv("DLRECAP_RUNS_DIR")
    assert runs.default_runs_dir() == Path("runs")


# --- atomic writes -----------------------------------------------------------------------


def test_write_text_replaces_content_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "history.csv"
    runs.write_text(target, "epoch,loss\n1,0.5\n")
    runs.write_text(target, "epoch,loss\n1,0.5\n2,0.4\n")
    assert target.read_text() == "epoch,loss\n1,0.5\n2,0.4\n"
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    runs.write_json(target, {"status": "running"})
    with pytest.raises(RuntimeError):
        with runs.atomic_path(target) as tmp:
            tmp.write_text('{"status": "compl')  # half written when the "crash" comes
            raise RuntimeError("crash")
    assert json.loads(target.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_write_that_fails_midway_keeps_the_old_file_whole(tmp_path):
    target = tmp_path / "history.csv"
    runs.write_text(target, "epoch,loss\n1,0.5\n")
    # A lone surrogate cannot be encoded: the write fails after the file was opened.
    with pytest.raises(UnicodeEncodeError):
        runs.write_text(target, "epoch,loss\n1,0.5\n2,\ud800\n")
    assert target.read_text() == "epoch,loss\n1,0.5\n"
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]


def test_write_text_lands_in_one_rename(tmp_path, monkeypatch):
    renames = []
    real_replace = os.replace

    def recording_replace(source, destination):
        renames.append((Path(source), Path(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", recording_replace)
    target = tmp_path / "metrics.json"
    runs.write_text(target, "{}\n", durable=True)
    ((tmp, final),) = renames
    assert final == target and tmp.parent == tmp_path and not tmp.exists()
    assert target.read_text() == "{}\n"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_of_a_normal_new_file(tmp_path, umask, mode):
    # mkstemp makes its files private (0600) whatever the umask; others must read a run
    old = os.umask(umask)
    try:
        runs.write_text(tmp_path / "history.csv", "epoch\n")
        runs.write_json(tmp_path / "metrics.json", {})
        with runs.atomic_path(tmp_path / "model.keras") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    for name in ("history.csv", "metrics.json", "model.keras"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_atomic_temp_file_keeps_the_suffix(tmp_path):
    # Keras picks the save format from the file name's suffix.
    with runs.atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == tmp_path and tmp.name != "model.keras"
        tmp.write_bytes(b"x")
    assert (tmp_path / "model.keras").read_bytes() == b"x"


def test_write_json_round_trips(tmp_path):
    runs.write_json(tmp_path / "m.json", {"a": [1, 2.5, None], "b": "ü"})
    assert json.loads((tmp_path / "m.json").read_text(encoding="utf-8")) == {
        "a": [1, 2.5, None], "b": "ü"}


# --- reading, listing --------------------------------------------------------------------


def test_read_metrics_errors(tmp_path):
    with pytest.raises(RunError, match="is not a run directory"):
        runs.read_metrics(tmp_path)
    (tmp_path / runs.METRICS_FILE).write_text("{half")
    with pytest.raises(RunError, match="unreadable"):
        runs.read_metrics(tmp_path)


def test_list_runs_oldest_first(tmp_path):
    late = make_run(tmp_path, "b", "2024-05-17T10:00:00", now=datetime(2024, 5, 17, 10))
    early = make_run(tmp_path, "a", "2024-05-17T08:00:00", now=datetime(2024, 5, 17, 8))
    middle = make_run(tmp_path, "c", "2024-05-17T09:00:00", now=datetime(2024, 5, 17, 9))
    assert [r.path for r in runs.list_runs(tmp_path)] == [early, middle, late]


def test_list_runs_orders_suffixes_numerically(tmp_path):
    made = [make_run(tmp_path, "x", "2024-05-17T09:30:05") for _ in range(11)]
    assert [r.path for r in runs.list_runs(tmp_path)] == made


def test_list_runs_with_unreadable_metrics_still_sorts_by_time(tmp_path):
    old = make_run(tmp_path, "a", None, now=datetime(2024, 1, 1))
    (old / runs.METRICS_FILE).write_text("{broken")
    new = make_run(tmp_path, "b", "2024-05-17T09:30:05")
    found = runs.list_runs(tmp_path)
    assert [r.path for r in found] == [old, new]
    assert found[0].metrics["status"] == "unreadable"


def test_list_runs_skips_other_folders_and_files(tmp_path):
    run = make_run(tmp_path, "a", "2024-05-17T09:30:05")
    (tmp_path / "notes").mkdir()
    (tmp_path / "x-20240101-000000").mkdir()  # no metrics.json: not (yet) a run
    (tmp_path / "file-20240101-000000").write_text("")
    assert [r.path for r in runs.list_runs(tmp_path)] == [run]
    assert runs.list_runs(tmp_path / "missing") == []


def test_latest_named_finds_the_newest_run_of_that_name_only(tmp_path):
    made = [make_run(tmp_path, "fold-1", "2024-05-17T09:30:05") for _ in range(10)]
    make_run(tmp_path, "fold-10", "2024-05-17T09:30:06")  # another name, sharing the prefix
    damaged = make_run(tmp_path, "fold-1", None, now=datetime(2024, 5, 18))
    (damaged / runs.METRICS_FILE).write_text("{broken")
    (tmp_path / "fold-1-20240519-000000").mkdir()  # no metrics.json
    assert runs.latest_named(tmp_path, "fold-1") == made[-1]  # -10 is newer than -9
    assert runs.latest_named(tmp_path, "fold-2") is None


# --- what `dlrecap runs` shows ----------------------------------------------------------


@pytest.fixture
def wide(monkeypatch):
    """A console wide enough that no table cell wraps, however the test process started."""
    from dlrecap import console

    monkeypatch.setattr(console.out, "width", 200)


def _listed(runs_dir: Path) -> list[str]:
    """The table rows `dlrecap runs` prints (without the frame)."""
    result = invoke("runs", "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    return [line for line in result.stdout.splitlines() if "-2024" in line]


def test_runs_shows_a_missed_expectation(tmp_path, wide):
    missed = {"met": False, "checks": [{"key": "test_accuracy", "op": ">=", "threshold": 0.9,
                                        "value": 0.5, "met": False}]}
    make_run_dir(runs.create_run_dir(tmp_path, "a", NOW), metrics={
        "name": "a", "status": "completed", "epochs_run": 5, "expect": missed})
    make_run_dir(runs.create_run_dir(tmp_path, "b", NOW), metrics={
        "name": "b", "status": "completed", "epochs_run": 5, "expect": {"met": True, "checks": []}})
    (a, b) = _listed(tmp_path)
    assert "completed (expect missed)" in a
    assert "completed" in b and "expect" not in b


def test_runs_counts_a_killed_runs_epochs_from_its_history(tmp_path, wide):
    # Killed (-9) while training: metrics.json still says what it said at the start.
    history = "epoch,loss,val_loss\n" + "".join(f"{e},0.5,0.6\n" for e in range(1, 8))
    run = make_run_dir(runs.create_run_dir(tmp_path, "a", NOW), history=history, metrics={
        "name": "a", "status": "running", "pid": 2**22 + 1})
    assert runs.epochs_done(run, runs.read_metrics(run)) == 7
    (row,) = _listed(tmp_path)
    assert "interrupted" in row and " 7 " in row
    # a resumed run's stale count, too
    make_run_dir(run, metrics={"name": "a", "status": "interrupted", "epochs_run": 3})
    assert runs.epochs_done(run, runs.read_metrics(run)) == 7


def test_a_completed_run_keeps_its_recorded_epochs(tmp_path):
    run = make_run_dir(tmp_path / "r", metrics={"status": "completed", "epochs_run": 4},
                       history="epoch,loss\n1,0.5\n")
    assert runs.epochs_done(run, runs.read_metrics(run)) == 4


# --- find_run ----------------------------------------------------------------------------


def test_find_run_latest_by_name_and_by_path(tmp_path):
    a1 = make_run(tmp_path, "a", "2024-05-17T08:00:00", now=datetime(2024, 5, 17, 8))
    a2 = make_run(tmp_path, "a", "2024-05-17T10:00:00", now=datetime(2024, 5, 17, 10))
    b = make_run(tmp_path, "b", "2024-05-17T09:00:00", now=datetime(2024, 5, 17, 9))
    assert runs.find_run(None, tmp_path) == a2
    assert runs.find_run("a", tmp_path) == a2
    assert runs.find_run("b", tmp_path) == b
    assert runs.find_run(str(a1), tmp_path) == a1


def test_find_run_by_the_name_runs_shows(tmp_path, monkeypatch):
    run = make_run(tmp_path / "runs", "a", "2024-05-17T08:00:00")
    monkeypatch.chdir(tmp_path.parent)  # the bare directory name is not a path from here
    assert runs.find_run(run.name, tmp_path / "runs") == run


def test_find_run_errors(tmp_path):
    with pytest.raises(RunError, match="no runs in") as info:
        runs.find_run(None, tmp_path)
    assert "dlrecap train" in info.value.render()
    make_run(tmp_path, "a", "2024-05-17T08:00:00")
    with pytest.raises(RunError, match=r"no run directory or run named 'zz' .*runs there: a"):
        runs.find_run("zz", tmp_path)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(RunError, match="is not a run directory"):
        runs.find_run(str(plain), tmp_path)


# --- eval of a run without a model -------------------------------------------------------


def test_eval_of_a_run_without_a_model_says_so(tmp_path):
    run = make_run(tmp_path, "a", "2024-05-17T08:00:00", status="failed")
    with pytest.raises(RunError) as info:
        evaluate_run(run)
    assert info.value.render() == (
        f"{run} has no trained model (status: failed) (train it again, or pick another run)")


@pytest.mark.slow
def test_eval_of_a_damaged_model_file(tmp_path):
    run = make_run(tmp_path, "a", "2024-05-17T08:00:00")
    runs.write_text(run / runs.CONFIG_FILE, "data:\n  dataset: xor\n  samples: 40\n")
    (run / runs.MODEL_FILE).write_bytes(b"not a zip file")
    with pytest.raises(RunError, match="cannot load the model"):
        evaluate_run(run)


# --- history.csv and folders swapped by renames --------------------------------------------


def test_history_round_trips_with_empty_cells_left_out(tmp_path):
    columns = ["epoch", "loss", "val_loss"]
    lines = [runs.history_line({"epoch": 1, "loss": 0.123456789, "val_loss": 2.0}, columns),
             runs.history_line({"loss": 1e-7, "epoch": 2}, columns)]
    runs.write_history(tmp_path, columns, lines)
    assert (tmp_path / "history.csv").read_text() == (
        "epoch,loss,val_loss\n1,0.123457,2\n2,1e-07,\n")
    assert runs.read_history(tmp_path) == [{"epoch": 1, "loss": 0.123457, "val_loss": 2.0},
                                           {"epoch": 2, "loss": 1e-7}]
    assert runs.read_history(tmp_path / "elsewhere") == []


def test_replace_folder_swaps_in_the_new_one_and_drops_the_old(tmp_path):
    target, new = tmp_path / "checkpoint", tmp_path / "checkpoint.new"
    for folder, text in ((target, "before"), (new, "after")):
        folder.mkdir()
        (folder / "state.json").write_text(text)
    runs.replace_folder(new, target)
    assert (target / "state.json").read_text() == "after"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_complete_folder_falls_back_to_the_old_one_between_the_renames(tmp_path):
    target, old = tmp_path / "checkpoint", tmp_path / "checkpoint.old"
    assert runs.complete_folder(target, "state.json") is None
    old.mkdir()
    (old / "state.json").write_text("{}")
    target.mkdir()  # half written: no marker yet
    assert runs.complete_folder(target, "state.json") == old
    (target / "state.json").write_text("{}")
    assert runs.complete_folder(target, "state.json") == target


def test_remove_folder_takes_its_old_and_new_companions(tmp_path):
    for name in ("checkpoint", "checkpoint.old", "checkpoint.new", "checkpointer"):
        (tmp_path / name).mkdir()
    runs.remove_folder(tmp_path / "checkpoint")
    assert [p.name for p in tmp_path.iterdir()] == ["checkpointer"]


@pytest.mark.parametrize("pid, alive", [("this process", True), (0, False), (-1, False),
                                        ("12", False), (None, False)])
def test_process_alive(pid, alive):
    # the pid is taken when the test runs: a forked runner (mutmut) must not signal its parent
    pid = os.getpid() if pid == "this process" else pid
    assert runs.process_alive(pid) is alive
