"""W6: answering a finished run. Wall time of `dlrecap eval` and `dlrecap predict` on an XOR
run, the NumPy inference path beside the Keras one (`DLRECAP_INFERENCE=keras`), in one run.

Usage: `python bench/inference.py [--reps N]`; prints a table and the ratios.
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


def wall(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryDirectory() as work:
        runs = Path(work) / "runs"
        subprocess.run([*DLRECAP, "train", str(ROOT / "configs/xor.yaml"), "--runs-dir", str(runs), "-q"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        run = next(runs.iterdir())
        rows = Path(work) / "rows.csv"
        rows.write_text("x1,x2\n0.5,0.5\n-0.5,0.5\n", encoding="utf-8")
        commands = {"eval": [*DLRECAP, "eval", str(run)],
                    "predict": [*DLRECAP, "predict", str(run), str(rows)]}
        print(f"W6: wall seconds, median of {args.reps} (numpy path vs keras path)")
        print(f"{'command':<10}{'numpy':>8}{'keras':>8}{'ratio':>8}")
        for name, cmd in commands.items():
            light, heavy = [], []
            for _ in range(args.reps):  # interleaved, so both see the same machine load
                light.append(wall(cmd, env))
                heavy.append(wall(cmd, {**env, "DLRECAP_INFERENCE": "keras"}))
            a, b = statistics.median(light), statistics.median(heavy)
            print(f"{name:<10}{a:>8.2f}{b:>8.2f}{b / a:>7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
