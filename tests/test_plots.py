"""Tests for dlrecap.plots and `dlrecap plot`: which pictures a run gets, and that they are real."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from dlrecap import plots
from dlrecap.animation import BOUNDARY_GIF
from dlrecap.neurons import ACTIVATIONS, NEURONS

from helpers import invoke, make_run_dir

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
PICTURES = {plots.LEARNING_CURVES, plots.DECISION_BOUNDARY, plots.CONFUSION_MATRIX,
            BOUNDARY_GIF, NEURONS, ACTIVATIONS,
            plots.PREDICTIONS}


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_real_picture(path: Path) -> None:
    """A PNG of a sensible size that is not one flat colour."""
    from matplotlib.image import imread

    width, height = png_size(path)
    assert width >= 300 and height >= 300, (path.name, width, height)
    assert path.stat().st_size > 10_000
    pixels = imread(path)[..., :3]
    assert pixels.std() > 0.05, f"{path.name} is nearly blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50


def train_tiny(runs_dir: Path, *overrides: str, config: str = "configs/xor.yaml") -> Path:
    from dlrecap.config.load import load_config
    from dlrecap.pipeline import train

    base = ["data.samples=64", "training.epochs=3", "expect={}"]
    return train(load_config(ROOT / config, [*base, *overrides]), runs_dir).run_dir


def clear_pictures(run_dir: Path) -> None:
    for name in PICTURES:
        (run_dir / name).unlink(missing_ok=True)


HISTORY = "epoch,loss,accuracy,val_loss,val_accuracy\n" + "".join(
    f"{e},{1 / e:.4f},{0.5 + e / 40:.4f},{1 / e + (e / 20) ** 2:.4f},{0.5 + e / 50:.4f}\n"
    for e in range(1, 13))


@pytest.fixture(scope="module")
def xor_run(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("plots") / "runs")


def test_binary_run_with_two_features_gets_boundary_and_confusion(xor_run):
    clear_pictures(xor_run)
    written = plots.draw_run(xor_run)
    assert {p.name for p in written} == {plots.LEARNING_CURVES, plots.DECISION_BOUNDARY,
                                         plots.CONFUSION_MATRIX, BOUNDARY_GIF, NEURONS}
    for path in written:
        assert path.parent == xor_run
        if path.suffix == ".png":
            assert_real_picture(path)
    assert not (xor_run / plots.PREDICTIONS).exists()
    assert not list(xor_run.glob(".*.png")), "temporary files left behind"


def test_draw_run_uses_a_model_and_splits_passed_in(xor_run):
    from dlrecap.evaluate import load_run

    _config, splits, head, model = load_run(xor_run)
    clear_pictures(xor_run)
    written = plots.draw_run(xor_run, model=model, splits=splits, head=head)
    assert len(written) == 5 and all(p.is_file() for p in written)


@pytest.mark.slow
def test_regression_run_gets_predicted_vs_true(tmp_path):
    run_dir = train_tiny(tmp_path / "runs", "data.dataset=sine", "model.layers=[8]")
    clear_pictures(run_dir)
    written = plots.draw_run(run_dir)
    # One feature, no plane: the hidden units are shown as histograms.
    assert {p.name for p in written} == {plots.LEARNING_CURVES, plots.PREDICTIONS, ACTIVATIONS}
    for path in written:
        assert_real_picture(path)
    width, _ = png_size(run_dir / plots.PREDICTIONS)
    assert width >= 1000  # one feature: the fitted curve is drawn beside predicted vs true


@pytest.mark.slow
def test_multiclass_run_with_many_features_gets_no_boundary(tmp_path):
    run_dir = train_tiny(tmp_path / "runs", "data.dataset=iris", "model.layers=[6]",
                         "data.samples=null", "data.noise=null")
    clear_pictures(run_dir)
    names = {p.name for p in plots.draw_run(run_dir)}
    assert names == {plots.LEARNING_CURVES, plots.CONFUSION_MATRIX, ACTIVATIONS}
    assert_real_picture(run_dir / plots.CONFUSION_MATRIX)


def test_multiclass_decision_boundary_and_confusion_with_many_labels(tmp_path):
    from types import SimpleNamespace

    from matplotlib.image import imread

    rng = np.random.default_rng(0)
    centers = np.array([[0, 3], [3, 0], [-3, 0], [0, -3]], dtype="float32")
    y = np.repeat(np.arange(4), 30)
    x = (centers[y] + rng.normal(size=(120, 2))).astype("float32")

    def model(rows, training=False):  # nearest centre wins: a softmax over -distance
        scores = -np.linalg.norm(rows[:, None, :] - centers[None], axis=-1)
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    splits = SimpleNamespace(x_train=x[::2], y_train=y[::2], x_val=x[:0], y_val=y[:0],
                             x_test=x[1::2], y_test=y[1::2], feature_names=["a", "b"])
    splits.split = lambda name: {"train": (splits.x_train, splits.y_train),
                                 "validation": (splits.x_val, splits.y_val),
                                 "test": (splits.x_test, splits.y_test)}[name]
    labels = ["north", "east", "west", "a rather long label"]
    boundary = plots.decision_boundary(model, splits, labels, tmp_path / "b.png", "four")
    assert_real_picture(boundary)
    image = imread(boundary)[..., :3]
    assert np.abs(image - np.array([0x08, 0x77, 0xbd]) / 255).sum(axis=-1).min() < 0.5  # blue
    matrix = plots.confusion_matrix(model, splits, labels, tmp_path / "c.png", "four")
    assert_real_picture(matrix)


def test_run_without_a_model_gets_learning_curves_only(tmp_path):
    run_dir = make_run_dir(tmp_path / "r", metrics={"name": "x", "status": "failed",
                                                    "epochs_run": 12}, history=HISTORY)
    written = plots.draw_run(run_dir)
    assert [p.name for p in written] == [plots.LEARNING_CURVES]
    assert_real_picture(written[0])


def test_learning_curves_mark_the_best_epoch_and_the_early_stop(tmp_path):
    from matplotlib.image import imread

    history = plots.read_history(make_run_dir(tmp_path / "r", metrics={}, history=HISTORY))
    plain = plots.learning_curves(history, {"name": "x"}, tmp_path / "plain.png")
    best = plots.learning_curves(history, {"name": "x", "best_epoch": 4}, tmp_path / "best.png")
    stop = plots.learning_curves(history, {"name": "x", "best_epoch": 4, "stopped_early": True,
                                           "epochs_run": 12}, tmp_path / "stop.png")
    images = [imread(p)[..., :3] for p in (plain, best, stop)]
    assert all(im.shape == images[0].shape for im in images)
    assert np.abs(images[0] - images[1]).max() > 0.3  # the best-epoch line and star
    assert np.abs(images[1] - images[2]).max() > 0.3  # the early-stop line


def test_read_history_and_main_metric(tmp_path):
    history = plots.read_history(make_run_dir(tmp_path / "r", metrics={}, history=HISTORY))
    assert list(history) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert history["epoch"] == [float(e) for e in range(1, 13)]
    assert plots.main_metric(history) == "accuracy"
    assert plots.main_metric({"epoch": [1], "loss": [1], "val_loss": [1]}) is None
    assert plots.read_history(tmp_path) == {}


def test_classes_of_thresholds_one_output_and_argmaxes_many():
    assert plots.classes_of(np.array([[0.2], [0.5], [0.9]])).tolist() == [0, 1, 1]
    assert plots.classes_of(np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])).tolist() == [1, 0]


def test_plot_command_prints_each_file(xor_run):
    clear_pictures(xor_run)
    result = invoke("plot", str(xor_run))
    assert result.exit_code == 0, result.output
    lines = result.stdout.split()
    assert sorted(Path(p).name for p in lines) == sorted(
        [plots.LEARNING_CURVES, plots.DECISION_BOUNDARY, plots.CONFUSION_MATRIX, BOUNDARY_GIF,
         NEURONS])
    assert all(Path(p).is_file() for p in lines)


def test_plot_command_unknown_run_exits_2(tmp_path):
    result = invoke("plot", "nope", "--runs-dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output
