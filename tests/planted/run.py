"""Check that the tests catch each planted bug in tests/planted/*.patch (`make planted`).

Each patch is a `git diff` that plants one bug. Its leading comment lines, which `git apply`
skips, say what the bug is (the first line) and which tests must catch it (`# tests: ...`,
pytest node ids). For every patch this script copies the working tree (tracked and untracked,
not ignored, files) to a scratch folder, applies the patch there and runs those tests with
this Python and PYTHONPATH set to the copy. The patch is caught when the tests fail.

First, the same tests must pass on the tree as it is: a test that fails anyway catches nothing.

Usage: python tests/planted/run.py [PATCH ...]   (default: every patch in this folder)
Exit status: 0 when every patch applied and was caught, else 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:randomly",
          "-p", "no:cacheprovider"]
PYTEST_TESTS_FAILED = 1  # other non-zero codes mean an error (no such test, a usage error)


@dataclass
class Planted:
    """One planted bug: its patch file, what it breaks, the tests that must catch it."""

    patch: Path
    description: str
    tests: list[str]


def read_planted(patch: Path) -> Planted:
    """The description and tests named in the leading `#` lines of `patch`."""
    description, tests = "", []
    for line in patch.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith("tests:"):
            tests += text.removeprefix("tests:").split()
        elif not description:
            description = text
    if not tests:
        raise SystemExit(f"{patch.name}: no `# tests:` line names the tests that catch it")
    return Planted(patch, description, tests)


def copy_tree(destination: Path) -> None:
    """Copy the files git knows of (tracked or untracked, not ignored) as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_tests(tree: Path, tests: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([*PYTEST, *tests], cwd=tree, env=env, capture_output=True, text=True)


def tail(output: str, lines: int = 15) -> str:
    return "\n".join("    " + line for line in output.strip().splitlines()[-lines:])


def check(planted: Planted, scratch: Path) -> str:
    """`caught`, `SURVIVED`, or what went wrong, for one planted bug in its own copy."""
    tree = scratch / planted.patch.stem
    copy_tree(tree)
    applied = subprocess.run(["git", "apply", str(planted.patch)], cwd=tree,
                             capture_output=True, text=True)
    if applied.returncode != 0:
        return "DOES NOT APPLY\n" + tail(applied.stderr)
    result = run_tests(tree, planted.tests)
    if result.returncode == PYTEST_TESTS_FAILED:
        return "caught"
    if result.returncode == 0:
        return "SURVIVED"
    return f"ERROR (pytest exit {result.returncode})\n" + tail(result.stdout + result.stderr)


def baseline_passes(everything: list[Planted], scratch: Path) -> bool:
    """Whether all the tests named pass on the unpatched tree."""
    tree = scratch / "unpatched"
    copy_tree(tree)
    tests = list(dict.fromkeys(t for p in everything for t in p.tests))
    result = run_tests(tree, tests)
    if result.returncode != 0:
        print("The tests fail without any planted bug; fix them first:")
        print(tail(result.stdout + result.stderr, 30))
    return result.returncode == 0


def main(argv: list[str]) -> int:
    patches = [Path(a).resolve() for a in argv] or sorted(HERE.glob("*.patch"))
    everything = [read_planted(p) for p in patches]
    with tempfile.TemporaryDirectory(prefix="dlrecap-planted-") as scratch:
        if not baseline_passes(everything, Path(scratch)):
            return 1
        failures = 0
        for planted in everything:
            start = time.monotonic()
            verdict, _, details = check(planted, Path(scratch)).partition("\n")
            failures += verdict != "caught"
            print(f"{planted.patch.stem:34} {verdict}  ({time.monotonic() - start:.0f} s)\n"
                  f"    {planted.description}", flush=True)
            if details:
                print(details, flush=True)
    print(f"{len(everything) - failures} of {len(everything)} planted bugs caught")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
