"""The run an early-stopped run is best compared with: the same training, not stopped.

Early stopping is judged by what it prevented. When the runs directory also holds a run of
the same config without early stopping (`configs/overfit.yaml` beside
`configs/early_stopping.yaml`, or `--set training.early_stopping=null`), the learning curves
draw its validation loss as the path avoided.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dlrecap import runs

# Keys that may differ between a run and its unstopped twin: what is stopped, and how the
# run is named and judged. `training.keep` follows early stopping where it exists.
_IGNORED = (("name",), ("expect",), ("training", "early_stopping"), ("training", "keep"))


def unstopped_twin(run_dir: Path) -> Path | None:
    """The latest completed run beside `run_dir` with its config but no early stop, or None.

    Args:
        run_dir: a run directory; its siblings in the same runs directory are searched.

    Example:

    ```python
    twin = unstopped_twin(Path("runs/early_stopping-20240517-093005"))
    # runs/overfit-20240517-092811, if overfit.yaml was trained there
    ```
    """
    run_dir = Path(run_dir)
    own = _essence(run_dir)
    if own is None:
        return None
    for run in reversed(runs.list_runs(run_dir.parent)):
        if run.path == run_dir or run.metrics.get("status") != "completed":
            continue
        if run.metrics.get("stopped_early"):
            continue
        if _essence(run.path) == own:
            return run.path
    return None


def _essence(run_dir: Path) -> dict[str, Any] | None:
    """The run's resolved config without the keys a twin may change; None if unreadable."""
    try:
        config = yaml.safe_load((run_dir / runs.CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    for path in _IGNORED:
        parent: Any = config
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    return config
