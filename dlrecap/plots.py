"""The pictures of a run: learning curves, decision boundary, confusion matrix, predictions.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no display, no global
backend switch) and saved atomically into the run directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlrecap import runs
from dlrecap.data.split import n_rows
from dlrecap.evaluate import model_outputs
from dlrecap.picture_rows import (
    held_note,
    model_rows,
    most_frequent,
    numeric_features,
    numeric_matrix,
    plane_axes,
    plane_rows,
)
from dlrecap.vocab import LEARNING_RATE, SPLITS, VALIDATION_PREFIX, split_of

if TYPE_CHECKING:
    import keras
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from dlrecap.data.split import Splits
    from dlrecap.model import Head

LEARNING_CURVES = "learning_curves.png"
DECISION_BOUNDARY = "decision_boundary.png"
CONFUSION_MATRIX = "confusion_matrix.png"
PREDICTIONS = "predictions.png"
# TensorFlow Playground's colours: orange for the first class, blue for the second.
ORANGE, BLUE = "#f59322", "#0877bd"
GRID = 160
DPI = 100
# A learning curve whose largest value is this many times its smallest gets a log scale.
LOG_RANGE = 1e3


def read_history(run_dir: Path) -> dict[str, list[float]]:
    """history.csv as columns: `{"epoch": [1.0, 2.0, ...], "loss": [...], ...}` (empty if none).

    A cell left empty is NaN, so that every column has one value per epoch.
    """
    rows = runs.read_history(run_dir)
    columns = dict.fromkeys(key for row in rows for key in row)
    return {key: [float(row.get(key, math.nan)) for row in rows] for key in columns}


def main_metric(history: dict[str, Any]) -> str | None:
    """The headline metric: the first history column after `loss` that is not a val_ one."""
    names = [k for k in history
             if k not in ("epoch", "loss", LEARNING_RATE) and split_of(k) == "train"]
    return names[0] if names else None


def draw_run(run_dir: Path, model: keras.Model | None = None, splits: Splits | None = None,
             head: Head | None = None, *, inside: bool = True) -> list[Path]:
    """Draw every picture that fits the run and return the files written.

    Learning curves need only history.csv; the other pictures need the model and the data,
    which are loaded from the run directory when not given.

    Args:
        run_dir: the run directory (pictures are written into it).
        model: the trained Keras model, or None to load model.keras.
        splits: the run's `dlrecap.data.Splits`, or None to rebuild them from config.yaml.
        head: the run's `dlrecap.model.Head`, or None to work it out again.
        inside: also draw the pictures of the network's inside (`draw_inside`), which
            training draws after its result line.
    """
    run_dir = Path(run_dir)
    info = runs.read_metrics(run_dir)
    written = []
    history = read_history(run_dir)
    if history.get("epoch"):
        reference = _unstopped_history(run_dir) if info.get("stopped_early") else None
        written.append(learning_curves(history, info, run_dir / LEARNING_CURVES, reference))
    if model is None or splits is None or head is None:
        if not (run_dir / runs.MODEL_FILE).is_file():
            return written
        from dlrecap.evaluate import load_run

        _config, loaded_splits, loaded_head, loaded_model = load_run(run_dir)
        model = loaded_model if model is None else model
        splits = loaded_splits if splits is None else splits
        head = loaded_head if head is None else head
    title = info.get("name") or run_dir.name
    labels = info.get("labels") or splits.label_names or []
    if splits.task == "regression":
        written.append(predictions(model, splits, run_dir / PREDICTIONS, title))
    else:
        # Text columns are held at one value over the plane, so two numeric ones make the plane.
        if len(numeric_features(splits)) == 2:
            written.append(decision_boundary(model, splits, labels, run_dir / DECISION_BOUNDARY,
                                             title))
        written.append(confusion_matrix(model, splits, labels, run_dir / CONFUSION_MATRIX, title))
    return written + (draw_inside(run_dir, splits, labels, title) if inside else [])


def draw_inside(run_dir: Path, splits: Splits, labels: list[str], title: str) -> list[Path]:
    """The pictures of the network's inside, from the run's files with NumPy alone.

    boundary.gif from boundary_frames.npz; neurons.png (two numeric features) or
    activations.png (more) from model.keras, when the NumPy path reads it.
    """
    from dlrecap import animation, neurons
    from dlrecap.inference import Unsupported, load_light

    run_dir = Path(run_dir)
    written = []
    frames = animation.read_frames(run_dir)
    plane = len(numeric_features(splits)) == 2
    if frames is not None and plane:
        written.append(animation.boundary_animation(frames, splits, labels,
                                                    run_dir / animation.BOUNDARY_GIF, title))
    try:
        light = load_light(run_dir / runs.MODEL_FILE)
    except Unsupported:
        return written  # a layer NumPy does not evaluate: these pictures are left out
    if len(light.kernels) < 2:
        return written  # no hidden layer: nothing inside to show
    if plane:
        written.append(neurons.neuron_grid(light, splits, run_dir / neurons.NEURONS, title))
    else:
        written.append(neurons.activation_histograms(light, splits.x_train, run_dir,
                                                     run_dir / neurons.ACTIVATIONS, title))
    return written


# --- learning curves -------------------------------------------------------------------


def learning_curves(history: dict[str, list[float]], info: dict[str, Any], path: Path,
                    reference: tuple[str, dict[str, list[float]]] | None = None) -> Path:
    """Loss and the main metric per epoch, training vs validation, best epoch and stop marked.

    NaN and infinite values (a diverged run) are left out of the lines, and said so; a
    curve spanning more than `LOG_RANGE` is drawn on a log scale, so an exploding loss does
    not flatten everything before it. When early stopping ended the run, the epochs after the
    best one are shaded: the path the patience waited on. A learning rate that changed (a
    schedule, or reduce_on_plateau) is drawn in a panel of its own.

    Args:
        history: history.csv as columns (`read_history`).
        info: the run's metrics.json.
        path: the PNG file to write.
        reference: `(name, history)` of the same training without early stopping, whose
            validation curve is drawn dashed: the path early stopping avoided.
    """
    metric = main_metric(history)
    panels = ["loss", *([metric] if metric else [])]
    # A rate that changed (a schedule) gets a panel of its own; a constant one would be noise.
    rates = _finite(history.get(LEARNING_RATE, []))
    changing = bool(np.isfinite(rates).any()) and np.nanmax(rates) > np.nanmin(rates)
    count = len(panels) + changing
    fig, axes = new_figure(1, count, width=(5.2 if count < 3 else 4.6) * count, height=4.2,
                           top=0.9 if info.get("error") else 0.7)
    for ax, key in zip(axes, panels, strict=False):
        _curves_panel(ax, key, history, info, reference)
    if changing:
        _rate_panel(axes[-1], history["epoch"], rates)
    fig.suptitle(_curves_title(info), fontsize=11)
    return save_figure(fig, path)


def _curves_panel(ax: Axes, key: str, history: dict[str, list[float]], info: dict[str, Any],
                  reference: tuple[str, dict[str, list[float]]] | None) -> None:
    """One learning-curves panel: `key` and its validation twin per epoch."""
    from matplotlib.ticker import MaxNLocator

    epochs = history["epoch"]
    marker = "o" if len(epochs) <= 30 else None
    curves = {"training": history[key]}
    if VALIDATION_PREFIX + key in history:
        curves["validation"] = history[VALIDATION_PREFIX + key]
    skipped = 0
    for (label, values), color in zip(curves.items(), (ORANGE, BLUE), strict=False):
        finite = _finite(values)
        skipped += int(np.isnan(finite).sum())
        ax.plot(epochs, finite, color=color, marker=marker, ms=3, label=label)
    # The loss alone tells the story of the path avoided; a second panel would clutter it.
    avoided = reference is not None and key == "loss" and "val_loss" in reference[1]
    if reference is not None and avoided:
        curves["avoided"] = reference[1]["val_loss"]
        ax.plot(reference[1]["epoch"], _finite(curves["avoided"]), color="#888888", ls="--",
                lw=1.2, zorder=1, label=f"validation, not stopped:\n{reference[0]}")
    if _wants_log(curves.values()):
        ax.set_yscale("log")
    _mark_best_and_stop(ax, info, curves.get("validation") or curves["training"], epochs)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(key + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.set_title(key + (f" ({skipped} NaN/inf values not drawn)" if skipped else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center" if avoided else "best", framealpha=0.85)


def _rate_panel(ax: Axes, epochs: list[float], rates: np.ndarray) -> None:
    """The learning rate at each epoch's last step, on a log scale when it spans 10x or more."""
    from matplotlib.ticker import MaxNLocator

    ax.plot(epochs, rates, color="#2ca02c", marker="o" if len(epochs) <= 30 else None, ms=3)
    positive = rates[np.isfinite(rates)]
    if (positive > 0).all() and positive.max() >= 10 * positive.min():
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(LEARNING_RATE + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.set_title("learning rate")
    ax.grid(alpha=0.3)


def _unstopped_history(run_dir: Path) -> tuple[str, dict[str, list[float]]] | None:
    """The name and history of the same training without early stopping, when one is beside."""
    from dlrecap.reference_run import unstopped_twin

    twin = unstopped_twin(run_dir)
    return (twin.name, read_history(twin)) if twin else None


def _mark_best_and_stop(ax: Axes, info: dict[str, Any], curve: list[float],
                        epochs: list[float]) -> None:
    """The best epoch (a line and a star) and, after an early stop, the epochs it waited."""
    best = info.get("best_epoch")
    if best:
        ax.axvline(best, color="#2ca02c", ls="--", lw=1.2, label=f"best epoch {best}")
        if 1 <= best <= len(curve) and math.isfinite(curve[int(best) - 1]):
            ax.plot([best], [curve[int(best) - 1]], marker="*", ms=14, color="#2ca02c")
    if info.get("stopped_early"):
        stop = info.get("epochs_run") or epochs[-1]
        if best and stop > best:
            ax.axvspan(best, stop, color="#d62728", alpha=0.08, lw=0)
        waited = f": {info.get('monitor') or 'val_loss'} not better for {stop - best} epochs" \
            if best else ""
        ax.axvline(stop, color="#d62728", ls=":", lw=1.5, label=f"stopped at epoch {stop}{waited}")


def _curves_title(info: dict[str, Any]) -> str:
    title = f"{info.get('name', '')}: learning curves"
    status = info.get("status")
    if status in ("failed", "interrupted"):
        title += f" ({status})"
    if info.get("error"):
        error = str(info["error"]).splitlines()[0]
        title += "\n" + (error if len(error) <= 110 else error[:107] + "...")
    return title


def _finite(values: Any) -> np.ndarray:
    """The values with NaN in place of infinities: matplotlib leaves NaN points out."""
    array = np.asarray(values, dtype=float)
    return np.where(np.isfinite(array), array, np.nan)


def _wants_log(curves: Any) -> bool:
    """Whether the curves, all positive, span more than `LOG_RANGE` (a loss that exploded)."""
    values = np.concatenate([_finite(c) for c in curves])
    values = values[np.isfinite(values)]
    return bool(values.size) and bool((values > 0).all()) and values.max() > LOG_RANGE * values.min()


# --- classification --------------------------------------------------------------------


def classes_of(outputs: np.ndarray) -> np.ndarray:
    """Class indices from model outputs: threshold 0.5 for one output, else the argmax."""
    if outputs.shape[-1] == 1:
        return (outputs[:, 0] >= 0.5).astype(int)
    return outputs.argmax(axis=-1)


def decision_boundary(model: keras.Model, splits: Splits, labels: list[str], path: Path, title: str) -> Path:
    """Predicted class probability over the plane of the two numeric features, points on top.

    Text columns, if any, are held at their most frequent training value (the title says
    which): the picture is one slice of the model.
    """
    from matplotlib.colors import LinearSegmentedColormap

    names = numeric_features(splits)
    g0, g1, out = plane_outputs(model, splits, GRID)
    held = most_frequent(splits)
    fig, (ax,) = new_figure(1, 1, width=6.4, height=5.4, top=0.55 if held else 0.4, right=0.1)
    extent = (g0[0], g0[-1], g1[0], g1[-1])
    n = len(labels)
    if out.shape[-1] == 1:
        field = np.ma.masked_invalid(out[:, 0].reshape(GRID, GRID))
        cmap = LinearSegmentedColormap.from_list("playground", [ORANGE, "#f7f7f7", BLUE])
        image = ax.imshow(field, origin="lower", extent=extent, aspect="auto", cmap=cmap,
                          vmin=0, vmax=1, alpha=0.85)
        if field.count() and field.min() < 0.5 < field.max():
            ax.contour(g0, g1, field, levels=[0.5], colors="#333333", linewidths=1)
        # A flat field (a network that learned nothing) still shows its range here.
        span = f"{field.min():.2f} to {field.max():.2f}" if field.count() else "not finite"
        fig.colorbar(image, ax=ax, label=f"P({labels[-1]}), here {span}")
        colors = [ORANGE, BLUE]
    else:
        colors = _class_colors(n)
        _class_field(ax, out, colors, g0, g1, extent)
    for name, marker, edge, (x, y) in (("train", "o", "white", splits.split("train")),
                                       ("test", "^", "black", splits.split("test"))):
        points = numeric_matrix(splits, x)
        for k in range(n):
            rows = y == k
            if rows.any():
                ax.scatter(points[rows, 0], points[rows, 1], s=22, marker=marker, c=colors[k],
                           edgecolors=edge, linewidths=0.7, label=f"{name}: {labels[k]}")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.legend(fontsize=7, loc="upper right", framealpha=0.8, ncol=2 if n > 3 else 1)
    caption = f"{title}: decision boundary (circles train, triangles test)"
    if held:
        caption += f"\nwith {held_note(held)}"
    ax.set_title(caption, fontsize=10)
    return save_figure(fig, path)


def plane_outputs(model: Any, splits: Splits, points: int) -> tuple[np.ndarray, np.ndarray,
                                                                       np.ndarray]:
    """The model's outputs over the plane of the two numeric features, `points` a side.

    Returns:
        `(xs, ys, outputs)`: the coordinates, and one row of outputs per grid point, x fastest.
        `picture_rows.surface(outputs)` is what boundary_frames.npz holds per point.
    """
    xs, ys = plane_axes(splits, points)
    return xs, ys, model_outputs(model, plane_rows(splits, xs, ys))


def _class_field(ax: Axes, out: np.ndarray, colors: list[str], g0: np.ndarray, g1: np.ndarray,
                 extent: tuple[float, float, float, float]) -> None:
    """Each point of the plane in its predicted class's colour, pale where the model is unsure."""
    n = len(colors)
    out = np.nan_to_num(out, nan=1 / n)  # no opinion where the model gives none
    confidence = (out.max(axis=-1) - 1 / n) / (1 - 1 / n)
    rgb = np.array([_rgb(c) for c in colors])[out.argmax(axis=-1)]
    rgb = 1 - (1 - rgb) * (0.25 + 0.6 * confidence[:, None])  # pale when unsure
    ax.imshow(rgb.reshape(GRID, GRID, 3), origin="lower", extent=extent, aspect="auto")
    classes = out.argmax(axis=-1).reshape(GRID, GRID)
    if classes.min() < classes.max():  # one class everywhere has no boundary to draw
        ax.contour(g0, g1, classes, levels=np.arange(n) + 0.5, colors="#333333", linewidths=0.8)


def confusion_matrix(model: keras.Model, splits: Splits, labels: list[str], path: Path, title: str) -> Path:
    """Counts of true vs predicted class on the test split (validation, train if it is empty)."""
    split = next((s for s in reversed(SPLITS) if n_rows(splits.split(s)[0])), "train")
    x, y = splits.split(split)
    outputs = model_outputs(model, x)
    predicted = classes_of(outputs)
    # A diverged model may output NaN: such rows land in the first class, and the title says so.
    broken = int((~np.isfinite(outputs).all(axis=-1)).sum())
    n = len(labels)
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (y.astype(int), predicted), 1)
    size = 4.2 + 0.35 * n
    longest = max((len(str(label)) for label in labels), default=1)
    margin = 0.08 * min(longest, 20)  # room for the tick labels (x ones slanted past 4 classes)
    below = 0.6 + (margin if n > 4 else 0)
    fig, (ax,) = new_figure(1, 1, width=size + 1 + margin, height=size + below - 0.4,
                            left=0.6 + margin, bottom=below, top=0.45, right=0.1)
    image = ax.imshow(counts, cmap="Blues", aspect="auto")
    fig.colorbar(image, ax=ax, label="rows")
    high = counts.max() / 2 if counts.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=9,
                    color="white" if counts[i, j] > high else "black")
    ax.set_xticks(range(n), labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(counts) / max(1, counts.sum())
    note = f"\n{broken} rows with NaN/inf outputs counted as {labels[0]}" if broken else ""
    ax.set_title(f"{title}: {split} split, {len(y)} rows, accuracy {accuracy:.3f}{note}",
                 fontsize=10)
    return save_figure(fig, path)


# --- regression ------------------------------------------------------------------------


def predictions(model: keras.Model, splits: Splits, path: Path, title: str) -> Path:
    """Predicted vs true values; with one numeric feature also the fitted curve over the data."""
    one_feature = len(numeric_features(splits)) == 1
    fig, axes = new_figure(1, 2 if one_feature else 1, width=11 if one_feature else 5.6, height=5,
                           top=0.55 if one_feature and splits.categorical else 0.4)
    ax = axes[0]
    everything = []
    for name, color, (x, y) in (("train", ORANGE, splits.split("train")),
                                ("test", BLUE, splits.split("test"))):
        if n_rows(x):
            guess = _finite(model_outputs(model, x)[:, 0])
            everything += [y, guess]
            mae = float(np.nanmean(np.abs(guess - y))) if np.isfinite(guess).any() else math.nan
            ax.scatter(y, guess, s=14, alpha=0.7, c=color, label=f"{name} (mae {mae:.3g})")
    finite = np.concatenate(everything) if everything else np.zeros(0)
    finite = finite[np.isfinite(finite)]
    if finite.size:
        ax.plot([finite.min(), finite.max()], [finite.min(), finite.max()], color="#333333",
                lw=1, ls="--", label="perfect")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{title}: predicted vs true", fontsize=10)
    if one_feature:
        _fitted_curve(axes[1], model, splits)
    return save_figure(fig, path)


def _fitted_curve(ax: Axes, model: keras.Model, splits: Splits) -> None:
    """The data over its one numeric feature, and the model's output along it."""
    x_all = np.concatenate([numeric_matrix(splits, x) for x in (splits.x_train, splits.x_val,
                                                                  splits.x_test)])
    line = np.linspace(x_all.min(), x_all.max(), 400, dtype="float32").reshape(-1, 1)
    for name, color, (x, y) in (("train", ORANGE, splits.split("train")),
                                ("test", BLUE, splits.split("test"))):
        ax.scatter(numeric_matrix(splits, x)[:, 0], y, s=12, alpha=0.6, c=color, label=name)
    held = most_frequent(splits)
    guess = _finite(model_outputs(model, model_rows(splits, line, held))[:, 0])
    ax.plot(line[:, 0], guess, color="#333333", lw=2, label="model")
    ax.set_xlabel(numeric_features(splits)[0])
    ax.set_ylabel("target")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("what the network learned" + (f"\nwith {held_note(held)}" if held else ""),
                 fontsize=10)


# --- helpers ---------------------------------------------------------------------------


def new_figure(rows: int, cols: int, width: float, height: float, *, left: float = 0.75,
               bottom: float = 0.6, top: float = 0.7, right: float = 0.25) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas with `rows` x `cols` axes; margins are in inches.

    Fixed margins instead of a layout engine: constrained layout drew every figure twice
    and was about 40% of the drawing time.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=0.28)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, list(axes.ravel())


def save_figure(fig: Figure, path: Path) -> Path:
    with runs.atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def _class_colors(n: int) -> list[str]:
    base = [ORANGE, BLUE, "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf"]
    if n <= len(base):
        return base[:n]
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return [to_hex(colormaps["hsv"](i / n)) for i in range(n)]


def _rgb(color: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(color)

