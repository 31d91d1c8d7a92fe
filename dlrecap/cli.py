"""The `dlrecap` command line: parse, call one library function, render.

Commands that do not train (`validate`, `schema`, `datasets`, `runs`, `--help`) never import
TensorFlow, so they answer at once.
"""

from __future__ import annotations

import json
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from dlrecap import console
from dlrecap.errors import ConfigError, DlrecapError, ExpectationError


class _Group(TyperGroup):
    """Turns every failure into `error: ...` lines and the contract's exit code."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            code = 130
        except ExpectationError as exc:
            for line in exc.unmet:
                console.error(f"expect: {line}")
            console.error(exc.render())
            code = exc.exit_code
        except DlrecapError as exc:
            console.error(exc.render())
            code = exc.exit_code
        except KeyboardInterrupt:
            console.error("interrupted")
            code = 130
        except Exception as exc:
            if _is_usage_error(exc):  # Click's UsageError, vendored inside Typer
                ctx = getattr(exc, "ctx", None)
                hint = f" (see {ctx.command_path} --help)" if ctx else ""
                console.error(f"{exc.format_message()}{hint}")
                code = exc.exit_code
            else:
                code = _crash()
        if standalone_mode:
            sys.exit(code or 0)
        return code


def _is_usage_error(exc: Exception) -> bool:
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


def _crash() -> int:
    """An internal error: one line for the user, the traceback in a log file."""
    with tempfile.NamedTemporaryFile("w", prefix="dlrecap-crash-", suffix=".log",
                                     delete=False) as log:
        log.write(traceback.format_exc())
    exc = sys.exc_info()[1]
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    console.error(f"internal error: {type(exc).__name__}: {first_line} (traceback in {log.name})")
    return 1


app = typer.Typer(
    cls=_Group,
    name="dlrecap",
    help="Train dense neural networks from a YAML config.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

SetOption = typer.Option(
    [], "--set", metavar="KEY=VALUE",
    help="Override a config key with a YAML value, e.g. training.learning_rate=0.01.",
)
RunsDirOption = typer.Option(
    None, "--runs-dir", metavar="DIR",
    help="Where runs live (default: $DLRECAP_RUNS_DIR, else ./runs).",
)
StrictOption = typer.Option(False, "--strict", help="Treat config warnings as errors.")


def _runs_dir(value: Path | None) -> Path:
    from dlrecap.runs import default_runs_dir

    return value or default_runs_dir()


def _load_and_lint(config: Path, overrides: list[str], strict: bool) -> Any:
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
    device: str = typer.Option("auto", "--device", help="auto | cpu | gpu."),
    deterministic: bool = typer.Option(False, "--deterministic",
                                       help="TensorFlow op determinism (slower on GPUs)."),
    strict: bool = StrictOption,
) -> None:
    """Validate CONFIG, train its model and write a run directory."""
    from dlrecap.config.choices import check_choice

    try:
        check_choice(device, ("auto", "cpu", "gpu"), "device")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None
    if resume is not None:
        raise DlrecapError("--resume is not available in this version",
                           fix="train again without --resume")
    loaded = _load_and_lint(config, overrides, strict)
    from dlrecap.train.trainer import train as run_training

    progress = None if quiet else console.EpochProgress()
    result = run_training(loaded, _runs_dir(runs_dir), device=device,
                          deterministic=deterministic, progress=progress,
                          on_warning=console.warning)
    if not quiet:
        _print_summary(result.metrics)
    console.result(str(result.run_dir))
    if result.unmet:
        raise ExpectationError(result.unmet, str(result.run_dir))


def _print_summary(metrics: dict[str, Any]) -> None:
    splits = [s for s in ("train", "validation", "test") if metrics.get(s)]
    names = list(metrics[splits[0]]) if splits else []
    rows = [[split, *[metrics[split].get(n) for n in names]] for split in splits]
    stop = (f", stopped early (best epoch {metrics['best_epoch']})" if metrics.get("stopped_early")
            else f", best epoch {metrics['best_epoch']}")
    console.note(f"trained {metrics['epochs_run']} epochs in {metrics['duration_s']:.1f}s{stop}")
    console.table(None, ["split", *names], rows)


@app.command("eval")
def eval_(
    run: str | None = typer.Argument(None, metavar="[RUN]",
                                     help="Run directory or config name (default: latest)."),
    split: str = typer.Option("test", "--split", help="test | validation | train."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    runs_dir: Path | None = RunsDirOption,
) -> None:
    """Score a run's saved model on one of its splits."""
    from dlrecap.config.choices import check_choice
    from dlrecap.evaluate import SPLITS, evaluate_run
    from dlrecap.runs import find_run

    try:
        check_choice(split, SPLITS, "split")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--split") from None
    run_dir = find_run(run, _runs_dir(runs_dir))
    metrics = evaluate_run(run_dir, split)
    if as_json:
        console.out.print_json(json.dumps({"run": str(run_dir), "split": split,
                                           "metrics": metrics}))
        return
    console.table(f"{run_dir} ({split})", ["metric", "value"], [[k, v] for k, v in metrics.items()])


@app.command()
def validate(
    config: Path = typer.Argument(..., metavar="CONFIG", help="The YAML config file."),
    overrides: list[str] = SetOption,
    strict: bool = StrictOption,
) -> None:
    """Check CONFIG and print it resolved, every default filled in."""
    import yaml

    loaded = _load_and_lint(config, overrides, strict)
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
    from dlrecap.data.registry import DATASETS

    rows = [[d.name, d.task, d.features, d.classes, d.rows if d.rows else "samples", d.source]
            for d in DATASETS.values()]
    console.table(None, ["name", "task", "features", "classes", "rows", "source"], rows)


@app.command("runs")
def runs_(runs_dir: Path | None = RunsDirOption) -> None:
    """List the runs, oldest first."""
    from dlrecap.runs import list_runs

    directory = _runs_dir(runs_dir)
    found = list_runs(directory)
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
        rows.append([run.path.name, m.get("status"), m.get("epochs_run"), headline,
                     run.started.replace("T", " ")[:16]])
    console.table(None, ["run", "status", "epochs", "test", "when"], rows)


def main() -> None:
    app()
