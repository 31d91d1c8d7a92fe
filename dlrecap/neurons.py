"""What each hidden unit computes: `neurons.png` over the input plane, `activations.png` else.

neurons.png is TensorFlow Playground's network view for a real model: one column per layer
(inputs, each hidden layer, the output), in each a small heatmap per unit of its activation
over the plane of the two numeric features, and lines between the columns for the weights
(blue positive, orange negative, thicker when larger). The first layer draws lines (or
ridges), the next ones combine them into the boundary.

With more than two features there is no plane to draw on: activations.png shows each hidden
unit's activations over the training rows as a histogram, dead and saturated units marked
as diagnostics.csv counts them.

Both read model.keras with the NumPy inference path: no TensorFlow.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlrecap import runs
from dlrecap.picture_rows import numeric_features, plane_axes, plane_rows
from dlrecap.vocab import SATURATED_ROWS, SATURATION_MARGIN

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from dlrecap.data.split import Splits
    from dlrecap.inference import LightModel

NEURONS = "neurons.png"
ACTIVATIONS = "activations.png"
MAX_UNITS = 16  # units drawn per layer; wider layers show their first ones and say so
NEURON_GRID = 48
PANEL, GAP, ROW_GAP = 0.85, 0.95, 0.12  # inches: a heatmap, the space for the weight lines
TOP = 1.2  # inches above the tallest column: the title, then the column headers
HISTOGRAM_ROWS = 4000
HISTOGRAM_COLUMNS = 8
# As train/health.py judges them: dead ReLU outputs never leave 0; saturated sigmoid or
# tanh outputs stay near their bounds (vocab.SATURATION_MARGIN, vocab.SATURATED_ROWS).
BOUNDS = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}
DEAD_COLOR, SATURATED_COLOR, PLAIN_COLOR = "#d62728", "#9467bd", "#0877bd"


@dataclass(frozen=True)
class Panel:
    """One heatmap of the neuron grid.

    Args:
        column: 0 for the inputs, then one per Dense layer (the output last).
        row: the unit's index in its layer (and its row in the grid).
        total: how many units its layer has (more than are drawn past `MAX_UNITS`).
    """

    column: int
    row: int
    total: int


def neuron_panels(widths: list[int], cap: int = MAX_UNITS) -> list[Panel]:
    """The panels of a network with layers `widths` (inputs first): at most `cap` a column."""
    return [Panel(c, r, w) for c, w in enumerate(widths) for r in range(min(w, cap))]


def hidden_widths(light: LightModel) -> list[int]:
    """Units of each Dense layer, the output last."""
    return [int(k.shape[1]) for k in light.kernels]


# --- neurons.png -------------------------------------------------------------------------


def neuron_grid(light: LightModel, splits: Splits, path: Path, title: str) -> Path:
    """Draw neurons.png: each unit's activation over the input plane, weights as lines."""
    xs, ys = plane_axes(splits, NEURON_GRID)
    values = light.trace(plane_rows(splits, xs, ys))
    mesh = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    columns = [mesh, *(np.asarray(values[name], dtype=np.float32) for name in light.dense)]
    widths = [2, *hidden_widths(light)]
    panels = neuron_panels(widths)
    tallest = max(p.row for p in panels) + 1
    width = 0.6 + len(widths) * PANEL + (len(widths) - 1) * GAP + 0.4
    height = TOP + tallest * (PANEL + ROW_GAP) + 0.3
    fig = _figure(width, height)
    boxes: dict[tuple[int, int], tuple[float, float, float, float]] = {}
    for panel in panels:
        box = _box(panel, tallest, width, height)
        boxes[(panel.column, panel.row)] = box
        ax = fig.add_axes(box)
        _heatmap(ax, columns[panel.column][:, panel.row].reshape(len(ys), len(xs)),
                 _scale(columns[panel.column], panel.column, light), xs, ys)
    _weight_lines(fig, light, boxes, widths, kernel_rows_are_plane=light.kernels[0].shape[0] == 2)
    _column_headers(fig, light, widths, boxes, numeric_features(splits))
    fig.suptitle(f"{title}: what each unit computes over the input plane\n"
                 "lines: weights, blue positive, orange negative, thicker when larger",
                 fontsize=10)
    from dlrecap.plots import save_figure

    return save_figure(fig, path)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _box(panel: Panel, tallest: int, width: float, height: float) -> tuple[float, float, float, float]:
    """The panel's axes rectangle in figure fractions; each column centred vertically."""
    shown = min(panel.total, MAX_UNITS)
    offset = (tallest - shown) * (PANEL + ROW_GAP) / 2
    left = 0.6 + panel.column * (PANEL + GAP)
    top = TOP + offset + panel.row * (PANEL + ROW_GAP)
    return left / width, 1 - (top + PANEL) / height, PANEL / width, PANEL / height


def _scale(values: np.ndarray, column: int, light: LightModel) -> tuple[float, float]:
    """A column's colour range: its activation's bounds (white mid-way), else ±its largest value."""
    activation = light.activations[column - 1] if column > 0 else "linear"
    if activation in BOUNDS or activation == "softmax":
        return BOUNDS.get(activation, (0.0, 1.0))
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return -top, top


def _heatmap(ax: Axes, field: np.ndarray, scale: tuple[float, float], xs: np.ndarray,
             ys: np.ndarray) -> None:
    from matplotlib.colors import LinearSegmentedColormap

    from dlrecap.plots import BLUE, ORANGE

    cmap = LinearSegmentedColormap.from_list("playground", [ORANGE, "#f7f7f7", BLUE])
    ax.imshow(np.ma.masked_invalid(field), origin="lower", cmap=cmap, vmin=scale[0], vmax=scale[1],
              extent=(xs[0], xs[-1], ys[0], ys[-1]), aspect="auto")
    ax.set_xticks([])
    ax.set_yticks([])


def _weight_lines(fig: Figure, light: LightModel, boxes: dict[tuple[int, int], Any],
                  widths: list[int], kernel_rows_are_plane: bool) -> None:
    """A line per weight between the units drawn, width by size and colour by sign."""
    from matplotlib.lines import Line2D

    from dlrecap.plots import BLUE, ORANGE

    for layer, kernel in enumerate(light.kernels, start=1):
        if layer == 1 and not kernel_rows_are_plane:
            continue  # text columns feed the first layer too: only the plane's inputs are drawn
        shown = kernel[:min(widths[layer - 1], MAX_UNITS), :min(widths[layer], MAX_UNITS)]
        largest = float(np.abs(shown).max()) or 1.0
        for (i, j), w in np.ndenumerate(shown):
            x0, y0, w0, h0 = boxes[(layer - 1, i)]
            x1, y1, _, h1 = boxes[(layer, j)]
            fig.add_artist(Line2D([x0 + w0, x1], [y0 + h0 / 2, y1 + h1 / 2],
                                  color=BLUE if w > 0 else ORANGE, alpha=0.65,
                                  linewidth=0.2 + 3.3 * abs(float(w)) / largest))


def _column_headers(fig: Figure, light: LightModel, widths: list[int],
                    boxes: dict[tuple[int, int], Any], features: list[str]) -> None:
    for column, units in enumerate(widths):
        x, y, w, h = boxes[(column, 0)]
        if column == 0:
            text = "inputs\n" + ", ".join(features)
        else:
            kind = "output" if column == len(widths) - 1 else f"layer {column}"
            more = f", first {MAX_UNITS} shown" if units > MAX_UNITS else ""
            text = f"{kind}\n{units} {light.activations[column - 1]}{more}"
        fig.text(x + w / 2, y + h + 0.01, text, ha="center", va="bottom", fontsize=7)


# --- activations.png ---------------------------------------------------------------------


def unit_states(values: np.ndarray, activation: str) -> list[str]:
    """Each unit's state over the rows `values` (rows, units): `dead`, `saturated` or ``."""
    states = []
    for unit in np.asarray(values, dtype=np.float64).T:
        unit = unit[np.isfinite(unit)]
        if activation in ("relu", "relu6") and unit.size and not (unit > 0).any():
            states.append("dead")
        elif activation in BOUNDS and unit.size and _near_bounds(unit, activation) >= SATURATED_ROWS:
            states.append("saturated")
        else:
            states.append("")
    return states


def _near_bounds(unit: np.ndarray, activation: str) -> float:
    low, high = BOUNDS[activation]
    return float(np.mean((unit <= low + SATURATION_MARGIN) | (unit >= high - SATURATION_MARGIN)))


def activation_histograms(light: LightModel, x_train: Any, run_dir: Path, path: Path,
                          title: str) -> Path:
    """Draw activations.png: a histogram per hidden unit over (up to 4,000) training rows.

    Each layer takes `HISTOGRAM_COLUMNS` units a row, its first `MAX_UNITS` units in all;
    the label beside it counts the dead and saturated units among all of them.
    """
    from dlrecap.data.split import n_rows
    from dlrecap.evaluate import _rows
    from dlrecap.plots import new_figure

    values = light.trace(_rows(x_train, 0, min(n_rows(x_train), HISTOGRAM_ROWS)))
    hidden = [(name, act, np.asarray(values[name], dtype=np.float32))
              for name, act in zip(light.dense[:-1], light.activations[:-1], strict=True)]
    rows = [-(-min(units.shape[1], MAX_UNITS) // HISTOGRAM_COLUMNS) for _, _, units in hidden]
    fig, axes = new_figure(sum(rows), HISTOGRAM_COLUMNS, width=1.5 * HISTOGRAM_COLUMNS + 1.6,
                           height=1.6 * sum(rows) + 1.5, left=1.6, bottom=0.35, top=0.95)
    fig.subplots_adjust(hspace=0.5)  # room for each unit's name above its histogram
    recorded = _diagnostics(run_dir)
    first = 0  # the layer's first axes
    for layer, ((_name, activation, units), height) in enumerate(zip(hidden, rows, strict=True), 1):
        states = unit_states(units, activation)
        block = axes[first:first + height * HISTOGRAM_COLUMNS]
        for unit, ax in enumerate(block):
            if unit < min(units.shape[1], MAX_UNITS):
                _histogram(ax, units[:, unit], states[unit], f"{layer}.{unit + 1}")
            else:
                ax.set_axis_off()
        block[0].set_ylabel(_layer_note(layer, activation, states, recorded.get(str(layer))),
                            fontsize=7)
        first += height * HISTOGRAM_COLUMNS
    fig.suptitle(f"{title}: each hidden unit's activations over the training rows\n"
                 "red: dead (never above 0), purple: saturated (at its bounds on 95% of rows)",
                 fontsize=10)
    from dlrecap.plots import save_figure

    return save_figure(fig, path)


def _histogram(ax: Axes, unit: np.ndarray, state: str, label: str) -> None:
    color = {"dead": DEAD_COLOR, "saturated": SATURATED_COLOR}.get(state, PLAIN_COLOR)
    finite = unit[np.isfinite(unit)]
    ax.hist(finite, bins=30, color=color, alpha=0.85)
    ax.set_title(label + (f" {state}" if state else ""), fontsize=7, color=color)
    ax.tick_params(labelsize=6)
    ax.set_yticks([])


def _layer_note(layer: int, activation: str, states: list[str], row: dict[str, str] | None) -> str:
    """The row label: the layer, what its units here are, and diagnostics.csv's last count."""
    dead, saturated = states.count("dead"), states.count("saturated")
    note = f"layer {layer}, {activation}, {len(states)} units"
    if len(states) > MAX_UNITS:
        note += f" (first {MAX_UNITS} shown)"
    if dead or saturated:
        note += f"\n{dead} dead, {saturated} saturated here"
    if row:
        shares = [f"{k.split('_')[0]} {float(row[k]):.0%}" for k in ("dead_share", "saturated_share")
                  if row.get(k) not in (None, "")]
        if shares:
            note += f"\ndiagnostics.csv, epoch {row['epoch']}: " + ", ".join(shares)
    return note


def _diagnostics(run_dir: Path) -> dict[str, dict[str, str]]:
    """diagnostics.csv's rows of its last epoch, by layer label (`1`, `2`, ..., `output`)."""
    path = Path(run_dir) / runs.DIAGNOSTICS_FILE
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return {}
    last = max((r.get("epoch", "") for r in rows), key=lambda e: int(e) if e.isdigit() else -1,
               default="")
    return {r["layer"]: r for r in rows if r.get("epoch") == last and r.get("layer")}
