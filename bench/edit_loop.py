"""W5: the edit loop. Five edits of configs/xor.yaml, each followed by a new run, two ways:

- **separate commands**: after each edit, `dlrecap train xor.yaml` as its own command; the
  time is the command's wall time, start to exit (TensorFlow is imported every time);
- **--watch**: one `dlrecap train xor.yaml --watch` process; the time runs from the moment
  the edited file is saved to the moment the new run's metrics.json says `completed`.

Each edit sets another `training.learning_rate`, the same five values both ways; the two
are interleaved (edit i as a command, then edit i under --watch) so that load from other
work hits both alike. Standard library only, like bench/run.py.

Usage: `python bench/edit_loop.py [--edits N]`; `bench/run.py` runs it as W5.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DLRECAP = [sys.executable, "-m", "dlrecap"]
CONFIG = ROOT / "configs" / "xor.yaml"
RATES = ("0.04", "0.03", "0.02", "0.01", "0.005", "0.045", "0.035", "0.025", "0.015")
# The target: a saved change under --watch gives a new completed run in under this.
TARGET_S = 2.5
TIMEOUT_S = 300.0


def edited(text: str, rate: str) -> str:
    """xor.yaml's text with another learning rate."""
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("learning_rate:"))
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    lines[at] = f"{indent}learning_rate: {rate}\n"
    return "".join(lines)


def completed(runs_dir: Path) -> int:
    """How many runs in `runs_dir` have status `completed`."""
    count = 0
    for path in runs_dir.glob("*/metrics.json"):
        try:
            count += json.loads(path.read_text())["status"] == "completed"
        except (OSError, ValueError, KeyError):  # being written
            continue
    return count


def wait_for_completed(runs_dir: Path, count: int, proc: subprocess.Popen) -> None:
    end = time.monotonic() + TIMEOUT_S
    while completed(runs_dir) < count:
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"the --watch process ended or stalled (exit {proc.poll()})")
        time.sleep(0.01)


def measure(edits: int = 5) -> dict[str, list[float]]:
    """Seconds per edit, each way: `{"commands": [...], "watch": [...]}`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NO_COLOR": "1"}
    base = CONFIG.read_text(encoding="utf-8")
    seconds: dict[str, list[float]] = {"commands": [], "watch": []}
    with tempfile.TemporaryDirectory(prefix="dlrecap-w5-") as work:
        folder = Path(work)
        command_config, watch_config = folder / "commands" / "xor.yaml", folder / "watch" / "xor.yaml"
        for config in (command_config, watch_config):
            config.parent.mkdir()
            config.write_text(base, encoding="utf-8")
        watch_runs = watch_config.parent / "runs"
        log = (folder / "watch.log").open("w")
        proc = subprocess.Popen([*DLRECAP, "train", str(watch_config), "--watch", "-q",
                                 "--runs-dir", str(watch_runs)], env=env, stdout=log, stderr=log)
        try:
            wait_for_completed(watch_runs, 1, proc)  # the first run: TensorFlow's import, not an edit
            for i in range(edits):
                rate = RATES[i % len(RATES)]
                command_config.write_text(edited(base, rate), encoding="utf-8")
                start = time.perf_counter()
                subprocess.run([*DLRECAP, "train", str(command_config), "-q", "--runs-dir",
                                str(command_config.parent / "runs")], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds["commands"].append(time.perf_counter() - start)
                watch_config.write_text(edited(base, rate), encoding="utf-8")
                start = time.perf_counter()
                wait_for_completed(watch_runs, i + 2, proc)
                seconds["watch"].append(time.perf_counter() - start)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    return seconds


def lines(seconds: dict[str, list[float]]) -> list[str]:
    """The W5 section of the results: each way's median, the ratio, the target."""
    commands, watch = (statistics.median(seconds[k]) for k in ("commands", "watch"))
    met = "met" if watch < TARGET_S else f"**missed** by {watch - TARGET_S:.2f} s"
    each = "; ".join(f"{k} " + ", ".join(f"{s:.2f}" for s in v) for k, v in seconds.items())
    return [
        f"| way | median s per edit ({len(seconds['watch'])} edits) |", "|---|--:|",
        f"| separate `dlrecap train` commands (start to exit) | {commands:.2f} |",
        f"| `dlrecap train --watch` (save to `completed`) | {watch:.2f} |", "",
        f"- --watch is {commands / watch:.2f}x faster per edit than separate commands",
        f"- target: a saved change gives a new completed run in under {TARGET_S:g} s under "
        f"--watch: {watch:.2f} s, {met}",
        f"- seconds per edit: {each}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=5)
    args = parser.parse_args(argv)
    print("\n".join(lines(measure(args.edits))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
