"""The `dlrecap` command line: parse, call one library function, render.

Commands that do not train (`validate`, `schema`, `datasets`, `runs`, `--help`) never import
TensorFlow, so they answer at once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer.core import TyperGroup

from dlrecap import console
from dlrecap.errors import (
    ConfigError,
    DlrecapError,
    ExpectationError,
    Interrupted,
    TrainingError,
    first_line,
    printable,
    write_crash_log,
)
from dlrecap.vocab import SPLITS, is_per_class, per_class_rows

if TYPE_CHECKING:
    from dlrecap.compare import Comparison
    from dlrecap.config.load import LoadedConfig
    from dlrecap.pipeline import TrainResult
    from dlrecap.sweep.plan import SweepPlan


class _Group(TyperGroup):
    """Turns every failure into `error: ...` lines and the contract's exit code."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False  # failures are ours to render, the exit ours to make
        try:
            code = super().main(*args, **kwargs)
        except (Exception, KeyboardInterrupt) as exc:
            code = _report(exc)
        if standalone_mode:
            sys.exit(code or 0)
        return code


def _report(exc: Exception | KeyboardInterrupt) -> int:
    """Say what went wrong on the console; return the exit code the contract gives it."""
    if isinstance(exc, typer.Abort):  # Ctrl-C outside training, turned into Abort by Click
        console.note("interrupted")
        return 130
    if isinstance(exc, DlrecapError):
        return _report_own(exc)
    if isinstance(exc, KeyboardInterrupt):
        console.error("interrupted")
        return 130
    if type(exc).__name__ == "NoArgsIsHelpError" or _is_usage_error(exc):
        return _report_click(exc)
    return _crash(exc)


def _report_click(exc: Any) -> int:
    """Click's own errors; Typer vendors Click, so they are known by name only."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `dlrecap`: the help, as is
        exc.show()
    else:  # a ClickException, such as a UsageError
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path if ctx else 'dlrecap'} --help)"
        console.error(printable(f"{exc.format_message()}{hint}"))
    return exc.exit_code


def _report_own(exc: DlrecapError) -> int:
    if isinstance(exc, ExpectationError):
        for line in exc.unmet:
            console.error(f"expect: {line}")
        console.error(exc.render())
    elif isinstance(exc, Interrupted):
        console.note(exc.render())
    else:
        console.error(exc.render())
    return exc.exit_code


def _is_usage_error(exc: Exception) -> bool:
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


def _crash(exc: Exception) -> int:
    """An internal error: one line for the user, the traceback in a log file."""
    import tempfile

    fd, name = tempfile.mkstemp(prefix="dlrecap-crash-", suffix=".log")
    os.close(fd)
    log = write_crash_log(Path(name), exc)
    where = f" (traceback in {log})" if log else ""
    console.error(printable(f"internal error: {type(exc).__name__}: {first_line(exc)}{where}"))
    return 1


app = typer.Typer(
    cls=_Group,
    name="dlrecap",
    help="Train dense neural networks from a YAML config.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)



def _show_version(value: bool) -> None:
    if value:
        from dlrecap import __version__

        console.result(f"dlrecap {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                 help="Print dlrecap's version and exit."),
) -> None:
    """Train dense neural networks from a YAML config."""


SetOption = typer.Option(
    [], "--set", metavar="KEY=VALUE",
    help="Override a config key with a YAML value, e.g. training.learning_rate=0.01.",
)
RunsDirOption = typer.Option(
    None, "--runs-dir", metavar="DIR",
    help="Where runs live (default: $DLRECAP_RUNS_DIR, else ./runs).",
)
StrictOption = typer.Option(False, "--strict", help="Treat config warnings as errors.")
PortOption = typer.Option(
    None, "--port", metavar="N", min=0, max=65535,
    help="Port on 127.0.0.1 (default: 8484, or a free one when that is taken; 0: a free one).",
)


def _choice(default: str | None, flag: str, choices: tuple[str, ...], help: str) -> Any:
    """An option taking one of `choices`: `--help` lists them and the shell completes them.

    The value is checked by `_check_option`, which suggests the nearest choice.
    """
    return typer.Option(default, flag, metavar="|".join(choices), help=help,
                        autocompletion=lambda: list(choices))


DEVICES = ("auto", "cpu", "gpu")
DeviceOption = _choice("auto", "--device", DEVICES,
                       "Where to train (default: auto, a GPU when there is one).")


def _check_option(value: str, options: tuple[str, ...], what: str, flag: str) -> None:
    """A usage error (exit 2) naming the flag when `value` is not one of `options`."""
    from dlrecap.config.choices import check_choice

    try:
        check_choice(value, options, what)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def _runs_dir(value: Path | None) -> Path:
    from dlrecap.runs import default_runs_dir

    return value or default_runs_dir()


def _load_and_lint(config: Path, overrides: list[str], strict: bool) -> LoadedConfig:
    from dlrecap.config.lint import lint
    from dlrecap.config.load import load_config

    loaded = load_config(config, overrides)
    warnings = [loaded.locate(ConfigError(msg, key=key)).render()
                for key, msg in lint(loaded.config)]
    for line in warnings:
        (console.error if strict else console.warning)(line)
    if strict and warnings:
        raise DlrecapError(f"{len(warnings)} warning(s) with --strict",
                           fix="fix them or drop --strict")
    return loaded


@app.command()
def train(
    config: Path = typer.Argument(..., metavar="CONFIG", help="The YAML config file."),
    overrides: list[str] = SetOption,
    runs_dir: Path | None = RunsDirOption,
    resume: str | None = typer.Option(None, "--resume", metavar="RUN",
                                      help="Continue an interrupted run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the run directory."),
    device: str = DeviceOption,
    deterministic: bool = typer.Option(False, "--deterministic",
                                       help="TensorFlow op determinism (slower on GPUs)."),
    strict: bool = StrictOption,
    live: bool = typer.Option(False, "--live",
                              help="Show the run on a local web page while it trains "
                                   "(then keep serving until Ctrl-C)."),
    port: int | None = PortOption,
    watch: bool = typer.Option(False, "--watch",
                               help="Then retrain each time CONFIG or its data file is saved "
                                    "(Ctrl-C ends)."),
) -> None:
    """Validate CONFIG, train its model and write a run directory."""

    _check_option(device, DEVICES, "device", "--device")
    if port is not None and not live:
        raise typer.BadParameter("only with --live (or see dlrecap serve)", param_hint="--port")
    if watch and live:
        raise typer.BadParameter("--watch and --live cannot be combined", param_hint="--watch")
    directory = _runs_dir(runs_dir)

    def train_once(loaded: LoadedConfig, resume_dir: Path | None = None) -> TrainResult:
        return _train_and_show(loaded, directory, resume_dir, quiet, device=device,
                               deterministic=deterministic)

    if watch:
        if resume is not None:
            raise typer.BadParameter("--watch starts new runs; drop --resume", param_hint="--watch")
        _watch(config, lambda: _load_and_lint(config, overrides, strict), train_once, quiet)
    loaded = _load_and_lint(config, overrides, strict)
    resume_dir = None
    if resume is not None:
        from dlrecap.runs import find_run

        resume_dir = find_run(resume, directory)

    def run() -> None:
        result = train_once(loaded, resume_dir)
        if result.unmet:
            raise ExpectationError(result.unmet, str(result.run_dir))

    if live:
        _serve_while(run, directory, port)
    else:
        run()


def _serve_while(train_run: Callable[[], None], runs_dir: Path, port: int | None) -> None:
    """`train --live`: serve the page from before training starts until Ctrl-C after it ends.

    A run that fails (exit 1) or misses its `expect:` (exit 3) is reported at once and served
    on, and that stays the exit code after Ctrl-C; Ctrl-C during training interrupts it as
    always (exit 130). Bad input stops serving at once (exit 2).
    """
    from dlrecap.serve.server import open_server

    server = open_server(runs_dir, port, live_pid=os.getpid())
    server.start()
    try:
        console.note(f"live at {server.url}#live")
        try:
            train_run()
            code = 0
        except (TrainingError, ExpectationError) as exc:
            code = _report(exc)
        console.note(f"training ended; the page stays at {server.url}#live until Ctrl-C")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    finally:
        server.stop()
    raise typer.Exit(code)


def _train_and_show(loaded: LoadedConfig, runs_dir: Path, resume_dir: Path | None, quiet: bool,
                    **options: Any) -> TrainResult:
    """Train one run; its result is printed as soon as it is known, before its pictures."""
    from dlrecap.pipeline import train as run_training

    def show(result: TrainResult) -> None:
        if not quiet:
            _print_summary(result.metrics)
        from dlrecap.baseline import run_verdict

        if verdict := run_verdict(result.metrics):
            console.warning(verdict)
        console.result(str(result.run_dir))

    progress = None if quiet else console.EpochProgress()
    result = run_training(loaded, runs_dir, resume=resume_dir, progress=progress,
                          on_warning=console.warning, on_result=show, **options)
    from dlrecap.pipeline import draw_inside

    draw_inside(result, console.warning)  # boundary.gif, neurons.png: after the result line
    return result


def _watch(config: Path, load: Callable[[], LoadedConfig],
           train_once: Callable[[LoadedConfig], TrainResult], quiet: bool) -> NoReturn:
    """`train --watch`: a missing CONFIG is an error at once; one saved with an error is shown."""
    from dlrecap.watch import watch

    if not config.is_file():
        load()  # raises the loader's own error (exit 2)
    watch(config, load, train_once, _WatchDisplay(quiet))


class _WatchDisplay:
    """How `train --watch` shows what happens between runs (with --quiet, no comparison)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def failed(self, error: DlrecapError) -> None:
        _report_own(error)

    def compared(self, comparison: Comparison) -> None:
        if not self.quiet:
            _show_comparison(comparison, title="changed since the previous run")

    def waiting(self, paths: list[Path]) -> None:
        console.note(f"watching {', '.join(map(str, paths))} for changes (Ctrl-C to stop)")

    def saved(self, paths: list[Path]) -> None:
        console.note(f"{', '.join(map(str, paths))} changed: training again")


def _print_summary(metrics: dict[str, Any]) -> None:
    from dlrecap.baseline import baseline_row

    splits = [s for s in SPLITS if metrics.get(s)]
    names = [n for n in (metrics[splits[0]] if splits else [])
             if not is_per_class(n, metrics.get("labels"))]
    rows = [[split, *[metrics[split].get(n) for n in names]] for split in splits]
    if baseline := baseline_row(metrics, names):
        rows.append(baseline)
    stop = (f", stopped early (best epoch {metrics['best_epoch']})" if metrics.get("stopped_early")
            else f", best epoch {metrics['best_epoch']}")
    if "weights_epoch" in metrics:
        stop += f", kept the weights of epoch {metrics['weights_epoch']}"
    where = metrics.get("device", "cpu")
    if metrics.get("distribute", "none") != "none":
        where += f", {metrics['distribute']}"
    epochs = metrics["epochs_run"]
    console.note(f"trained {epochs} epoch{'' if epochs == 1 else 's'} in {metrics['duration_s']:.1f}s "
                 f"on {where}{stop}")
    console.table(None, ["split", *names], rows)
    columns, per_class = per_class_rows(metrics)
    if per_class:
        console.table("per class", columns, per_class)


@app.command("eval")
def eval_(
    run: str | None = typer.Argument(None, metavar="[RUN]",
                                     help="Run directory or config name (default: latest)."),
    split: str | None = _choice(None, "--split", ("test", "validation", "train"),
                                "The split to score (default: test)."),
    data: Path | None = typer.Option(
        None, "--data", metavar="FILE",
        help="Score this labelled file instead: the run's feature columns and its target."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Score a run's saved model on one of its splits, or a labelled file, beside the trivial baseline."""
    from dlrecap.baseline import no_better
    from dlrecap.evaluate import SPLITS, score_run
    from dlrecap.runs import find_run

    if split is not None and data is not None:
        raise typer.BadParameter("give --split or --data, not both", param_hint="--data")
    _check_option(split or "test", SPLITS, "split", "--split")
    run_dir = find_run(run, _runs_dir(runs_dir))
    if data is not None:
        from dlrecap.score_file import score_file

        scores, scored = score_file(run_dir, data, on_warning=console.warning), str(data)
    else:
        scores, scored = score_run(run_dir, split or "test"), split or "test"
    metrics, baseline = scores.metrics, scores.baseline
    if verdict := no_better(metrics, baseline):
        console.warning(f"{scored} {verdict}")
    if as_json:
        where = {"data": scored} if data is not None else {"split": scored}
        console.out.print_json(json.dumps({"run": str(run_dir), **where,
                                           "metrics": _finite(metrics),
                                           "baseline": _finite(baseline)}))
        return
    console.table(f"{run_dir} ({scored})", ["metric", "value", "baseline"],
                  [[k, v, baseline.get(k)] for k, v in metrics.items()])


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    """JSON has no NaN or infinity: such values become null."""
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


@app.command()
def validate(
    config: Path = typer.Argument(..., metavar="CONFIG", help="The YAML config file."),
    overrides: list[str] = SetOption,
    strict: bool = StrictOption,
) -> None:
    """Check CONFIG and print it resolved, every default filled in."""
    import yaml

    from dlrecap.train.numpy_scope import config_why_not, refusal

    loaded = _load_and_lint(config, overrides, strict)
    # What `train` would refuse before reading any data, refused here too.
    if loaded.config.training.engine == "numpy" and (why := config_why_not(loaded.config)):
        raise loaded.locate(refusal(why))
    console.result(yaml.safe_dump(loaded.config.resolved(), sort_keys=False,
                                  allow_unicode=True).rstrip())


@app.command()
def schema() -> None:
    """Print the config's JSON Schema (for editors' completion and checks)."""
    from dlrecap.config.schema import Config

    console.result(json.dumps(Config.model_json_schema(), indent=2))


@app.command()
def datasets() -> None:
    """List the built-in data sets."""
    from dlrecap.catalog import DATASETS

    rows = [[d.name, d.task, d.features, d.classes, d.rows if d.rows else "samples", d.source]
            for d in DATASETS.values()]
    console.table(None, ["name", "task", "features", "classes", "rows", "source"], rows)


@app.command("runs")
def runs_(runs_dir: Path | None = RunsDirOption,
          as_json: bool = typer.Option(False, "--json", help="One JSON list on stdout.")) -> None:
    """List the runs, oldest first."""
    from dlrecap.runs import epochs_done, list_runs, listed_status

    directory = _runs_dir(runs_dir)
    found = list_runs(directory)
    if as_json:
        listed = [{"run": str(run.path), "name": run.name, "status": listed_status(run.metrics),
                   "epochs": epochs_done(run.path, run.metrics), "started": run.started,
                   "test": run.metrics.get("test")} for run in found]
        console.result(json.dumps(listed, indent=2))
        return
    if not found:
        console.note(f"no runs in {directory}")
        return
    rows = []
    for run in found:
        m = run.metrics
        test = m.get("test") or {}
        headline = next((f"{k} {v:.4f}" for k, v in test.items() if k != "loss"), None)
        if headline is None and "loss" in test:
            headline = f"loss {test['loss']:.4f}"
        rows.append([run.path.name, listed_status(m), epochs_done(run.path, m), headline,
                     run.started.replace("T", " ")[:16]])
    console.table(None, ["run", "status", "epochs", "test", "when"], rows)


@app.command()
def sweep(
    config: Path | None = typer.Argument(None, metavar="CONFIG",
                                         help="The base config (optional with --resume)."),
    grid: list[str] = typer.Option(
        [], "--grid", metavar="KEY=V1,V2",
        help="Values to try (YAML), e.g. model.activation=relu,tanh; several: every combination."),
    search: str | None = _choice(None, "--search", ("grid", "random", "tpe"),
                                 "How to pick the trials (default: grid)."),
    trials: int | None = typer.Option(None, "--trials", metavar="N",
                                      help="random/tpe: number of trials (default 20)."),
    ranges: list[str] = typer.Option(
        [], "--range", metavar="KEY=LO:HI[:log]",
        help="random/tpe: a range to search, e.g. training.learning_rate=1e-4:1e-1:log."),
    seed: int | None = typer.Option(None, "--seed", metavar="N",
                                    help="random/tpe: seed of the search."),
    seeds: str | None = typer.Option(
        None, "--seeds", metavar="S1,S2,...",
        help="Train every setting with each of these seeds (the grid key `seed`), then judge "
             "the settings by mean ± std."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", metavar="N",
                                    help="Trials at once, at most: N - 1 worker processes join the "
                                         "sweep's own once the trials left repay their start "
                                         "(default: cores/2)."),
    metric: str | None = typer.Option(None, "--metric", metavar="NAME",
                                      help="Rank by this, e.g. val_accuracy (default: the monitor)."),
    overrides: list[str] = SetOption,
    runs_dir: Path | None = RunsDirOption,
    resume: Path | None = typer.Option(None, "--resume", metavar="SWEEP_DIR",
                                       help="Continue this sweep: train what has not completed."),
    fresh: bool = typer.Option(False, "--fresh", help="Start anew even if this sweep ran before."),
    device: str = DeviceOption,
    storage: str | None = typer.Option(
        None, "--storage", metavar="URL",
        help="The study's database, shared by every worker that joins the sweep: sqlite:///FILE "
             "or postgresql://USER:PASSWORD@HOST/DB (default: study.db in the sweep directory)."),
    status: bool = typer.Option(False, "--status",
                                help="Print the study's trials as they are now; train nothing."),
) -> None:
    """Train one run per combination of values (or per searched trial) and rank them."""
    from dlrecap.errors import TrainingError
    from dlrecap.sweep.display import SweepDisplay, print_result, print_status
    from dlrecap.sweep.run import run_sweep, sweep_status

    _check_option(device, DEVICES, "device", "--device")
    plan = _sweep_plan(config, resume, jobs, overrides, grid=grid, ranges=ranges, search=search,
                       trials=trials, seed=seed, seeds=seeds, metric=metric)
    if status:
        print_status(sweep_status(plan, _runs_dir(runs_dir), resume=resume, storage=storage))
        return
    if fresh and storage:
        raise typer.BadParameter("a shared study goes on; for another: --set name=NEW", param_hint="--fresh")
    result = run_sweep(plan, _runs_dir(runs_dir), resume=resume, fresh=fresh, device=device,
                       progress=SweepDisplay(), storage=storage)
    print_result(result)
    console.result(str(result.sweep_dir))
    if result.best is None:
        raise TrainingError(f"no trial of the sweep completed (see {result.sweep_dir / 'sweep.csv'})",
                            fix="fix the errors above, then run the same command again")


def _sweep_plan(config: Path | None, resume: Path | None, jobs: int | None, overrides: list[str],
                *, grid: list[str], seeds: str | None, **settings: Any) -> SweepPlan:
    """The sweep's plan: from CONFIG and the options, or from the sweep directory resumed."""
    from dlrecap.sweep.plan import plan_sweep
    from dlrecap.sweep.run import plan_from_dir

    if config is None:
        if resume is None:
            raise typer.BadParameter("give CONFIG, or --resume SWEEP_DIR", param_hint="CONFIG")
        if grid or settings["ranges"] or overrides or seeds is not None or any(
                settings[k] is not None for k in ("search", "trials", "seed", "metric")):
            raise typer.BadParameter("without CONFIG, --resume reuses the sweep's own settings; "
                                     "drop the other options or name CONFIG", param_hint="--resume")
        return plan_from_dir(resume, jobs)
    grid = [*grid, *_seed_grid(seeds, grid, settings["search"])]
    return plan_sweep(config, overrides, grid=grid, jobs=jobs, **settings)


def _seed_grid(seeds: str | None, grid: list[str], search: str | None) -> list[str]:
    """`--seeds 0,1,2` as the grid entry `seed=0,1,2`."""
    if seeds is None:
        return []
    if search not in (None, "grid"):
        raise typer.BadParameter(f"--seeds repeats each setting of a grid; with --search {search} "
                                 "each trial would draw one seed instead", param_hint="--seeds")
    if any(g.split("=", 1)[0].strip() == "seed" for g in grid):
        raise typer.BadParameter("the seeds are given twice: drop --grid seed=... or --seeds",
                                 param_hint="--seeds")
    values = [v.strip() for v in seeds.split(",")]
    if len(values) < 2 or not all(v.isdigit() for v in values):
        raise typer.BadParameter(f"expected two or more seeds (whole numbers >= 0) like 0,1,2, "
                                 f"got {seeds!r}", param_hint="--seeds")
    return [f"seed={','.join(values)}"]


@app.command()
def cv(
    config: Path = typer.Argument(..., metavar="CONFIG", help="The YAML config file."),
    folds: int = typer.Option(5, "--folds", "-k", metavar="K",
                              help="Number of folds, at least 2 (stratified for classification)."),
    overrides: list[str] = SetOption,
    runs_dir: Path | None = RunsDirOption,
    fresh: bool = typer.Option(False, "--fresh", help="Start anew even if this ran before."),
    device: str = DeviceOption,
    strict: bool = StrictOption,
) -> None:
    """Cross-validate CONFIG: train K runs, each scored on the fold it did not train on."""
    from dlrecap.cv import run_cv
    from dlrecap.cv_display import FoldNotes, print_cv

    _check_option(device, DEVICES, "device", "--device")
    loaded = _load_and_lint(config, overrides, strict)
    result = run_cv(loaded, folds, _runs_dir(runs_dir), fresh=fresh, device=device,
                    progress=FoldNotes(), on_warning=console.warning)
    print_cv(result)
    console.result(str(result.cv_dir))


@app.command()
def predict(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory or config name."),
    input_file: Path = typer.Argument(..., metavar="INPUT",
                                      help="CSV or Parquet file with the run's feature columns; "
                                           "- reads CSV from stdin."),
    output: Path | None = typer.Option(None, "--output", "-o", metavar="FILE",
                                       help="Write the CSV here (default, or -: stdout)."),
    threshold: float | None = typer.Option(
        None, "--threshold", metavar="P", min=0.0, max=1.0,
        help="Binary tasks: predict the second class when its probability is at least P "
             "(default: the more probable class)."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Predict INPUT's rows with RUN's model: the rows plus prediction and prob_<label> columns."""
    from dlrecap.predict import STDIN, predict_file, stdin_table, to_csv, write_csv
    from dlrecap.runs import find_run

    run_dir = find_run(run, _runs_dir(runs_dir))
    stdin = str(input_file) == "-"
    with stdin_table() if stdin else contextlib.nullcontext(input_file) as rows:
        frame = predict_file(run_dir, rows, on_warning=console.warning, threshold=threshold,
                             name=STDIN if stdin else None)
    if output is None or str(output) == "-":
        console.out.file.write(to_csv(frame))
        return
    write_csv(frame, output)
    console.note(f"wrote {len(frame)} rows with predictions to {output}")


@app.command()
def init(
    data_file: Path | None = typer.Argument(None, metavar="[DATA_FILE]",
                                            help="A .csv, .tsv, .parquet or .npz data file."),
    target: str | None = typer.Option(None, "--target", metavar="COLUMN",
                                      help="The column to predict."),
    playground: str | None = typer.Option(
        None, "--from-playground", metavar="URL",
        help="Instead of a data file: a playground.tensorflow.org address, its network and data."),
    output: Path | None = typer.Option(None, "--output", "-o", metavar="FILE",
                                       help="The config to write (default: <data file stem>.yaml, "
                                       "or playground-<dataset>.yaml)."),
    force: bool = typer.Option(False, "--force", help="Overwrite FILE if it exists."),
) -> None:
    """Write a commented starter config: DATA_FILE --target COLUMN, or --from-playground URL."""
    if playground is not None:
        if data_file is not None or target is not None:
            raise DlrecapError("--from-playground takes no DATA_FILE or --target",
                               fix="give either DATA_FILE --target COLUMN or --from-playground URL")
        from dlrecap.playground import write_playground

        starter = write_playground(playground, output, force=force)
    elif data_file is None or target is None:
        raise DlrecapError("init needs DATA_FILE and --target COLUMN",
                           fix="or --from-playground URL")
    else:
        from dlrecap.starter import write_starter

        starter = write_starter(data_file, target, output, force=force)
    console.note(f"{starter.summary}; next: dlrecap train {starter.path}")
    console.result(str(starter.path))


@app.command()
def step(
    config: Path = typer.Argument(..., metavar="CONFIG", help="The YAML config file."),
    overrides: list[str] = SetOption,
    batch: int | None = typer.Option(None, "--batch", min=1, metavar="N",
                                     help="Rows in the mini-batch (default: training.batch_size)."),
    seed: int | None = typer.Option(None, "--seed", min=0, metavar="S",
                                    help="Seeds the weights, rows and masks (default: the config's)."),
    dropout: bool = typer.Option(False, "--dropout", help="Apply dropout and show its mask."),
) -> None:
    """One mini-batch in the open: forward pass, loss, backpropagation and the update."""
    from dlrecap.step import from_config, show

    loaded = _load_and_lint(config, overrides, strict=False)
    done = from_config(loaded, batch, seed, dropout)
    if batch is not None and batch > len(done.rows):
        console.warning(f"--batch {batch}: the training split has {len(done.rows)} rows; "
                        "the batch holds them all")
    if dropout and all(layer.mask is None for layer in done.layers):
        console.warning("--dropout has no effect: no hidden layer of this config has dropout")
    show(done, console.out)


RunArgument = typer.Argument(None, metavar="[RUN]",
                             help="Run directory or config name (default: latest).")


@app.command()
def plot(run: str | None = RunArgument, runs_dir: Path | None = RunsDirOption) -> None:
    """(Re)draw the run's pictures: learning curves, decision boundary, confusion matrix,
    the boundary over time and every neuron."""
    from dlrecap.plots import draw_run
    from dlrecap.runs import find_run, read_metrics, shown_status

    run_dir = find_run(run, _runs_dir(runs_dir))
    written = draw_run(run_dir)
    if not (run_dir / "model.keras").is_file():
        # Not a warning: an interrupted or failed run has no model, by design.
        status = shown_status(run_dir, read_metrics(run_dir))
        console.note(f"{run_dir} (status: {status}) has no trained model: "
                     f"only its learning curves were drawn")
    for path in written:
        console.result(str(path))


@app.command()
def report(
    run: str | None = RunArgument,
    output: Path | None = typer.Option(None, "--output", "-o", metavar="FILE",
                                       help="Where to write (default: <run>/report.html)."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Write report.html: config, model, metrics, pictures and history in one offline page."""
    from dlrecap.report import build_report
    from dlrecap.runs import find_run

    console.result(str(build_report(find_run(run, _runs_dir(runs_dir)), output)))


@app.command()
def compare(
    run_refs: list[str] = typer.Argument(..., metavar="RUN",
                                         help="Two or more run directories or config names."),
    output: Path = typer.Option(Path("compare.png"), "--output", "-o", metavar="FILE",
                                help="Where to draw the validation curves."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Show the config keys that differ, the metrics side by side, and compare.png."""
    from dlrecap.compare import compare_runs, draw_comparison
    from dlrecap.runs import find_run

    if len(run_refs) < 2:
        raise typer.BadParameter("name at least two runs", param_hint="RUN")
    directory = _runs_dir(runs_dir)
    found = compare_runs([find_run(ref, directory) for ref in run_refs])
    _show_comparison(found)
    from dlrecap.sweep.seeds import print_compare_settings

    print_compare_settings(found)  # runs of one setting with several seeds: mean ± std
    console.result(f"validation curves: {draw_comparison(found, output).resolve()}")


def _show_comparison(found: Comparison, title: str = "config keys that differ") -> None:
    """The config keys that differ between runs, then their metrics side by side."""
    if found.config_diff:
        console.table(title, ["key", *found.labels],
                      [[key, *values] for key, values in found.config_diff])
    else:
        console.note("the configs are identical")
    console.table("metrics", ["metric", *found.labels],
                  [[name, *values] for name, values in found.metrics])


@app.command()
def serve(
    runs_dir: Path | None = typer.Argument(
        None, metavar="[RUNS_DIR]", help="Where runs live (default: $DLRECAP_RUNS_DIR, else ./runs)."),
    port: int | None = PortOption,
) -> None:
    """Show the runs on a local web page (127.0.0.1), live while they train; Ctrl-C stops it."""
    from dlrecap.serve.server import open_server

    directory = _runs_dir(runs_dir)
    if directory.exists() and not directory.is_dir():
        raise typer.BadParameter(f"{directory} is not a folder", param_hint="RUNS_DIR")
    server = open_server(directory, port)
    later = "" if directory.is_dir() else f" ({directory} does not exist yet: runs appear as they start)"
    console.note(f"serving the runs in {directory}{later}; Ctrl-C stops")
    console.result(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        raise Interrupted("stopped serving") from None
    finally:
        server.server_close()


@app.command("export")
def export_(
    run: str = typer.Argument(..., metavar="RUN", help="Run directory or config name."),
    fmt: str = _choice("savedmodel", "--format", ("savedmodel", "tflite"),
                       "What to write (default: savedmodel)."),
    output: Path | None = typer.Option(None, "--output", "-o", metavar="DIR",
                                       help="Where to write (default: RUN/export/FORMAT)."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Export a run's model for serving: a SavedModel (TF Serving) or a TFLite file."""
    from dlrecap.export import FORMATS, export_run
    from dlrecap.runs import find_run

    _check_option(fmt, FORMATS, "format", "--format")
    run_dir = find_run(run, _runs_dir(runs_dir))
    console.result(str(export_run(run_dir, fmt, output)))


def main() -> None:
    """The `dlrecap` command: SIGTERM stops it as Ctrl-C does, in every phase (exit 130)."""
    from dlrecap import signals

    with signals.command_line():
        app(prog_name="dlrecap")
