"""Helpers the test modules share: the CLI in-process, fake run directories, waiting on files.

Imported by name (`from helpers import invoke`): pytest puts this folder on `sys.path`
because it holds the root conftest.py and no `__init__.py`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

# A config that trains in seconds: six epochs of a small network on 200 noisy moons rows.
TINY_MOONS = """\
name: tiny
seed: 3
data: {dataset: moons, samples: 200, noise: 0.25}
model: {layers: [16]}
training: {learning_rate: 0.05, batch_size: 16, epochs: 6}
"""

# Plain, wide-enough output: no colour codes and no wrapping that depends on the terminal.
ENV = {"NO_COLOR": "1", "COLUMNS": "120"}


def whole_and_resumed(path: Path, folder: Path, stop_after: int) -> tuple[Any, Any]:
    """The config at `path` trained whole, and trained again with Ctrl-C pressed after epoch
    `stop_after`, then resumed: the two `TrainResult`s."""
    from dlrecap.config.load import load_config
    from dlrecap.errors import Interrupted
    from dlrecap.pipeline import train

    whole = train(load_config(path), folder / "whole")
    with pytest.raises(Interrupted):
        train(load_config(path), folder / "cut", progress=CtrlCAfter(stop_after))
    (cut,) = (folder / "cut").iterdir()
    return whole, train(load_config(path), folder / "cut", resume=cut)


def config_over(base: dict[str, Any], path: Path, data: dict | None = None,
                model: dict | None = None, **training: Any) -> Path:
    """Write `base` with its `data`, `model` and `training` keys updated to `path` (YAML)."""
    config = json.loads(json.dumps(base))
    config["data"].update(data or {})
    config["model"].update(model or {})
    config["training"].update(training)
    path.write_text(yaml.safe_dump(config))
    return path


def invoke(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    """Run `dlrecap ARGS` in this process; stdout and stderr come back separately.

    Args:
        *args: the command line after `dlrecap`.
        env: variables set for the call, on top of `ENV`.
        stdin: the text the command reads from standard input.

    Example:
        result = invoke("validate", "configs/xor.yaml")
        assert result.exit_code == 0, result.output
    """
    from typer.testing import CliRunner

    from dlrecap.cli import app

    return CliRunner().invoke(app, list(args), input=stdin, env={**ENV, **(env or {})})


def make_run_dir(folder: Path, *, metrics: dict[str, Any] | None = None,
                 history: str | None = None, config: dict[str, Any] | str | None = None) -> Path:
    """A run directory written by hand, with only the files given (no model, no training).

    The files are written plainly, not through `dlrecap.runs`, so tests of that module do
    not lean on the code they test.

    Args:
        folder: the run directory; created with its parents if missing.
        metrics: the content of metrics.json.
        history: the text of history.csv.
        config: config.yaml, as a mapping or as YAML text.

    Returns:
        `folder`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    if history is not None:
        (folder / "history.csv").write_text(history, encoding="utf-8")
    if config is not None:
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        (folder / "config.yaml").write_text(text, encoding="utf-8")
    return folder


def wait_for(predicate: Callable[[], bool], timeout: float, *, what: str,
             processes: Iterable[subprocess.Popen] = ()) -> None:
    """Return once `predicate()` holds; fail the test on timeout or if a process ends first.

    The processes watched here tell their progress only through the files they write, and
    the standard library cannot wait on a file appearing, so this polls (every 50 ms). On
    failure every process still running is killed, so none outlives its test.

    Args:
        predicate: the readiness signal, e.g. "the checkpoint's state.json exists".
        timeout: seconds to wait at most.
        what: the signal in words, for the failure message.
        processes: processes expected to keep running meanwhile.
    """
    processes = list(processes)
    end = time.monotonic() + timeout
    while not predicate():
        ended = [p for p in processes if p.poll() is not None]
        if ended or time.monotonic() > end:
            reason = "a process ended" if ended else f"timed out after {timeout:.0f} s"
            for p in processes:
                p.kill()
            errors = [(p.communicate()[1] or "")[-2000:] for p in processes]
            pytest.fail(f"{reason} waiting for {what}; stderr: {errors}")
        time.sleep(0.05)


def write_prices(path: Path, rows: int = 300, seed: int = 0) -> Path:
    """A regression CSV whose target is in the tens of thousands, far from a network's start.

    `price = 20000 + 3000 x1 - 2000 x2 + noise`, the noise with standard deviation 500 (a
    mean absolute error of about 400 is the floor); always guessing the mean is off by
    about 2,900.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    price = 20000 + 3000 * x1 - 2000 * x2 + 500 * rng.normal(size=rows)
    lines = ["x1,x2,price", *(f"{a:.5f},{b:.5f},{p:.2f}" for a, b, p in zip(x1, x2, price, strict=True))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def students_csv(rows: int, seed: int) -> str:
    """A binary CSV with text labels: `passed` is pass or fail from lectures and project hours."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lectures, hours = rng.integers(0, 31, rows), rng.uniform(0, 40, rows).round(1)
    passed = np.where(40 * lectures / 30 + 60 * hours / 40 > 50, "pass", "fail")
    return "lectures,project_hours,passed\n" + "".join(
        f"{a},{b},{c}\n" for a, b, c in zip(lectures, hours, passed, strict=True))


class CtrlCAfter:
    """A progress display that presses Ctrl-C (SIGINT to this process) after epoch `n`.

    Pass it as `train(..., progress=CtrlCAfter(2))`: the run is then marked interrupted after
    epoch 2, as if the user had pressed Ctrl-C.
    """

    def __init__(self, n: int):
        self.n = n

    def start(self, epochs: int, columns: list[str], done: int = 0) -> None:
        pass

    def epoch(self, epoch: int, logs: dict[str, float]) -> None:
        if epoch == self.n:
            signal.raise_signal(signal.SIGINT)

    def finish(self) -> None:
        pass
