"""Shared fixtures: plain, narrow terminal output and a private runs directory per test.

Shared helper functions (the CLI in-process, fake run directories, waiting on files) live
in helpers.py beside this file.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _no_gpu_reason() -> str | None:
    """Why GPU-marked tests cannot run here, or None when TensorFlow sees a GPU.

    The device files answer at no cost on machines without an NVIDIA GPU; only where they
    exist is TensorFlow asked (in a subprocess, so collecting tests stays fast).
    """
    import glob
    import subprocess
    import sys

    if not glob.glob("/dev/nvidia[0-9]*"):
        return "no NVIDIA GPU on this machine (no /dev/nvidia* device)"
    probe = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if found.returncode != 0 or found.stdout.strip().splitlines()[-1:] == ["0"]:
        return "TensorFlow sees no GPU (install the GPU build: pip install .[gpu])"
    return None


def pytest_collection_modifyitems(config, items):
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    reason = _no_gpu_reason() if gpu_tests else None
    for item in gpu_tests if reason else []:
        item.add_marker(pytest.mark.skip(reason=f"gpu test: {reason}"))


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch, tmp_path):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("DLRECAP_RUNS_DIR", str(tmp_path / "runs"))


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the whole session (see postgres.py); stopped and removed at the end."""
    from postgres import PostgresServer

    server = PostgresServer()
    yield server
    server.remove()
