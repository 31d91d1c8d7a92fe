"""boundary.gif: the model's surface over the input plane as it trained, from its frames.

Training keeps the frames (`boundary_frames.npz`, written by `train.callbacks.BoundaryFrames`)
and draws nothing; this module turns them into an animation with the training points on
top. One figure is drawn once and only its image, contour and title change per frame, so a
60-frame GIF takes a few seconds, and nothing here needs TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlrecap import runs
from dlrecap.picture_rows import numeric_features, numeric_matrix

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from dlrecap.data.split import Splits

BOUNDARY_GIF = "boundary.gif"
FRAME_MS = 120
LAST_FRAME_MS = 2000  # the result: long enough to look at before the loop starts again
GIF_DPI = 72
GIF_COLORS = 128


def read_frames(run_dir: Path) -> dict[str, Any] | None:
    """boundary_frames.npz's arrays, or None when the run has none (or a damaged file)."""
    path = Path(run_dir) / runs.FRAMES_FILE
    if not path.is_file():
        return None
    try:
        frames = runs.read_arrays(path)
    except (OSError, ValueError):
        return None
    needed = ("epochs", "xs", "ys", "frames")
    if not all(k in frames for k in needed):
        return None
    return None if frames_problem(*(np.asarray(frames[k]) for k in needed)) else frames


def frames_problem(epochs: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                   frames: np.ndarray) -> str | None:
    """What is wrong with frames not shaped as training writes them, or None."""
    if frames.ndim != 3 or frames.shape != (len(epochs), len(ys), len(xs)) or not len(epochs):
        return (f"{runs.FRAMES_FILE} holds frames of shape {frames.shape} for {len(epochs)} "
                f"epochs on a {len(xs)} x {len(ys)} grid")
    return None


def frame_titles(frames: dict[str, Any], title: str) -> list[str]:
    """Each frame's caption: its epoch, and for a last frame of restored weights, whose they are."""
    epochs = [int(e) for e in frames["epochs"]]
    captions = [f"{title}: epoch {e}" + (" (untrained)" if e == 0 else "") for e in epochs]
    kept = int(frames.get("kept_epoch", epochs[-1]))
    if kept != epochs[-1]:
        captions[-1] = f"{title}: epoch {epochs[-1]}, the kept weights of epoch {kept}"
    return captions


def boundary_animation(frames: dict[str, Any], splits: Splits, labels: list[str], path: Path,
                       title: str) -> Path:
    """Write the frames as an animated GIF at `path`, the training points drawn on each.

    Binary: P(positive class) in Playground's orange-to-blue, the 0.5 contour dark.
    Multiclass: each point in its predicted class's colour. Regression: the prediction,
    coloured on the training targets' scale.
    """
    from PIL import Image

    from dlrecap.plots import new_figure

    xs, ys, fields = frames["xs"], frames["ys"], np.asarray(frames["frames"], dtype=np.float32)
    legend = splits.task != "regression" and len(labels) > 2  # beside the plot: room for it
    fig, (ax,) = new_figure(1, 1, width=6.2 if legend else 5.6, height=4.8, top=0.45,
                            right=1.2 if legend else 0.15)
    fig.set_dpi(GIF_DPI)
    names = numeric_features(splits)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    caption = ax.set_title("", fontsize=10)
    scene = _Scene(ax, splits, labels, xs, ys, fields[0])
    # Axes, ticks and colour bar are drawn once; each frame redraws only what changes on top.
    for artist in (*scene.moving, caption):
        artist.set_animated(True)
    canvas = fig.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)  # type: ignore[attr-defined]
    shots = []
    for field, text in zip(fields, frame_titles(frames, title), strict=True):
        canvas.restore_region(background)  # type: ignore[attr-defined]
        caption.set_text(text)
        for artist in (*scene.paint(field), caption):
            fig.draw_artist(artist)
        shots.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())  # type: ignore[attr-defined]
    # One palette for all frames, from four across the run: colours do not flicker.
    sample = [shots[i * (len(shots) - 1) // 3] for i in range(4)]
    palette = Image.fromarray(np.concatenate(sample)).quantize(colors=GIF_COLORS)
    images = [Image.fromarray(shot).quantize(palette=palette, dither=Image.Dither.NONE)
              for shot in shots]
    durations = [FRAME_MS] * (len(images) - 1) + [LAST_FRAME_MS]
    with runs.atomic_path(Path(path)) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=durations, loop=0, disposal=1)
    return Path(path)


class _Scene:
    """The plot of one frame: the surface, its contour and the training points.

    `moving` are the artists redrawn every frame; `paint(field)` updates the surface and
    its contour and returns them, in drawing order.
    """

    def __init__(self, ax: Axes, splits: Splits, labels: list[str], xs: np.ndarray,
                 ys: np.ndarray, first: np.ndarray):
        self.ax, self.xs, self.ys = ax, xs, ys
        x, y = splits.split("train")
        points = numeric_matrix(splits, x)
        extent = (xs[0], xs[-1], ys[0], ys[-1])
        self.levels: list[float] = []
        self.contour: Any = None
        if splits.task == "regression":
            self.image, self.points = self._regression(ax, points, np.asarray(y, float), first, extent)
        else:
            self.image, self.points = self._classes(ax, points, np.asarray(y), labels, first, extent)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])

    @property
    def moving(self) -> list[Any]:
        return [self.image, *self.points]

    def _regression(self, ax: Axes, points: np.ndarray, target: np.ndarray, first: np.ndarray,
                    extent: tuple[float, float, float, float]) -> tuple[Any, list[Any]]:
        low, high = float(np.nanmin(target)), float(np.nanmax(target))
        image = ax.imshow(first, origin="lower", extent=extent, aspect="auto", cmap="viridis",
                          vmin=low, vmax=high, alpha=0.85)
        dots = ax.scatter(points[:, 0], points[:, 1], s=12, c=target, cmap="viridis", vmin=low,
                          vmax=high, edgecolors="white", linewidths=0.5)
        ax.figure.colorbar(image, ax=ax, label="prediction")
        return image, [dots]

    def _classes(self, ax: Axes, points: np.ndarray, y: np.ndarray, labels: list[str],
                 first: np.ndarray, extent: tuple[float, float, float, float]) -> tuple[Any, list[Any]]:
        from matplotlib.colors import LinearSegmentedColormap, ListedColormap

        from dlrecap.plots import BLUE, ORANGE, _class_colors

        n = max(len(labels), 2)
        colors = [ORANGE, BLUE] if n == 2 else _class_colors(n)
        if n == 2:
            cmap = LinearSegmentedColormap.from_list("playground", [ORANGE, "#f7f7f7", BLUE])
            image = ax.imshow(first, origin="lower", extent=extent, aspect="auto", cmap=cmap,
                              vmin=0, vmax=1, alpha=0.85)
            ax.figure.colorbar(image, ax=ax, label=f"P({labels[-1] if labels else 1}); "
                                                  f"points: {labels[0] if labels else 0} orange, "
                                                  f"{labels[-1] if labels else 1} blue")
            self.levels = [0.5]
        else:
            image = ax.imshow(first, origin="lower", extent=extent, aspect="auto",
                              cmap=ListedColormap([_pale(c) for c in colors]), vmin=-0.5,
                              vmax=n - 0.5)
            self.levels = list(np.arange(n - 1) + 0.5)
        dots = []
        for k in range(n):
            rows = y == k
            if rows.any():
                dots.append(ax.scatter(points[rows, 0], points[rows, 1], s=14, c=colors[k],
                                       edgecolors="white", linewidths=0.5,
                                       label=str(labels[k]) if k < len(labels) else str(k)))
        if n > 2:  # two classes: the colour bar says which is which
            # Beside the plot, where no frame covers it: drawn once.
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), framealpha=0.8)
        return image, dots

    def paint(self, field: np.ndarray) -> list[Any]:
        self.image.set_data(np.ma.masked_invalid(field))
        if self.contour is not None:
            self.contour.remove()
            self.contour = None
        finite = field[np.isfinite(field)]
        levels = self.levels
        if levels and finite.size and finite.min() < levels[-1] and finite.max() > levels[0]:
            self.contour = self.ax.contour(self.xs, self.ys, field, levels=levels,
                                           colors="#333333", linewidths=1)
            self.contour.set_animated(True)
        return [self.image, *([self.contour] if self.contour else []), *self.points]


def _pale(color: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return tuple(1 - 0.55 * (1 - c) for c in to_rgb(color))  # type: ignore[return-value]
