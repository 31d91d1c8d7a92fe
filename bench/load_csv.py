"""How long and how much memory: a 1,000,000-row x 20-column CSV, loaded and trained one epoch.

Writes the CSV (numeric features, a binary target) to a temporary folder, then runs, each in
its own process so that peak memory is that process's alone:

1. loading and splitting the file exactly as `train` does (`load_splits`), and
2. `dlrecap train` on it for one epoch.

It prints wall time and peak resident memory (from `wait4`'s rusage) for each. Run:

    .venv/bin/python bench/load_csv.py              # 1,000,000 x 20
    .venv/bin/python bench/load_csv.py --rows 100000 --engine keras
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CONFIG = """\
name: big
data:
  path: big.csv
  target: y
model:
  layers: [64, 32]
training:
  epochs: 1
  batch_size: {batch_size}
  engine: {engine}
"""
LOAD_ONLY = """\
from dlrecap.config.load import load_config
from dlrecap.data import load_splits
config = load_config({config!r}).config
splits = load_splits(config.data, config.seed)
print(splits.x_train.shape, splits.x_train.dtype, splits.task, splits.label_names)
"""


def write_csv(path: Path, rows: int, columns: int, seed: int = 0) -> None:
    """Numeric features; the target is 1 where a fixed linear score is positive (plus noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, columns)).astype(np.float32)
    score = x @ rng.normal(size=columns).astype(np.float32) + rng.normal(size=rows) * 0.5
    frame = pd.DataFrame(x, columns=[f"f{i + 1}" for i in range(columns)])
    frame["y"] = (score > 0).astype(np.int8)
    frame.to_csv(path, index=False, float_format="%.5f")


def measure(command: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """Runs `command`; returns wall seconds, peak RSS in MiB, exit status and its stderr tail."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err,
                                   env={**os.environ, "NO_COLOR": "1"})
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-6:]
    # ru_maxrss is in KiB on Linux
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), "\n".join(tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--engine", default="auto", choices=("auto", "numpy", "fast", "keras"))
    args = parser.parse_args()
    dlrecap = Path(sys.executable).parent / "dlrecap"

    with tempfile.TemporaryDirectory(prefix="dlrecap-bench-") as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        write_csv(folder / "big.csv", args.rows, args.columns)
        size = (folder / "big.csv").stat().st_size / 2**20
        print(f"wrote {args.rows:,} x {args.columns} CSV ({size:.0f} MiB) in "
              f"{time.perf_counter() - start:.1f}s")
        config = folder / "big.yaml"
        config.write_text(CONFIG.format(batch_size=args.batch_size, engine=args.engine))

        load = measure([sys.executable, "-c", LOAD_ONLY.format(config=str(config))], folder)
        print(f"load + split only:     {load[0]:6.1f}s  peak RSS {load[1]:6.0f} MiB  (exit {load[2]})")
        train = measure([str(dlrecap), "train", str(config), "--runs-dir", str(folder / "runs")],
                        folder)
        print(f"dlrecap train 1 epoch: {train[0]:6.1f}s  peak RSS {train[1]:6.0f} MiB  (exit {train[2]})")
        if train[2] != 0 or load[2] != 0:
            print(load[3], train[3], sep="\n", file=sys.stderr)
            sys.exit(1)
        print(train[3])


if __name__ == "__main__":
    main()
