"""One sweep, several workers: wall time of a 12-trial XOR sweep run by 1, 2 and 3 worker
processes joined on one study (`dlrecap sweep ... --storage sqlite:///...`), side by side.

Each worker is a separate `dlrecap sweep` process, as on separate machines; on one machine
they share its cores, so the best ratio to expect is about cores / 1 (2 workers on 2 cores:
about 0.5 of the one-worker time, plus the extra TensorFlow import each worker pays).

Usage: `python bench/sweep_workers.py [--workers 1,2,3] [--trials 12]`; prints a table and
the ratios to one worker.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
name: xorbench
data: {dataset: xor, samples: 128}
model: {layers: [8]}
training: {epochs: 5, batch_size: 16}
"""


def sweep_wall(workers: int, trials: int, folder: Path) -> float:
    """Seconds from starting `workers` processes on a fresh study until the last one exits."""
    config = folder / "xorbench.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    study = folder / f"study-{workers}.db"
    cmd = [sys.executable, "-m", "dlrecap", "sweep", str(config), "--search", "random",
           "--range", "training.learning_rate=0.001:0.1:log", "--trials", str(trials),
           "--jobs", "1", "--storage", f"sqlite:///{study}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    procs = [subprocess.Popen([*cmd, "--runs-dir", str(folder / f"w{workers}-{i}")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(workers)]
    errors = [p.communicate()[1] for p in procs]
    if any(p.returncode for p in procs):
        failed = [e.strip().splitlines()[-1:] for p, e in zip(procs, errors, strict=True) if p.returncode]
        raise SystemExit(f"a worker failed: exit codes {[p.returncode for p in procs]}: {failed}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        walls = {n: sweep_wall(n, args.trials, Path(tmp)) for n in counts}
    base = walls[counts[0]]
    print(f"{args.trials}-trial XOR sweep, {os.cpu_count()} cores")
    print("workers  wall_s  ratio")
    for n, seconds in walls.items():
        print(f"{n:>7}  {seconds:6.1f}  {seconds / base:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
