"""Tests for the command line's habits: completion, help texts, the README synopsis, progress."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from dlrecap.cli import app

from helpers import invoke

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> dict[str, object]:
    return typer.main.get_command(app).commands  # type: ignore[attr-defined]


def _options(command: object) -> set[str]:
    """Every long option of a command (`--device`, ...), less `--help`; short aliases aside."""
    names = {opt for param in command.params  # type: ignore[attr-defined]
             if param.param_type_name == "option" for opt in param.opts if opt.startswith("--")}
    return names - {"--help"}


def _synopsis() -> dict[str, set[str]]:
    """README's command synopsis: the options each `dlrecap COMMAND` line names.

    Lines such as `dlrecap --version` name options of `dlrecap` itself, kept under "".
    """
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## The commands", 1)[1].split("```", 2)[1]
    named: dict[str, set[str]] = {}
    command = ""
    for line in block.splitlines():
        words = line.split()
        if line.startswith("dlrecap "):
            command = "" if words[1].startswith("-") else words[1]
            words = words[1:] if command == "" else words[2:]
        named.setdefault(command, set()).update(
            re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", " ".join(words)))
    return named


def test_the_readme_synopsis_lists_every_command_and_option():
    synopsis = _synopsis()
    commands = _commands()
    assert set(synopsis) == {"", *commands}
    assert synopsis[""] == _options(typer.main.get_command(app))
    for name, command in commands.items():
        assert synopsis[name] == _options(command), name


def test_no_option_help_shows_a_bare_type():
    for name in _commands():
        result = invoke(name, "--help")
        assert result.exit_code == 0, result.output
        options = result.stdout.split("Options:", 1)[1]
        assert not re.search(r"<(str|int|float|path)>|\b(TEXT|INTEGER|FLOAT|PATH)\b", options), \
            (name, options)


@pytest.mark.parametrize(("command", "shown"), [
    ("train", "--device auto|cpu|gpu"),
    ("cv", "--device auto|cpu|gpu"),
    ("sweep", "--search grid|random|tpe"),
    ("eval", "--split test|validation|train"),
    ("export", "--format savedmodel|tflite"),
])
def test_help_shows_the_choices_of_an_option(command, shown):
    assert shown in invoke(command, "--help").stdout


def test_the_choices_shown_are_the_ones_accepted():
    from dlrecap.cli import DEVICES
    from dlrecap.evaluate import SPLITS
    from dlrecap.export import FORMATS

    help_of = {name: invoke(name, "--help").stdout for name in ("train", "eval", "export")}
    assert f"--device {'|'.join(DEVICES)}" in help_of["train"]
    assert f"--split {'|'.join(SPLITS)}" in help_of["eval"]
    assert f"--format {'|'.join(FORMATS)}" in help_of["export"]


def test_show_completion_prints_a_bash_script():
    result = invoke("--show-completion", "bash")
    assert result.exit_code == 0, result.output
    assert "complete " in result.stdout and "_DLRECAP_COMPLETE=complete_bash" in result.stdout


def test_completion_offers_commands_and_choices():
    done = invoke(env={"_DLRECAP_COMPLETE": "complete_bash", "COMP_WORDS": "dlrecap train x.yaml --device ",
                       "COMP_CWORD": "4"})
    assert done.stdout.split() == ["auto", "cpu", "gpu"]
    done = invoke(env={"_DLRECAP_COMPLETE": "complete_bash", "COMP_WORDS": "dlrecap tr", "COMP_CWORD": "1"})
    assert done.stdout.split() == ["train"]


COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
LOGS = {"loss": 0.1234, "accuracy": 0.98, "val_loss": 0.2345, "val_accuracy": 0.9474}


def _live_line(width: int, epochs: int = 150, epoch: int = 21, done: int = 0) -> str:
    """The live progress line as a terminal `width` columns wide shows it."""
    import io

    from rich.console import Console

    from dlrecap.console import EpochProgress

    terminal = Console(width=width, file=io.StringIO(), force_terminal=True)
    progress = EpochProgress(console=terminal)
    progress.start(epochs, COLUMNS, done=done)
    try:
        progress.epoch(epoch, LOGS)
        assert progress.progress is not None
        [line] = terminal.render_lines(progress.progress.get_renderable(), terminal.options, pad=False)
    finally:
        progress.finish()
    return "".join(segment.text for segment in line)


@pytest.mark.parametrize("width", [80, 100, 60])
def test_the_live_progress_line_fits_the_terminal_uncut(width):
    line = _live_line(width, epochs=1500, epoch=210)
    assert len(line) < width, line
    assert "…" not in line and "..." not in line
    assert re.match(r"epoch  210/1500 ━", line), line
    assert re.search(r" \d+s ETA \d+(s|m\d\ds)$", line), line  # the elapsed time, whole
    assert "val_loss 0.2345" in line  # what early stopping watches stays longest


def test_a_wide_terminal_shows_every_statistic():
    line = _live_line(140)
    for name, value in LOGS.items():
        assert f"{name} {value:.4f}" in line


def test_a_resumed_run_is_announced_not_replayed():
    import io

    from rich.console import Console

    from dlrecap.console import EpochProgress

    log = Console(width=120, file=io.StringIO())  # not a terminal: plain lines
    progress = EpochProgress(console=log)
    progress.start(60, COLUMNS, done=30)
    progress.epoch(31, LOGS)
    progress.finish()
    assert log.file.getvalue().splitlines()[0] == "resuming after epoch 30 of 60"  # type: ignore[attr-defined]


def test_durations_are_short_and_whole():
    from dlrecap.console import duration

    assert [duration(s) for s in (0.4, 42, 185, 7300)] == ["0s", "42s", "3m05s", "2h01m"]
