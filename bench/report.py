"""The benchmark's report: medians, ratios, the issue's targets, the machine; RESULTS.md.

Standard library only, like bench/run.py (see there why).
"""

from __future__ import annotations

import math
import os
import platform
import re
import statistics
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

NAMES = {"dlrecap": "dlrecap", "keras": "plain Keras fit", "sklearn": "scikit-learn MLP"}
NOTES_MARK = "<!-- notes: kept when bench/run.py rewrites the results above -->"


@dataclass
class Context:
    """Everything one benchmark run measured."""

    workloads: list[Any]
    targets: tuple
    samples: dict[tuple[str, str], list[Any]]
    infos: dict[str, dict]
    reps: int
    quick: bool
    tf_baseline_mb: float | None
    floor_mb: float
    loads: list[float]
    seconds: float
    command: str
    edit_loop: list[str] | None = None  # W5's lines (bench/edit_loop.py), when it ran
    sweeps: list[str] | None = None  # the SWEEP section's lines (bench/sweep_speed.py)

    def median(self, key: str, contender: str, field: str) -> float:
        runs = self.samples.get((key, contender), [])
        values = [getattr(s, field) for s in runs]
        return statistics.median(values) if values else math.nan

    @property
    def device(self) -> str:
        labels = {s.device for (_, c), runs in self.samples.items() if c == "dlrecap"
                  for s in runs if s.device}
        return "gpu" if any(label.startswith("gpu") for label in labels) else "cpu"


def load_average() -> float:
    """The 1-minute load average (how busy the shared machine was)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return math.nan


def machine(ctx: Context) -> list[str]:
    """Lines describing the machine, the software and the run."""
    cpu = "unknown CPU"
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f"{mem_kb / 2**20:.1f} GiB RAM"
    except (OSError, AttributeError):
        ram = "RAM unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = ", ".join(f"{name} {_version(dist)}" for name, dist in (
        ("TensorFlow", "tensorflow"), ("Keras", "keras"), ("scikit-learn", "scikit-learn"),
        ("NumPy", "numpy")))
    devices = sorted({s.device for (_, c), runs in ctx.samples.items() if c == "dlrecap"
                      for s in runs if s.device})
    loads = [x for x in ctx.loads if not math.isnan(x)]
    load = (f"{loads[0]:.2f} at the start, {max(loads):.2f} at most, {loads[-1]:.2f} at the end"
            if loads else "unknown")
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores ({usable} usable), {ram}; "
        f"dlrecap trained on: {', '.join(devices) or 'unknown'}",
        f"- Software: Python {platform.python_version()}, {versions}",
        f"- Run: {datetime.now():%Y-%m-%d %H:%M}, `{ctx.command}`, {ctx.reps} repetition(s) per "
        f"contender (medians), {ctx.seconds / 60:.1f} min in all" + (", QUICK (tiny sizes)" if ctx.quick
                                                                   else ""),
        f"- Load average (1 min) while it ran: {load} (2 cores shared with other work: "
        "anything above ~0.5 before a run means the timings include other load)",
    ]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def results_table(ctx: Context) -> list[str]:
    lines = ["| workload | contender | end to end s | CPU s | training s | epochs | train samples/s "
             "| peak RSS MB | test metric |", "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
    for w in ctx.workloads:
        for c in NAMES:
            runs = ctx.samples.get((w.key, c))
            if not runs:
                continue
            engine = runs[0].engine
            label = NAMES[c] + (f" ({engine} engine)" if engine else "")
            wall, cpu, fit, epochs, speed, rss, metric = (ctx.median(w.key, c, f) for f in (
                "wall_s", "cpu_s", "fit_s", "epochs", "samples_per_s", "rss_mb", "test_metric"))
            lines.append(f"| {w.key} | {label} | {wall:.2f} | {cpu:.1f} | {fit:.3f} | {epochs:g} "
                         f"| {speed:,.0f} | {rss:,.0f} | {runs[0].metric} {metric:.4f} |")
    return lines


def ratios_table(ctx: Context) -> list[str]:
    lines = ["| workload | dlrecap vs | training phase | end to end | throughput | peak RSS |",
             "|---|---|--:|--:|--:|--:|"]
    for w in ctx.workloads:
        for base in ("keras", "sklearn"):
            if (w.key, base) not in ctx.samples or (w.key, "dlrecap") not in ctx.samples:
                continue
            fit, wall, speed, rss = (ctx.median(w.key, base, f) / ctx.median(w.key, "dlrecap", f)
                                     for f in ("fit_s", "wall_s", "samples_per_s", "rss_mb"))
            lines.append(f"| {w.key} | {NAMES[base]} | {fit:.2f}x faster | {wall:.2f}x faster "
                         f"| {1 / speed:.2f}x | {1 / rss:.2f}x |")
    return lines


def check_target(ctx: Context, target: tuple) -> tuple[str, bool | None]:
    """`(measured, met)` for one of run.TARGETS; met is None when it could not be measured."""
    key, _, kind, base, threshold = target
    m = lambda c, f: ctx.median(key, c, f)  # noqa: E731
    if kind == "memory":
        data_mb = ctx.infos[key]["data_bytes"] / 2**20
        if ctx.tf_baseline_mb is None:
            return "TensorFlow baseline not measured", None
        rss = m("dlrecap", "rss_mb")
        budget = threshold * data_mb + ctx.tf_baseline_mb
        ratio = (rss - ctx.tf_baseline_mb) / data_mb
        return (f"{rss:,.0f} MB vs budget {threshold:g} x {data_mb:,.0f} MB data + "
                f"{ctx.tf_baseline_mb:,.0f} MB TensorFlow = {budget:,.0f} MB; "
                f"(RSS - TF) / data = {ratio:.2f}x", rss <= budget)
    if kind == "metric":
        ours, theirs = m("dlrecap", "test_metric"), m(base, "test_metric")
        diff = 100 * (ours - theirs)
        # The epsilon keeps a difference of exactly one point (e.g. 3 test rows of 300) a pass.
        return f"{ours:.4f} vs {theirs:.4f} ({diff:+.1f} points)", ours >= theirs - threshold - 1e-9
    if kind == "fit_speedup":
        ratio = m(base, "fit_s") / m("dlrecap", "fit_s")
    elif kind == "wall_speedup":
        ratio = m(base, "wall_s") / m("dlrecap", "wall_s")
    else:
        ratio = m("dlrecap", "samples_per_s") / m(base, "samples_per_s")
    if math.isnan(ratio):
        return "not measured", None
    met = ratio >= threshold
    short = "" if met else f", {100 * (1 - ratio / threshold):.0f}% short"
    return f"{ratio:.2f}x (target {threshold:g}x{short})", met


def targets_table(ctx: Context) -> list[str]:
    order = [w.key for w in ctx.workloads]
    lines = ["| workload | target | measured | result |", "|---|---|---|---|"]
    for target in sorted((t for t in ctx.targets if t[0] in order), key=lambda t: order.index(t[0])):
        measured, met = check_target(ctx, target)
        verdict = {True: "met", False: "**missed**", None: "n/a"}[met]
        lines.append(f"| {target[0]} | {target[1]} | {measured} | {verdict} |")
    return lines


def spread(ctx: Context) -> list[str]:
    lines = []
    for w in ctx.workloads:
        parts = []
        for c in NAMES:
            runs = ctx.samples.get((w.key, c), [])
            parts.append(f"{c} " + ", ".join(f"{s.fit_s:.3f}" for s in runs))
        lines.append(f"- {w.key} training s per run: " + "; ".join(parts))
    return lines


def render(ctx: Context) -> str:
    """The results section, as Markdown (printed to stdout and kept in RESULTS.md)."""
    title = "GPU" if ctx.device == "gpu" else "CPU"
    rows = {w.key: ctx.infos[w.key]["rows"] for w in ctx.workloads if w.key in ctx.infos}
    workloads = [f"- {w.key}: {w.title}; rows train/validation/test "
                 f"{rows[w.key]['train']:,}/{rows[w.key]['validation']:,}/{rows[w.key]['test']:,}, "
                 f"{ctx.infos[w.key]['data_bytes'] / 2**20:,.1f} MB in memory"
                 for w in ctx.workloads if w.key in rows]
    sections = [
        f"## {title} run", "", *machine(ctx), "", "### Workloads", "", *workloads, "",
        f"### Results (median of {ctx.reps} run(s) each)", "", *results_table(ctx), "",
        "### Ratios (dlrecap against each baseline; above 1 favours dlrecap, except peak RSS)", "",
        *ratios_table(ctx), "", "### Targets (issue 5)", "", *targets_table(ctx), "",
        "### Per run", "", *spread(ctx),
        "- TensorFlow baseline (import TensorFlow, fit a tiny model) peak RSS: "
        + (f"{ctx.tf_baseline_mb:,.0f} MB" if ctx.tf_baseline_mb else "not measured (W4 not run)"),
        f"- Peak RSS floor (a child of this process that does nothing): {ctx.floor_mb:,.0f} MB",
        *(["", "### W5: the edit loop (five edits of configs/xor.yaml, each followed by a run)", "",
           *ctx.edit_loop] if ctx.edit_loop else []),
        *(["", "### Sweeps: a 6-trial grid sweep of configs/xor.yaml against one train", "",
           *ctx.sweeps] if ctx.sweeps else []),
    ]
    return "\n".join(sections) + "\n"


def write_results(path: Path, ctx: Context, text: str) -> None:
    """Puts `text` in `path`'s block for this device (cpu or gpu), keeping the others and notes."""
    begin, end = f"<!-- results:{ctx.device} -->", f"<!-- /results:{ctx.device} -->"
    block = f"{begin}\n{text}{end}\n"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in old and end in old:
        head, _, rest = old.partition(begin)
        _, _, tail = rest.partition(end)
        new = head + block + tail.lstrip("\n")
    elif NOTES_MARK in old:
        head, _, tail = old.partition(NOTES_MARK)
        new = head + block + "\n" + NOTES_MARK + tail
    else:
        new = HEADER + "\n" + block + "\n" + NOTES_MARK + "\n\n## Notes\n\n" + METHOD
    path.write_text(new, encoding="utf-8")


HEADER = """# dlrecap benchmark results

Written by `make bench` (`bench/run.py`); bench/README.md says how each number is measured.
A CPU run and a GPU run each keep their own section; the notes at the end are kept.
"""

METHOD = """- All three contenders train the same rows: dlrecap splits the data set, and the baselines
  get exactly those train/validation/test arrays (bench/prepare.py).
- scikit-learn's MLP has no dropout: on W2-W4 it trains the network without it.
- scikit-learn's early stopping (W2) carves its own validation rows out of what `fit` gets:
  it is given the train + validation rows and trains on as many rows as the others, but on
  a different random partition of them, and it watches validation accuracy, not loss.
- Without early stopping scikit-learn runs every epoch (`n_iter_no_change` > `max_iter`).
"""
