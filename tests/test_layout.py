"""The package's shape: short functions, and data that flows one way between its layers."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dlrecap"
MAX_FUNCTION_LINES = 60

# What each layer must not import: a module is banned when its name starts with one of these.
TRAIN_MUST_NOT_IMPORT = ("dlrecap.plots", "dlrecap.report", "dlrecap.sweep", "dlrecap.cli",
                         "dlrecap.pipeline", "dlrecap.diagnostics")
CONFIG_MUST_NOT_IMPORT = ("dlrecap.data",)


def _sources(folder: Path = PACKAGE) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _package_of(path: Path, root: Path) -> str:
    """The dotted package a file under `root` (the `dlrecap` folder) belongs to."""
    return ".".join(path.relative_to(root.parent).parent.parts)


def _imports(path: Path, root: Path = PACKAGE) -> Iterator[tuple[int, str]]:
    """`(line, module)` for every import in `path`, those inside functions too.

    `from a import b` counts as importing `a.b` as well as `a`, since `b` may be a module.
    """
    package = _package_of(path, root)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def _banned(folder: str, prefixes: tuple[str, ...]) -> list[str]:
    """One line per import statement under `folder` that names a banned module."""
    found: dict[str, str] = {}
    for path in _sources(PACKAGE / folder):
        for line, module in _imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            if module.startswith(prefixes) and where not in found:
                found[where] = f"{where} imports {module}"
    return list(found.values())


def test_no_function_is_longer_than_60_lines():
    too_long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                lines = node.end_lineno - first + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(PACKAGE.parent)}:{first} {node.name} "
                                    f"({lines} lines)")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(too_long)


def test_train_imports_nothing_above_it():
    found = _banned("train", TRAIN_MUST_NOT_IMPORT)
    assert not found, "dlrecap/train/ must not import these:\n" + "\n".join(found)


def test_config_never_imports_data():
    found = _banned("config", CONFIG_MUST_NOT_IMPORT)
    assert not found, "dlrecap/config/ must not import dlrecap.data:\n" + "\n".join(found)


def test_sweep_modules_live_in_their_package():
    stray = sorted(p.name for p in PACKAGE.glob("sweep_*.py"))
    assert not stray, f"move these into dlrecap/sweep/: {', '.join(stray)}"


@pytest.mark.parametrize(("source", "where", "expected"), [
    ("import dlrecap.plots\n", "train/x.py", "dlrecap.plots"),
    ("from dlrecap import report\n", "train/x.py", "dlrecap.report"),
    ("def f():\n    from dlrecap.sweep_plan import plan\n", "train/x.py", "dlrecap.sweep_plan"),
    ("from .. import cli\n", "train/x.py", "dlrecap.cli"),
    ("from ..data.split import n_rows\n", "config/x.py", "dlrecap.data.split"),
    ("from . import load\n", "config/__init__.py", "dlrecap.config.load"),
])
def test_imports_are_found_wherever_they_are_written(tmp_path, source, where, expected):
    root = tmp_path / "dlrecap"
    path = root / where
    path.parent.mkdir(parents=True)
    path.write_text(source, encoding="utf-8")
    assert expected in {module for _, module in _imports(path, root)}
