"""`dlrecap plot` and `dlrecap report` on every kind of run train writes: exit 0, no warning.

Text columns, a diverged run, an interrupted one, one without a model and an early-stopped
one beside its unstopped twin: each gets the pictures that make sense for it, the health
section where training probed it, and nothing on stderr that reads as a warning.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from dlrecap import plots
from dlrecap.report import REPORT_FILE

from helpers import CtrlCAfter, invoke, make_run_dir

ROOT = Path(__file__).resolve().parents[1]
HEALTH = "<h2>Training health</h2>"


def write_tables(folder: Path) -> None:
    """Two CSV files with a text column: a classification on two numbers, a regression on one."""
    rng = np.random.default_rng(0)
    n = 90
    a, b = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2])
    label = np.where(a * b + 0.3 * (colour == "red") > 0, "yes", "no")
    lines = ["a,b,colour,label"] + [f"{a[i]:.4f},{b[i]:.4f},{colour[i]},{label[i]}" for i in range(n)]
    (folder / "classes.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    x = rng.uniform(-3, 3, size=n)
    shop = rng.choice(["north", "south"], size=n)
    size = rng.choice(["small", "large"], size=n)
    y = np.sin(x) + 0.5 * (shop == "north")
    lines = ["x,shop,size,y"] + [f"{x[i]:.4f},{shop[i]},{size[i]},{y[i]:.4f}" for i in range(n)]
    (folder / "values.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def train_config(runs_dir: Path, config: Path, *overrides: str, progress=None) -> Path:
    from dlrecap.config.load import load_config
    from dlrecap.pipeline import train

    return train(load_config(config, ["expect={}", *overrides]), runs_dir,
                 progress=progress).run_dir


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("every_run") / "runs"


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tables")
    write_tables(folder)
    for name, data, target in (("classes", "classes.csv", "label"), ("values", "values.csv", "y")):
        (folder / f"{name}.yaml").write_text(
            f"# {name}\nname: {name}\ndata:\n  path: {data}\n  target: {target}\n"
            "model:\n  layers: [6]\ntraining:\n  epochs: 3\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def text_classes(runs_dir, tables) -> Path:
    return train_config(runs_dir, tables / "classes.yaml")


@pytest.fixture(scope="module")
def text_values(runs_dir, tables) -> Path:
    return train_config(runs_dir, tables / "values.yaml")


@pytest.fixture(scope="module")
def diverged(runs_dir) -> Path:
    from dlrecap.errors import TrainingError

    with pytest.raises(TrainingError):
        train_config(runs_dir, ROOT / "configs/smoke/regression.yaml", "name=diverged",
                     "training.optimizer=sgd", "training.learning_rate=100",
                     "training.epochs=20")
    return max(runs_dir.glob("diverged-*"))


@pytest.fixture(scope="module")
def interrupted(runs_dir) -> Path:
    from dlrecap.errors import Interrupted

    with pytest.raises(Interrupted):
        train_config(runs_dir, ROOT / "configs/smoke/binary.yaml", "name=interrupted",
                     "training.epochs=50", progress=CtrlCAfter(2))
    return max(runs_dir.glob("interrupted-*"))


def plot_and_report(run_dir: Path) -> tuple[set[str], str, str]:
    """Run `plot` then `report` on a run with no pictures; return the files, stderr, the page."""
    for name in (*PICTURES, REPORT_FILE):
        (run_dir / name).unlink(missing_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plotted = invoke("plot", str(run_dir))
        reported = invoke("report", str(run_dir))
    ours = [f"{w.category.__name__}: {w.message}" for w in caught
            if any(part in w.filename for part in ("matplotlib", "numpy", "dlrecap"))]
    assert plotted.exit_code == 0, plotted.output
    assert reported.exit_code == 0, reported.output
    assert not ours, ours
    stderr = plotted.stderr + reported.stderr
    assert "warning" not in stderr.lower(), stderr
    page = (run_dir / REPORT_FILE).read_text(encoding="utf-8")
    return {p.name for p in run_dir.iterdir()}, stderr, page


PICTURES = (plots.LEARNING_CURVES, plots.DECISION_BOUNDARY, plots.CONFUSION_MATRIX,
            plots.PREDICTIONS)


def picture_width(path: Path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]


@pytest.mark.slow
def test_two_numbers_and_a_text_column_get_the_boundary_and_health(text_classes):
    files, _stderr, page = plot_and_report(text_classes)
    assert {plots.LEARNING_CURVES, plots.DECISION_BOUNDARY, plots.CONFUSION_MATRIX,
            "diagnostics.csv"} <= files
    assert plots.PREDICTIONS not in files
    health = page.split(HEALTH)[1].split("<h2>")[0]
    assert "<td class='l'>output</td>" in health and "<td class='l'>1</td>" in health


@pytest.mark.slow
def test_one_number_and_text_columns_get_the_fitted_curve_and_health(text_values):
    files, _stderr, page = plot_and_report(text_values)
    assert {plots.LEARNING_CURVES, plots.PREDICTIONS, "diagnostics.csv"} <= files
    assert not {plots.DECISION_BOUNDARY, plots.CONFUSION_MATRIX} & files
    assert picture_width(text_values / plots.PREDICTIONS) >= 1000  # the curve beside
    assert HEALTH in page


@pytest.mark.slow
def test_one_number_and_a_text_column_get_no_plane_to_draw(runs_dir, tables):
    run_dir = train_config(runs_dir, tables / "classes.yaml", "name=one_number",
                           "data.features=[a, colour]")
    files, _stderr, page = plot_and_report(run_dir)
    assert {plots.LEARNING_CURVES, plots.CONFUSION_MATRIX, "diagnostics.csv"} <= files
    assert plots.DECISION_BOUNDARY not in files
    assert HEALTH in page


def test_the_held_text_values_are_the_most_frequent_ones(text_classes):
    from dlrecap.evaluate import load_run
    from dlrecap.picture_rows import held_note, model_rows, most_frequent, numeric_features

    _config, splits, _head, model = load_run(text_classes)
    assert numeric_features(splits) == ["a", "b"]
    held = most_frequent(splits)
    assert held == {"colour": "red"}
    assert held_note(held) == "colour = red (the most frequent value)"
    rows = model_rows(splits, np.array([[0.0, 1.0], [2.0, 3.0]]), held)
    assert list(rows) == ["a", "b", "colour"]
    assert rows["b"][:, 0].tolist() == [1.0, 3.0] and rows["colour"][:, 0].tolist() == ["red"] * 2
    assert plots.model_outputs(model, rows).shape == (2, 1)


@pytest.mark.slow
def test_a_diverged_run_draws_on_a_log_scale(diverged):
    from dlrecap import runs

    assert runs.read_metrics(diverged)["status"] == "failed"
    files, _stderr, page = plot_and_report(diverged)
    assert {plots.LEARNING_CURVES, plots.PREDICTIONS} <= files
    assert "diverged" in page


@pytest.mark.slow
def test_an_interrupted_run_gets_its_learning_curves_and_a_note(interrupted):
    files, stderr, page = plot_and_report(interrupted)
    assert plots.LEARNING_CURVES in files and "model.keras" not in files
    assert not {plots.DECISION_BOUNDARY, plots.CONFUSION_MATRIX} & files
    assert "(status: interrupted) has no trained model" in stderr
    assert "interrupted" in page


def test_a_run_without_model_or_history_still_plots_and_reports(tmp_path):
    run_dir = make_run_dir(tmp_path / "r", metrics={"name": "x", "status": "failed",
                                                    "error": "the loss became nan in epoch 1"},
                           config={"name": "x"})
    files, stderr, page = plot_and_report(run_dir)
    assert REPORT_FILE in files and not set(PICTURES) & files
    assert "no pictures" in page and "has no trained model" in stderr


def test_nan_and_inf_points_are_skipped_without_a_warning(tmp_path):
    from matplotlib.image import imread

    history = "epoch,loss,mae,val_loss,val_mae\n" + "".join(
        f"{e},{10.0 ** (3 * e):.6g},{e},{'inf' if e == 4 else 10.0 ** (4 * e)},{'nan' if e > 3 else e}\n"
        for e in range(1, 6))
    run_dir = make_run_dir(tmp_path / "r", metrics={"name": "boom", "status": "failed",
                                                    "error": "the loss became inf in epoch 6"},
                           history=history)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = plots.learning_curves(plots.read_history(run_dir), {"name": "boom"},
                                     tmp_path / "curves.png")
    assert imread(path).std() > 0.05
    assert plots._wants_log([[1.0, 1e4], [np.nan, np.inf]])
    assert not plots._wants_log([[0.0, 1e4]])  # zero cannot go on a log scale
    assert not plots._wants_log([[0.5, 0.9]])
    assert not plots._wants_log([[np.nan]])


def test_a_model_with_nan_outputs_draws_every_picture_without_a_warning(tmp_path):
    from types import SimpleNamespace

    x = np.random.default_rng(0).normal(size=(40, 2)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    splits = SimpleNamespace(x_train=x, y_train=y, x_val=x[:0], y_val=y[:0], x_test=x, y_test=y,
                             feature_names=["a", "b"], categorical=(), task="binary")
    splits.split = lambda name: {"train": (x, y), "validation": (x[:0], y[:0]),
                                 "test": (x, y)}[name]

    def model(rows, training=False):
        return np.full((len(rows), 1), np.nan, dtype="float32")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.decision_boundary(model, splits, ["no", "yes"], tmp_path / "b.png", "nan")
        plots.confusion_matrix(model, splits, ["no", "yes"], tmp_path / "c.png", "nan")
        splits.task = "regression"
        plots.predictions(model, splits, tmp_path / "p.png", "nan")
    assert all((tmp_path / f).is_file() for f in ("b.png", "c.png", "p.png"))


# --- early stopping: the path it avoided --------------------------------------------------

ES_HISTORY = "epoch,loss,val_loss\n" + "".join(
    f"{e},{1 / e:.4f},{0.5 + (e - 4) ** 2 / 50:.4f}\n" for e in range(1, 11))
TWIN_HISTORY = "epoch,loss,val_loss\n" + "".join(
    f"{e},{1 / e:.4f},{0.5 + (e - 4) ** 2 / 50:.4f}\n" for e in range(1, 41))
CONFIG = {"name": "es", "seed": 0, "data": {"dataset": "moons"},
          "training": {"epochs": 40, "early_stopping": {"patience": 6}}, "expect": {}}


def _twin_config(**training) -> dict:
    return {**CONFIG, "name": "overfit", "training": {"epochs": 40, **training}}


def test_the_unstopped_twin_is_the_same_config_without_early_stopping(tmp_path):
    from dlrecap.reference_run import unstopped_twin

    stopped = make_run_dir(tmp_path / "runs/es-20240101-000003", config=CONFIG, history=ES_HISTORY,
                           metrics={"status": "completed", "stopped_early": True,
                                    "best_epoch": 4, "epochs_run": 10, "name": "es"})
    assert unstopped_twin(stopped) is None
    done = {"status": "completed", "stopped_early": False, "name": "overfit"}
    other = make_run_dir(tmp_path / "runs/overfit-20240101-000001", metrics=done,
                         config=_twin_config(learning_rate=0.5), history=TWIN_HISTORY)
    assert unstopped_twin(stopped) is None  # another learning rate is not the same training
    twin = make_run_dir(tmp_path / "runs/overfit-20240101-000002", metrics=done,
                        config=_twin_config(early_stopping=None), history=TWIN_HISTORY)
    make_run_dir(tmp_path / "runs/overfit-20240101-000004", metrics={**done, "status": "failed"},
                 config=_twin_config(), history=TWIN_HISTORY)
    assert unstopped_twin(stopped) == twin
    assert other != twin


def test_an_early_stopped_run_shows_the_epochs_it_waited_and_the_path_avoided(tmp_path):
    from matplotlib.image import imread

    info = {"status": "completed", "stopped_early": True, "best_epoch": 4, "epochs_run": 10,
            "name": "es", "monitor": "val_loss"}
    stopped = make_run_dir(tmp_path / "runs/es-20240101-000003", config=CONFIG,
                           history=ES_HISTORY, metrics=info)
    alone = imread(plots.draw_run(stopped)[0])[..., :3]
    make_run_dir(tmp_path / "runs/overfit-20240101-000002", config=_twin_config(),
                 history=TWIN_HISTORY, metrics={"status": "completed", "name": "overfit"})
    with_twin = imread(plots.draw_run(stopped)[0])[..., :3]
    assert alone.shape == with_twin.shape
    assert np.abs(alone - with_twin).max() > 0.3  # the dashed curve of the path avoided
    # The shaded epochs after the best one: pale red between the best-epoch and stop lines.
    pale = np.abs(alone - np.array([0.99, 0.93, 0.93])).sum(axis=-1) < 0.06
    assert pale.sum() > 2000
