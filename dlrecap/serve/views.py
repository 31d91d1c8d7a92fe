"""What the page shows of the runs, read from their directories into JSON-ready data.

Every reader copes with run directories that change underneath it: a run that starts, a
file replaced by its atomic rename, a run deleted between two reads. A run (or file) that
is not there raises `Gone`; a file that is there but unreadable is shown as such.
"""

from __future__ import annotations

import base64
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dlrecap import runs
from dlrecap.animation import frames_problem
from dlrecap.errors import DlrecapError
from dlrecap.vocab import SPLITS

# The pictures the page shows, in its order, with their captions. Only these names are served.
PICTURES = {
    "boundary.gif": "The decision surface as it trained",
    "neurons.png": "Every hidden unit's activation over the input plane",
    "decision_boundary.png": "Decision boundary: predicted probability over the input plane",
    "activations.png": "Activations of each hidden layer's units",
    "learning_curves.png": "Learning curves: training vs validation, best epoch and early stop",
    "confusion_matrix.png": "Confusion matrix",
    "predictions.png": "Predicted vs true",
}
MEDIA_TYPES = {".png": "image/png", ".gif": "image/gif"}
# Boundary frames beyond this size are not sent to the page (a run's are well under 10 MiB).
FRAMES_LIMIT_BYTES = 256 * 2**20
# What the page lists about a run, from its metrics.json.
FACTS = ("task", "epochs_run", "best_epoch", "weights_epoch", "stopped_early", "duration_s",
         "parameters", "engine", "device", "seed", "started_at")


class Gone(Exception):
    """The run or the file asked for is not there (never was, or was deleted)."""


class Unreadable(Exception):
    """The file is there but cannot be shown; the message says why."""


def run_list(runs_dir: Path, live_pid: int | None = None) -> dict[str, Any]:
    """Every run in `runs_dir`, oldest first, and which of them `live_pid` trains (or trained).

    Args:
        runs_dir: the runs directory; it may not exist (yet).
        live_pid: the process whose run the page follows (`train --live`), or None.
    """
    try:
        found = runs.list_runs(runs_dir)
    except OSError:  # the folder went away while it was listed
        found = []
    live = None
    if live_pid is not None:
        live = next((r.path.name for r in reversed(found) if r.metrics.get("pid") == live_pid), None)
    return json_safe({"runs_dir": str(runs_dir), "live": live,
                      "runs": [_summary(run) for run in found]})


def _summary(run: runs.RunInfo) -> dict[str, Any]:
    try:
        epochs = runs.epochs_done(run.path, run.metrics)
    except DlrecapError:  # history.csv vanished between two looks
        epochs = None
    return {"run": run.path.name, "name": run.name, "status": runs.listed_status(run.metrics),
            "epochs": epochs, "started": run.started, "test": _headline(run.metrics.get("test"))}


def _headline(test: Any) -> str | None:
    """The test split's main metric, as `dlrecap runs` shows it."""
    if not isinstance(test, dict):
        return None
    name = next((k for k in test if k != "loss"), "loss" if "loss" in test else None)
    value = test.get(name) if name else None
    return f"{name} {value:.4f}" if isinstance(value, (int, float)) else None


def run_path(runs_dir: Path, run: str) -> Path:
    """The directory of run `run` in `runs_dir`: one plain name, nothing above or below it.

    Raises:
        Gone: no such run (including any name that is not a single folder's name).
    """
    if run != Path(run).name or run.startswith(".") or "\x00" in run or not runs.is_run_name(run):
        raise Gone(run)
    path = Path(runs_dir) / run
    if not (path / runs.METRICS_FILE).is_file():
        raise Gone(run)
    return path


def run_state(runs_dir: Path, run: str) -> dict[str, Any]:
    """Everything the page shows of one run: status, progress, metrics, history, config, files.

    Raises:
        Gone: the run is not there, or was deleted while it was read.
    """
    path = run_path(runs_dir, run)
    metrics, problem = _metrics(path)
    history = _history(path)
    config = _text(path / runs.CONFIG_FILE)
    status = runs.listed_status({**metrics, "status": runs.shown_status(path, metrics)})
    if not path.is_dir():
        raise Gone(run)
    return json_safe({
        "run": run, "name": metrics.get("name") or run, "status": status, "problem": problem,
        "epoch": len(history["rows"]) or _int(metrics.get("epochs_run")),
        "epochs": _planned_epochs(config),
        "facts": {key: metrics[key] for key in FACTS if key in metrics},
        "metrics": {s: metrics[s] for s in SPLITS if isinstance(metrics.get(s), dict)},
        "baseline": _dict(metrics.get("baseline")), "labels": metrics.get("labels"),
        "features": metrics.get("features"),
        "error": metrics.get("error"), "warnings": metrics.get("warnings") or [],
        "history": history, "config": config,
        "pictures": _pictures(path), "frames": _stat(path / runs.FRAMES_FILE),
    })


def _metrics(path: Path) -> tuple[dict[str, Any], str | None]:
    """metrics.json, and what is wrong with it when it cannot be read."""
    try:
        return runs.read_metrics(path), None
    except DlrecapError as exc:
        if not (path / runs.METRICS_FILE).is_file():
            raise Gone(path.name) from None
        return {"status": "unreadable"}, exc.render()


def _history(path: Path) -> dict[str, Any]:
    """history.csv as `{"columns": [...], "rows": [[...], ...]}`, None where a cell is empty."""
    try:
        rows = runs.read_history(path)
    except DlrecapError:
        rows = []
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return {"columns": columns, "rows": [[row.get(c) for c in columns] for row in rows]}


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _planned_epochs(config: str | None) -> int | None:
    """`training.epochs` of the resolved config.yaml, if it can be read."""
    try:
        training = yaml.safe_load(config or "").get("training")
        return _int(training.get("epochs"))
    except (yaml.YAMLError, AttributeError):
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _pictures(path: Path) -> list[dict[str, Any]]:
    """The pictures present, in the page's order: name, caption, change time (ns) and size."""
    found = []
    for name, caption in PICTURES.items():
        if stat := _stat(path / name):
            found.append({"name": name, "caption": caption, **stat})
    return found


def _stat(path: Path) -> dict[str, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return {"mtime": stat.st_mtime_ns, "size": stat.st_size}


def picture(runs_dir: Path, run: str, name: str) -> tuple[bytes, str]:
    """The bytes and media type of one of `PICTURES` in a run directory.

    Raises:
        Gone: an unknown name, or a file that is not there (or not inside the run directory).
    """
    if name not in PICTURES:
        raise Gone(name)
    folder = run_path(runs_dir, run)
    path = folder / name
    try:
        if path.resolve().parent != folder.resolve():  # a link pointing out of the run
            raise Gone(name)
        return path.read_bytes(), MEDIA_TYPES[path.suffix]
    except OSError:
        raise Gone(name) from None


def boundary_frames(runs_dir: Path, run: str) -> dict[str, Any]:
    """The run's boundary frames, for the page to animate.

    The frames go as one byte per value (0-255 over `lo`..`hi`, base64): far smaller than
    JSON numbers, and finer than the eye tells apart. Probabilities keep the range 0..1, so
    0.5 stays the middle colour; other values span their own range. `kept_epoch`, when
    training recorded it, is the epoch whose weights the last frame shows (early stopping
    may have put back an earlier epoch's).

    Raises:
        Gone: the run or its frames are not there.
        Unreadable: the file is damaged or not shaped as training writes it.
    """
    path = run_path(runs_dir, run) / runs.FRAMES_FILE
    try:
        if path.stat().st_size > FRAMES_LIMIT_BYTES:
            raise Unreadable(f"{runs.FRAMES_FILE} is too large to show")
        with np.load(path, allow_pickle=False) as npz:
            epochs, xs, ys, frames = (np.asarray(npz[k]) for k in ("epochs", "xs", "ys", "frames"))
            kept = int(npz["kept_epoch"]) if "kept_epoch" in npz.files else None
    except FileNotFoundError:
        raise Gone(runs.FRAMES_FILE) from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise Unreadable(f"{runs.FRAMES_FILE} is unreadable ({type(exc).__name__})") from None
    if problem := frames_problem(epochs, xs, ys, frames):
        raise Unreadable(problem)
    lo, hi = _value_range(frames)
    values = np.where(np.isfinite(frames), frames, lo).astype(np.float64)
    data = np.clip(np.rint((values - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
    return json_safe({"epochs": epochs.astype(int).tolist(), "xs": xs.astype(float).tolist(),
                      "ys": ys.astype(float).tolist(), "shape": list(frames.shape),
                      "lo": lo, "hi": hi, "kept_epoch": kept,
                      "data": base64.b64encode(data.tobytes()).decode("ascii")})


def _value_range(frames: np.ndarray) -> tuple[float, float]:
    finite = frames[np.isfinite(frames)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
