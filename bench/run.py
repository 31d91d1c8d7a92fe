"""Benchmark dlrecap against plain Keras `fit` and scikit-learn's MLP, side by side.

`make bench` runs this script. Each workload (W1-W4 below) is prepared once per run (data
generated, split exactly as dlrecap splits it), then each contender trains it in a child
process of its own, several times; this process measures each child with `os.wait4`: wall
time from start to exit and the child's peak RSS. Each child reports its own training-phase
time and test metric. The medians go to stdout and to bench/RESULTS.md, with W5 (the edit
loop: separate `dlrecap train` commands against `--watch`, bench/edit_loop.py) and the SWEEP
section (a 6-trial sweep against one train, `--jobs 2` against `--jobs 1`, bench/sweep_speed.py).

Usage: `python bench/run.py [--reps N] [--only W1,W2] [--quick] [--output FILE]`

This process imports only the standard library on purpose: a child's peak RSS as the kernel
reports it is at least what its parent held when it started it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

BENCH = Path(__file__).resolve().parent


def _load(name: str):
    # bench/ is not a package; load its modules by path so no sys.path entry leaks to importers.
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"dlrecap_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


report = _load("report")
edit_loop = _load("edit_loop")  # W5, which has no baselines to train: bench/edit_loop.py
EDIT_LOOP = "W5"
sweep_speed = _load("sweep_speed")  # sweeps against one train, and --jobs 2 against --jobs 1
SWEEPS = "SWEEP"

CONTENDERS = ("dlrecap", "keras", "sklearn")


@dataclass(frozen=True)
class Workload:
    """One benchmark workload.

    Args:
        key: `W1` ... `W4`.
        title: what it trains, in a few words.
        config: the dlrecap config under bench/configs (the baselines copy its settings).
        rows: rows of the generated synthetic data set, or None for a built-in data set.
        quick: `--set` overrides for `--quick` (tiny sizes, to check that everything runs).
        quick_rows: `rows` under `--quick`.
    """

    key: str
    title: str
    config: str
    rows: int | None = None
    quick: tuple[str, ...] = ()
    quick_rows: int | None = None


WORKLOADS = (
    Workload("W1", "xor, 600 rows, 12 tanh units, batch 32, 300 epochs", "w1_xor.yaml",
             quick=("training.epochs=5",)),
    Workload("W2", "digits, [64, 64] relu, dropout 0.2, batch 32, early stopping (patience 10)",
             "w2_digits.yaml", quick=("training.epochs=3",)),
    Workload("W3", "synthetic 100,000 x 32 binary, [128, 128] relu, dropout 0.2, batch 128, "
             "5 epochs", "w3_synthetic_100k.yaml", rows=100_000,
             quick=("training.epochs=1",), quick_rows=2_000),
    Workload("W4", "synthetic 1,000,000 x 32 binary, [128, 128] relu, dropout 0.2, batch 1024, "
             "2 epochs", "w4_synthetic_1m.yaml", rows=1_000_000,
             quick=("training.epochs=1",), quick_rows=4_000),
)

# The targets: (workload, what, kind, baseline, threshold); report.check_target reads them.
TARGETS = (
    ("W1", "training phase >= 10x faster than plain fit", "fit_speedup", "keras", 10.0),
    ("W1", "end to end >= 3x faster than plain fit", "wall_speedup", "keras", 3.0),
    ("W2", "training phase >= 5x faster than plain fit", "fit_speedup", "keras", 5.0),
    ("W2", "training phase within 2x of scikit-learn", "fit_speedup", "sklearn", 0.5),
    ("W3", "training throughput >= 2x plain fit", "throughput_ratio", "keras", 2.0),
    ("W3", "training throughput >= 1.3x scikit-learn", "throughput_ratio", "sklearn", 1.3),
    ("W4", "peak RSS <= 2 x data size + TensorFlow baseline", "memory", None, 2.0),
    *((w.key, f"test metric within 1 point of {b}", "metric", b, 0.01)
      for w in WORKLOADS for b in ("keras", "sklearn")),
)


@dataclass
class Sample:
    """One contender's run of one workload."""

    wall_s: float
    rss_mb: float
    fit_s: float
    epochs: int
    train_rows: int
    test_metric: float
    metric: str
    cpu_s: float = float("nan")
    engine: str | None = None
    device: str | None = None

    @property
    def samples_per_s(self) -> float:
        return self.train_rows * self.epochs / self.fit_s if self.fit_s > 0 else float("nan")


class ChildFailed(RuntimeError):
    """A contender's process exited with an error."""


class Measured(NamedTuple):
    """What the parent saw of one child: wall s, peak RSS MB, CPU s (user + system), stdout."""

    wall_s: float
    rss_mb: float
    cpu_s: float
    stdout: str


def measure(cmd: list[str], log: Path) -> Measured:
    """Runs `cmd` and measures it from outside with `os.wait4`.

    stderr goes to `log`; a non-zero exit raises ChildFailed with the log's tail.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as err, tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        raise ChildFailed(f"{' '.join(cmd)} exited with {proc.returncode}:\n" + "\n".join(tail))
    # ru_maxrss is in KiB on Linux; CPU time is less disturbed by other load than wall time.
    return Measured(wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, stdout)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def prepare(w: Workload, work: Path, quick: bool) -> dict:
    """Generates and splits the workload's data in a child; returns its summary."""
    cmd = [sys.executable, str(BENCH / "prepare.py"), str(work), w.key, str(BENCH / "configs" / w.config)]
    rows = w.quick_rows if quick else w.rows
    if rows is not None:
        cmd += ["--rows", str(rows)]
    for override in (w.quick if quick else ()):
        cmd += ["--set", override]
    return last_json(measure(cmd, work / f"{w.key}-prepare.log").stdout)


def run_contender(name: str, w: Workload, info: dict, work: Path, rep: int) -> Sample:
    """One run of contender `name` on workload `w`."""
    log = work / f"{w.key}-{name}-{rep}.log"
    if name == "dlrecap":
        runs_dir = work / f"runs-{w.key}-{rep}"
        cmd = [str(Path(sys.executable).with_name("dlrecap")), "train",
               str(BENCH / "configs" / w.config), "--runs-dir", str(runs_dir), "--quiet"]
        for override in info["overrides"]:
            cmd += ["--set", override]
        seen = measure(cmd, log)
        run_dir = Path(seen.stdout.strip().splitlines()[-1])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        metric = "mae" if metrics["task"] == "regression" else "accuracy"
        return Sample(seen.wall_s, seen.rss_mb, metrics["fit_s"], metrics["epochs_run"],
                      metrics["rows"]["train"], metrics["test"][metric], metric, seen.cpu_s,
                      metrics.get("engine"), metrics.get("device"))
    script = BENCH / f"{name}_baseline.py"
    cmd = [sys.executable, str(script), str(work / f"{w.key}-splits.npz"),
           str(work / f"{w.key}-spec.json")]
    seen = measure(cmd, log)
    r = last_json(seen.stdout)
    return Sample(seen.wall_s, seen.rss_mb, r["fit_s"], r["epochs"], r["train_rows"],
                  r["test_metric"], r["metric"], seen.cpu_s)


def tf_baseline_mb(work: Path, reps: int) -> float:
    """Median peak RSS of a child that imports TensorFlow and fits a tiny model."""
    cmd = [sys.executable, str(BENCH / "keras_baseline.py"), "--tf-baseline"]
    return statistics.median(measure(cmd, work / f"tf-baseline-{i}.log").rss_mb for i in range(reps))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="dlrecap vs plain Keras fit vs scikit-learn.")
    parser.add_argument("--reps", type=int, default=3, help="runs per contender (default 3)")
    parser.add_argument("--only", default=None, help="comma-separated workloads, e.g. W1,W2")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and few epochs: checks that everything runs, times nothing")
    parser.add_argument("--output", type=Path, default=None,
                        help="results file (default bench/RESULTS.md; none with --quick)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help="comma-separated subset of " + ", ".join(CONTENDERS))
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, runs)")
    args = parser.parse_args(argv)
    keys = [w.key for w in WORKLOADS] + [EDIT_LOOP, SWEEPS]
    args.only = keys if args.only is None else [k.strip().upper() for k in args.only.split(",")]
    unknown = [k for k in args.only if k not in keys]
    args.contenders = [c.strip() for c in args.contenders.split(",")]
    unknown += [c for c in args.contenders if c not in CONTENDERS]
    if unknown or args.reps < 1:
        parser.error(f"unknown {unknown}: choose from {keys} and {list(CONTENDERS)}" if unknown
                     else "--reps must be at least 1")
    if args.output is None and not args.quick:
        args.output = BENCH / "RESULTS.md"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = [w for w in WORKLOADS if w.key in args.only]
    work = Path(tempfile.mkdtemp(prefix="dlrecap-bench-"))
    loads = [report.load_average()]
    samples: dict[tuple[str, str], list[Sample]] = {}
    infos = {}
    started = time.time()
    try:
        for w in workloads:
            print(f"{w.key}: preparing ({w.title})", file=sys.stderr, flush=True)
            infos[w.key] = prepare(w, work, args.quick)
            for rep in range(args.reps):
                for name in args.contenders:  # interleaved, so that load spikes hit all alike
                    loads.append(report.load_average())
                    s = run_contender(name, w, infos[w.key], work, rep)
                    samples.setdefault((w.key, name), []).append(s)
                    print(f"  {w.key} {name:8s} rep {rep + 1}: wall {s.wall_s:6.2f}s  train "
                          f"{s.fit_s:6.2f}s  rss {s.rss_mb:6.0f}MB  {s.metric} {s.test_metric:.4f}",
                          file=sys.stderr, flush=True)
        tf_mb = tf_baseline_mb(work, args.reps) if "W4" in args.only and "dlrecap" in args.contenders \
            else None
        edits = None
        if EDIT_LOOP in args.only:
            print(f"{EDIT_LOOP}: the edit loop ({edit_loop.__doc__.splitlines()[0]})", file=sys.stderr)
            edits = edit_loop.measure(2 if args.quick else 5)
        sweeps = None
        if SWEEPS in args.only:
            print(f"{SWEEPS}: {sweep_speed.__doc__.splitlines()[0]}", file=sys.stderr)
            # At least 5: one sweep's wall time swings by a second or two with the machine's
            # load (the same command took 6.9-8.5 s in one run), which moves a single ratio
            # by 0.2 or more and a median of 3 by 0.1.
            sweeps = sweep_speed.measure(1 if args.quick else max(5, args.reps))
        loads.append(report.load_average())
    except (ChildFailed, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}\n(logs kept in {work})", file=sys.stderr)
        return 1
    command = " ".join(["bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    context = report.Context(
        workloads=workloads, targets=TARGETS, samples=samples, infos=infos,
        reps=args.reps, quick=args.quick, tf_baseline_mb=tf_mb,
        floor_mb=measure(["/bin/true"], work / "floor.log").rss_mb,
        loads=loads, seconds=time.time() - started, command=command,
        edit_loop=edit_loop.lines(edits) if edits else None,
        sweeps=sweep_speed.lines(sweeps) if sweeps else None)
    text = report.render(context)
    print(text)
    if args.output is not None:
        report.write_results(args.output, context, text)
        print(f"wrote {args.output}", file=sys.stderr)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
