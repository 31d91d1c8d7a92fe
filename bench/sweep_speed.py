"""Sweeps: one `dlrecap train` against a 6-trial grid sweep of it, and --jobs 1 against --jobs 2.

Five commands, each timed start to exit (wall time), interleaved rep by rep so that load
from other work hits all alike:

- **train**: `dlrecap train configs/xor.yaml` (60 epochs, the default pictures);
- **sweep, --jobs 1**: `dlrecap sweep configs/xor.yaml` over a 3 x 2 grid (hidden
  activation tanh, relu, sigmoid; learning rate 0.01, 0.03), one trial at a time;
- **sweep, --jobs 2**: the same sweep, up to two trials at a time;
- **long trials, --jobs 1 and --jobs 2**: the same sweep with trials of a few seconds
  (10,000 epochs each, without early stopping).

Targets (issue 14): the sweep takes at most 1.5x one train; --jobs 2 is at least 1.0x as
fast as --jobs 1, with short trials and with trials of a few seconds. Standard library
only, like bench/run.py.

Usage: `python bench/sweep_speed.py [--reps N]`; `bench/run.py` runs it as its SWEEP section.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DLRECAP = [sys.executable, "-m", "dlrecap"]
CONFIG = ROOT / "configs" / "xor.yaml"
GRID = ["--grid", "model.layers[0].activation=tanh,relu,sigmoid",
        "--grid", "training.learning_rate=0.01,0.03"]
LONG = ["--set", "training.epochs=10000", "--set", "training.early_stopping=null"]
WAYS = {
    "train": ["train", str(CONFIG)],
    "sweep_jobs1": ["sweep", str(CONFIG), *GRID, "--jobs", "1"],
    "sweep_jobs2": ["sweep", str(CONFIG), *GRID, "--jobs", "2"],
    "long_jobs1": ["sweep", str(CONFIG), *GRID, *LONG, "--jobs", "1"],
    "long_jobs2": ["sweep", str(CONFIG), *GRID, *LONG, "--jobs", "2"],
}
# The targets: sweep / train at most this; jobs 1 / jobs 2 at least this.
SWEEP_OVER_TRAIN = 1.5
JOBS2_SPEEDUP = 1.0


def timed(args: list[str], runs_dir: Path) -> float:
    """Wall seconds of one dlrecap command, start to exit (it must succeed)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NO_COLOR": "1"}
    start = time.perf_counter()
    subprocess.run([*DLRECAP, *args, "--runs-dir", str(runs_dir)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(reps: int = 3) -> dict[str, list[float]]:
    """Seconds per command, each way: `{"train": [...], "sweep_jobs1": [...], ...}` (`WAYS`)."""
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="dlrecap-sweep-") as work:
        for rep in range(reps):
            for way, args in WAYS.items():
                seconds[way].append(timed(args, Path(work) / f"{way}-{rep}"))
                print(f"  sweep {way:11s} rep {rep + 1}: wall {seconds[way][-1]:6.2f}s",
                      file=sys.stderr, flush=True)
    return seconds


def lines(seconds: dict[str, list[float]]) -> list[str]:
    """The sweep section of the results: each way's median, the ratios, the targets (the
    long-trial pair where it was measured)."""
    median = {way: statistics.median(values) for way, values in seconds.items()}
    train, jobs1, jobs2 = median["train"], median["sweep_jobs1"], median["sweep_jobs2"]
    over = jobs1 / train
    met_over = "met" if over <= SWEEP_OVER_TRAIN else f"**missed** by {over - SWEEP_OVER_TRAIN:.2f}"
    each = "; ".join(f"{way} " + ", ".join(f"{s:.2f}" for s in values)
                     for way, values in seconds.items())
    table = [
        f"| command | median wall s ({len(seconds['train'])} runs) |", "|---|--:|",
        f"| `dlrecap train configs/xor.yaml` | {train:.2f} |",
        f"| 6-trial grid sweep, `--jobs 1` | {jobs1:.2f} |",
        f"| 6-trial grid sweep, `--jobs 2` | {jobs2:.2f} |",
    ]
    ratios = [f"- the sweep takes {over:.2f}x one train (target at most {SWEEP_OVER_TRAIN:g}x: {met_over})",
              _speedup_line("`--jobs 2`", jobs1, jobs2)]
    if "long_jobs1" in median:
        table += [f"| the same sweep, trials of a few seconds, `--jobs 1` | {median['long_jobs1']:.2f} |",
                  f"| the same sweep, trials of a few seconds, `--jobs 2` | {median['long_jobs2']:.2f} |"]
        ratios.append(_speedup_line("with trials of a few seconds, `--jobs 2`",
                                    median["long_jobs1"], median["long_jobs2"]))
    return [*table, "", *ratios, f"- seconds per command: {each}"]


def _speedup_line(what: str, jobs1: float, jobs2: float) -> str:
    speedup = jobs1 / jobs2
    met = "met" if speedup >= JOBS2_SPEEDUP else f"**missed** by {JOBS2_SPEEDUP - speedup:.2f}"
    return (f"- {what} is {speedup:.2f}x as fast as `--jobs 1` (target at least "
            f"{JOBS2_SPEEDUP:g}x: {met}), on {os.cpu_count()} cores")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    print("\n".join(lines(measure(args.reps))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
