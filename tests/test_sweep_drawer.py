"""A sweep draws its trials' pictures in a process of its own (`sweep/drawer.py`)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from helpers import invoke

# Two features, so a trial draws learning curves, a decision boundary and a confusion matrix.
TINY_XOR = """\
name: tinyxor
data: {dataset: xor, samples: 80}
model: {layers: [4]}
training: {epochs: 3, batch_size: 16}
"""
PICTURES = ("learning_curves.png", "decision_boundary.png", "confusion_matrix.png")


def status(run_dir: Path) -> str:
    return json.loads((run_dir / "metrics.json").read_text())["status"]


def trained_undrawn(tmp_path: Path) -> Path:
    """A trained run whose pictures were handed elsewhere and never drawn."""
    from dlrecap.config.load import load_config
    from dlrecap.pipeline import train

    config = tmp_path / "tinyxor.yaml"
    config.write_text(TINY_XOR, encoding="utf-8")
    handed: list[Path] = []
    result = train(load_config(config), tmp_path / "runs", pictures=handed.append)
    assert handed == [result.run_dir]
    return result.run_dir


def test_trial_pictures_are_drawn_by_another_process_and_then_completed(tmp_path, monkeypatch):
    from dlrecap import pipeline

    drawn_here: list[object] = []
    monkeypatch.setattr(pipeline, "draw", lambda *args: drawn_here.append(args))
    config = tmp_path / "tinyxor.yaml"
    config.write_text(TINY_XOR, encoding="utf-8")
    result = invoke("sweep", str(config), "--grid", "training.learning_rate=0.01,0.1",
                    "--jobs", "1", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    sweep_dir = Path(result.stdout.strip().splitlines()[-1])
    trials = sorted(p for p in sweep_dir.iterdir() if (p / "metrics.json").is_file())
    assert len(trials) == 2
    assert drawn_here == []  # not in this process
    for run_dir in trials:
        for name in PICTURES:
            assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", (run_dir, name)
        assert status(run_dir) == "completed"
        assert "finished_at" in json.loads((run_dir / "metrics.json").read_text())


def test_a_trained_run_handed_elsewhere_is_not_completed_until_drawn(tmp_path):
    run_dir = trained_undrawn(tmp_path)
    assert status(run_dir) == "running"
    assert not any((run_dir / name).exists() for name in PICTURES)
    assert (run_dir / "model.keras").is_file()


def test_runs_left_by_a_dead_drawing_process_are_drawn_at_close(tmp_path):
    from dlrecap.sweep.drawer import Drawer

    run_dir = trained_undrawn(tmp_path)
    drawer = Drawer()
    os.kill(drawer._process.pid, signal.SIGKILL)
    drawer._process.join()
    drawer.submit(run_dir)
    assert drawer.close() == []
    assert status(run_dir) == "completed"
    assert all((run_dir / name).is_file() for name in PICTURES)


def test_a_picture_that_cannot_be_drawn_is_a_warning_and_the_run_completes(tmp_path):
    from dlrecap.sweep.drawer import Drawer

    run_dir = trained_undrawn(tmp_path)
    (run_dir / "model.keras").write_bytes(b"not a model")
    drawer = Drawer()
    drawer.submit(run_dir)
    (warning,) = drawer.close()
    assert warning.startswith(f"{run_dir.name}: could not draw the run's pictures")
    assert f"dlrecap plot {run_dir}" in warning
    assert status(run_dir) == "completed"
    assert (run_dir / "learning_curves.png").is_file()  # what needs no model is drawn


def test_drawing_and_completing_a_run_needs_no_tensorflow(tmp_path):
    import subprocess
    import sys

    run_dir = trained_undrawn(tmp_path)
    code = ("import sys; from pathlib import Path\n"
            "from dlrecap.sweep.drawer import draw_and_complete\n"
            "print(repr(draw_and_complete(Path(sys.argv[1]))), 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["''", "False"]
    assert status(run_dir) == "completed"


def test_the_drawing_process_ends_when_the_sweep_is_killed(tmp_path):
    import subprocess
    import sys
    import time

    # A sweep process (here: a stand-in that starts a Drawer) killed with -9 leaves its
    # drawing process without a parent; it must not wait for work forever.
    code = ("import time; from dlrecap.sweep.drawer import Drawer\n"
            "d = Drawer(); print(d._process.pid, flush=True); time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.2)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_a_worker_takes_a_trial_of_the_shape_it_trained_last_then_one_nobody_trains():
    import json as js
    from types import SimpleNamespace

    from dlrecap.sweep.study import shape_order

    keys = ["model.layers[0].activation", "training.learning_rate"]
    space = SimpleNamespace(settings={"grid": {k: [] for k in keys}}, keys=keys)

    def trial(activation: str, rate: float) -> SimpleNamespace:
        fixed = {keys[0]: js.dumps(activation), keys[1]: js.dumps(rate)}
        return SimpleNamespace(system_attrs={"fixed_params": fixed}, name=f"{activation}{rate}")

    waiting = [trial(a, r) for a in ("tanh", "relu", "sigmoid") for r in (0.01, 0.03)][1:]
    names = lambda order: [t.name for t in order]  # noqa: E731
    last = {keys[0]: "tanh", keys[1]: 0.01}
    # After tanh at 0.01: tanh at 0.03 (same network, another rate), then in slot order.
    assert names(shape_order(space, {"waiting": waiting, "running": []}, last))[:2] == [
        "tanh0.03", "relu0.01"]
    # A worker's first trial: not of the shape another worker is training now.
    running = [trial("tanh", 0.01)]
    assert names(shape_order(space, {"waiting": waiting, "running": running}, None))[0] == "relu0.01"
    # tpe slots carry no values until taken: they keep their order.
    blank = [SimpleNamespace(system_attrs={}, name=str(i)) for i in range(3)]
    assert names(shape_order(space, {"waiting": blank, "running": []}, last)) == ["0", "1", "2"]


def test_at_close_the_sweep_process_draws_queued_runs_too(tmp_path, monkeypatch):
    from dlrecap.sweep import drawer as drawer_module

    folders = [tmp_path / f"r{i}" for i in range(3)]
    for folder in folders:
        folder.mkdir()
    runs = [trained_undrawn(folder) for folder in folders]
    drawn_here: list[Path] = []
    real = drawer_module.draw_and_complete
    monkeypatch.setattr(drawer_module, "draw_and_complete",
                        lambda run_dir: (drawn_here.append(run_dir), real(run_dir))[1])
    drawer = drawer_module.Drawer()
    for run_dir in runs:
        drawer.submit(run_dir)
    assert drawer.close() == []
    # The drawing process takes one run at a time; the others wait in its queue, and
    # drawing one takes far longer than it takes `close` to take them.
    assert 1 <= len(drawn_here) <= 3
    assert all(status(r) == "completed" for r in runs)
    assert all((r / name).is_file() for r in runs for name in PICTURES)
