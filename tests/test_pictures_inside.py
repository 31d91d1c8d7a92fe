"""The boundary over time and every neuron: boundary_frames.npz, boundary.gif, neurons.png
and activations.png, on real training runs with both engines, resumed and early-stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import CtrlCAfter, invoke

pytestmark = pytest.mark.slow  # the runs take seconds; the unit tests here share the module
ROOT = Path(__file__).resolve().parents[1]
WITHOUT_TF = """\
import sys
sys.modules["tensorflow"] = None  # any import of TensorFlow or Keras now fails
sys.modules["keras"] = None
sys.argv = ["dlrecap", "plot", {run!r}]
from dlrecap.cli import main
main()
"""


def _frames(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "boundary_frames.npz") as data:
        return {k: data[k] for k in data.files}


def _surface(run: Path, points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kept model's surface over the plane, as decision_boundary.png computes it."""
    from dlrecap.evaluate import load_run
    from dlrecap.picture_rows import surface
    from dlrecap.plots import plane_outputs

    _config, splits, _head, model = load_run(run)
    xs, ys, out = plane_outputs(model, splits, points)
    return xs, ys, surface(out).reshape(len(ys), len(xs))


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory) -> Path:
    """configs/xor.yaml trained by the CLI as a learner would (the fast engine), 24 of its
    60 epochs to keep the test short: a frame an epoch either way."""
    runs = tmp_path_factory.mktemp("xor") / "runs"
    result = invoke("train", str(ROOT / "configs/xor.yaml"), "--runs-dir", str(runs), "-q",
                    "--set", "training.epochs=24")
    assert result.exit_code == 0, result.output
    return next(runs.iterdir())


def test_frames_are_kept_every_epoch_of_xor(xor_run):
    frames = _frames(xor_run)
    epochs = frames["epochs"]
    assert epochs.dtype.kind == "i"
    assert epochs[0] == 0 and (np.diff(epochs) > 0).all()
    assert epochs[-1] == int(frames["kept_epoch"])  # no weights were restored
    assert epochs[-1] == json.loads((xor_run / "metrics.json").read_text())["epochs_run"]
    assert len(epochs) == 25  # epochs 0 (untrained) to 24
    assert frames["frames"].dtype == np.float32
    assert frames["frames"].shape == (len(epochs), len(frames["ys"]), len(frames["xs"]))
    assert ((frames["frames"] >= 0) & (frames["frames"] <= 1)).all()  # P(class 1)


def test_the_boundary_changes_as_the_network_learns(xor_run):
    fields = _frames(xor_run)["frames"]
    changes = np.abs(np.diff(fields, axis=0)).max(axis=(1, 2))
    assert (changes > 0).all(), "a frame repeats the one before"
    # Untrained: no confident region; trained: XOR's four confident quadrants.
    assert np.abs(fields[0] - 0.5).max() < 0.3
    assert (fields[-1] > 0.9).mean() > 0.25 and (fields[-1] < 0.1).mean() > 0.25


def test_the_last_frame_is_the_decision_boundary_surface(xor_run):
    frames = _frames(xor_run)
    xs, ys, field = _surface(xor_run, len(frames["xs"]))
    np.testing.assert_allclose(frames["xs"], xs)
    np.testing.assert_allclose(frames["ys"], ys)
    np.testing.assert_allclose(frames["frames"][-1], field, atol=2e-5)


def test_the_gif_holds_every_frame(xor_run):
    from PIL import Image

    with Image.open(xor_run / "boundary.gif") as gif:
        assert gif.n_frames == len(_frames(xor_run)["epochs"])
        first = np.asarray(gif.convert("RGB"))
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("RGB"))
    assert np.abs(first.astype(int) - last).sum(axis=-1).astype(bool).mean() > 0.2


def test_neuron_grid_layout():
    from dlrecap.neurons import MAX_UNITS, neuron_panels

    assert len(neuron_panels([2, 8, 1])) == 11
    assert len(neuron_panels([2, 12, 12, 1])) == 27
    wide = neuron_panels([2, 40, 3])
    assert len(wide) == 2 + MAX_UNITS + 3
    assert {p.total for p in wide if p.column == 1} == {40}


def test_neurons_png_is_drawn(xor_run):
    from PIL import Image

    with Image.open(xor_run / "neurons.png") as image:
        width, height = image.size
    assert height > width  # one column per layer, 8 units tall
    assert not (xor_run / "activations.png").exists()


def test_plot_redraws_them_without_tensorflow(xor_run):
    for name in ("boundary.gif", "neurons.png"):
        (xor_run / name).unlink()
    done = subprocess.run([sys.executable, "-c", WITHOUT_TF.format(run=str(xor_run))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("boundary.gif", "neurons.png"):
        assert (xor_run / name).is_file()
        assert str(xor_run / name) in done.stdout


def test_unit_states_mark_dead_and_saturated_units():
    from dlrecap.neurons import unit_states

    rows = np.zeros((100, 3), dtype=np.float32)
    rows[:, 1] = np.linspace(0, 2, 100)
    assert unit_states(rows, "relu") == ["dead", "", "dead"]
    bounded = np.concatenate([np.full((97, 1), 0.99), np.full((3, 1), 0.1)])
    assert unit_states(np.hstack([bounded, -bounded, bounded / 2]), "tanh") == \
        ["saturated", "saturated", ""]


def test_activations_png_for_more_than_two_features(tmp_path):
    config = tmp_path / "iris.yaml"
    config.write_text("data: {dataset: iris}\nmodel: {layers: [6, 4], activation: relu}\n"
                      "training: {epochs: 4}\n", encoding="utf-8")
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q")
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    assert (run / "activations.png").is_file()
    assert not (run / "neurons.png").exists() and not (run / "boundary_frames.npz").exists()
    assert not (run / "boundary.gif").exists()


def test_keras_engine_resumed_run_continues_its_frames(tmp_path):
    from dlrecap.config.load import load_config
    from dlrecap.errors import Interrupted
    from dlrecap.pipeline import train

    config = tmp_path / "xor.yaml"
    config.write_text("name: xor\ndata: {dataset: xor, samples: 120}\nmodel: {layers: [6]}\n"
                      "training: {epochs: 12, engine: keras}\n", encoding="utf-8")
    loaded = load_config(config)
    with pytest.raises(Interrupted):
        train(loaded, tmp_path / "runs", progress=CtrlCAfter(5))
    run = next((tmp_path / "runs").iterdir())
    before = _frames(run)
    assert list(before["epochs"]) == list(range(6))
    result = train(loaded, tmp_path / "runs", resume=run)
    after = _frames(result.run_dir)
    assert list(after["epochs"]) == list(range(13))
    np.testing.assert_array_equal(after["frames"][:6], before["frames"])
    assert result.metrics["engine"] == "keras"
    np.testing.assert_allclose(after["frames"][-1], _surface(run, len(after["xs"]))[2], atol=2e-5)


def test_a_run_interrupted_on_restored_best_weights_resumes_with_the_frames_of_a_whole_run(
        tmp_path, monkeypatch):
    """A stop puts the best weights back, so the last frame drawn is theirs, not its epoch's:
    the resumed run draws that epoch again, from the checkpoint's weights."""
    from dlrecap.config.load import load_config
    from dlrecap.errors import Interrupted
    from dlrecap.pipeline import train
    from dlrecap.train.callbacks import BoundaryFrames

    # Frames read in Python end the engine's calls after every epoch, so the Ctrl-C after
    # epoch 5 stops the run there, not at the end of a longer call.
    monkeypatch.setattr(BoundaryFrames, "graph_probe", lambda self: None)

    # No epoch beats the first by 100: epoch 1's weights are the best, and the ones kept.
    text = ("name: xor\ndata: {dataset: xor, samples: 120}\nmodel: {layers: [6]}\n"
            "training: {epochs: 12, learning_rate: 0.05, keep: best, "
            "early_stopping: {patience: 50, min_delta: 100}}\n")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for folder in (whole, cut):
        folder.mkdir()
        (folder / "xor.yaml").write_text(text, encoding="utf-8")
    expected = _frames(train(load_config(whole / "xor.yaml"), whole / "runs").run_dir)
    assert list(expected["epochs"]) == list(range(13)) and int(expected["kept_epoch"]) == 1

    loaded = load_config(cut / "xor.yaml")
    with pytest.raises(Interrupted):
        train(loaded, cut / "runs", progress=CtrlCAfter(5))
    run = next((cut / "runs").iterdir())
    before = _frames(run)
    assert list(before["epochs"]) == list(range(6)) and int(before["kept_epoch"]) == 1
    np.testing.assert_allclose(before["frames"][5], before["frames"][1], atol=1e-6)  # restored
    assert not np.allclose(before["frames"][5], expected["frames"][5], atol=1e-3)

    after = _frames(train(loaded, cut / "runs", resume=run).run_dir)
    assert list(after["epochs"]) == list(range(13)) and int(after["kept_epoch"]) == 1
    np.testing.assert_array_equal(after["frames"][:5], before["frames"][:5])
    np.testing.assert_allclose(after["frames"], expected["frames"], atol=1e-5)


def test_restored_best_weights_are_the_last_frame(tmp_path):
    """Early stopping that puts back the best weights: the last frame shows them."""
    import keras

    from dlrecap.picture_rows import surface
    from dlrecap.train.callbacks import BoundaryFrames

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(1, activation="sigmoid")])
    xs, ys = np.linspace(-1, 1, 7), np.linspace(-2, 2, 5)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype("float32")
    best = {}

    class RestoreBest(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # "training" moves every weight by 0.3
            self.model.set_weights([w + 0.3 for w in self.model.get_weights()])
            if epoch == 1:
                best["weights"] = self.model.get_weights()

        def on_train_end(self, logs=None):
            self.model.set_weights(best["weights"])

    frames = BoundaryFrames(tmp_path / "f.npz", grid, xs, ys, every=1, surface=surface,
                            kept_epoch=lambda last: 2)
    hooks = keras.callbacks.CallbackList([RestoreBest(), frames], model=model)
    hooks.on_train_begin()
    for epoch in range(4):
        hooks.on_epoch_end(epoch, {})
    hooks.on_train_end()
    with np.load(tmp_path / "f.npz") as data:
        epochs, fields, kept = data["epochs"], data["frames"], int(data["kept_epoch"])
    assert list(epochs) == [0, 1, 2, 3, 4] and kept == 2
    expected = surface(np.asarray(model(grid))).reshape(5, 7)
    np.testing.assert_allclose(fields[-1], expected, atol=1e-6)
    np.testing.assert_allclose(fields[-1], fields[2], atol=1e-6)  # epoch 2's weights again
    assert not np.allclose(fields[-2], fields[-1])
    from dlrecap.animation import frame_titles

    titles = frame_titles({"epochs": epochs, "kept_epoch": kept}, "t")
    assert titles[0] == "t: epoch 0 (untrained)"
    assert titles[-1] == "t: epoch 4, the kept weights of epoch 2"


def test_early_stopping_ends_on_the_kept_weights(tmp_path):
    """configs/early_stopping.yaml stops 10 epochs after its best and puts the best back."""
    result = invoke("train", str(ROOT / "configs/early_stopping.yaml"), "--runs-dir",
                    str(tmp_path / "runs"), "-q")
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    info = json.loads((run / "metrics.json").read_text())
    assert info["stopped_early"] and info["weights_epoch"] < info["epochs_run"]
    frames = _frames(run)
    assert frames["epochs"][-1] == info["epochs_run"]
    assert int(frames["kept_epoch"]) == info["weights_epoch"] == info["best_epoch"]
    np.testing.assert_allclose(frames["frames"][-1], _surface(run, len(frames["xs"]))[2],
                               atol=2e-5)
    assert not np.allclose(frames["frames"][-1], frames["frames"][-2], atol=1e-3)


def test_frames_not_shaped_as_training_writes_them_are_not_drawn(tmp_path):
    from dlrecap.animation import read_frames
    from dlrecap.runs import FRAMES_FILE

    xs, ys = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
    for count, expected in ((3, True), (2, False), (0, False)):
        np.savez(tmp_path / FRAMES_FILE, epochs=np.arange(3), xs=xs, ys=ys,
                 frames=np.zeros((count, 4, 5), dtype=np.float32))
        assert (read_frames(tmp_path) is not None) is expected, count
