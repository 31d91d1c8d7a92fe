"""The errors dlrecap raises, each carrying the exit code the CLI turns it into.

Library code raises these and never prints or exits; `dlrecap.cli` renders them.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path


def printable(text: str) -> str:
    """`text` with control characters escaped, so that an error stays on one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class DlrecapError(Exception):
    """An expected failure with a one-line message for the user."""

    exit_code = 2

    def __init__(self, message: str, *, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def render(self) -> str:
        """The line printed after `error: `."""
        return printable(f"{self.message} ({self.fix})" if self.fix else self.message)


class ConfigError(DlrecapError):
    """A problem in a config file or a `--set` override.

    Args:
        message: what is wrong.
        source: the file (or `--set KEY=VALUE`) the value came from.
        line, col: 1-based position in `source`, when known.
        key: the dotted key, for example `model.layers[0].activation`.
        fix: how to fix it, when one can be named.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        col: int | None = None,
        key: str | None = None,
        fix: str | None = None,
    ):
        super().__init__(message, fix=fix)
        self.source, self.line, self.col, self.key = source, line, col, key

    def render(self) -> str:
        where = ""
        if self.source:
            # A `--set` with a huge value would otherwise fill the screen with its own text.
            where = self.source if len(self.source) <= 120 else self.source[:117] + "..."
            if self.line is not None:
                where += f":{self.line}:{self.col or 1}"
            where += ": "
        key = f"{self.key}: " if self.key else ""
        return printable(f"{where}{key}{super().render()}")


class DataError(DlrecapError):
    """Data that cannot be loaded or does not fit the config."""


class RunError(DlrecapError):
    """A run directory that is missing, unreadable or not what a command needs."""


class TrainingError(DlrecapError):
    """Training started but failed (for example the loss became NaN)."""

    exit_code = 1


class ExpectationError(DlrecapError):
    """Training finished but an `expect:` line was not met."""

    exit_code = 3

    def __init__(self, unmet: list[str], run_dir: str):
        super().__init__(f"{len(unmet)} expectation(s) not met in {run_dir}")
        self.unmet = unmet
        self.run_dir = run_dir


class Interrupted(DlrecapError):
    """Training stopped by SIGINT or SIGTERM after a finished epoch."""

    exit_code = 130


class InternalError(DlrecapError):
    """An unexpected failure (a bug); the traceback is in a crash log."""

    exit_code = 1


def write_crash_log(path: Path, exc: BaseException) -> Path | None:
    """Write `exc`'s traceback to `path`; return None (after one line on stderr) if that fails."""
    text = "".join(traceback.format_exception(exc))
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        print(f"warning: could not write {path} ({err.strerror or err}); "
              f"{type(exc).__name__}: {first_line(exc)}", file=sys.stderr)
        return None
    return path
