"""The shipped configs: each validates and trains (what each lesson claims: test_lessons.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dlrecap.config.lint import lint
from dlrecap.config.load import load_config
from dlrecap.data.registry import SYNTHETIC
from dlrecap.pipeline import train

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
# Folders whose configs are not meant to train on their own (a sweep's base config).
NOT_STANDALONE = {"sweeps"}
CONFIGS = sorted(
    p for p in CONFIG_DIR.glob("**/*.yaml")
    if not NOT_STANDALONE.intersection(p.relative_to(CONFIG_DIR).parts[:-1])
)
LESSONS = [p for p in CONFIGS if p.parent == CONFIG_DIR]
# Lint warnings a lesson provokes on purpose, by file name: the warning is what it teaches.
INTENDED_WARNINGS = {"xor_linear.yaml": {"model.layers"}}
# Rows for synthetic sets in the quick training test: enough for every split to hold
# both classes, few enough that two epochs take well under a second.
QUICK_SAMPLES = 60


def _id(path: Path) -> str:
    return str(path.relative_to(CONFIG_DIR))


def test_the_lessons_are_all_there():
    names = {p.name for p in LESSONS}
    expected = {"xor.yaml", "xor_linear.yaml", "perceptron.yaml", "activation_sigmoid.yaml",
                "activation_tanh.yaml", "activation_relu.yaml", "sine_mse.yaml",
                "init_random_normal.yaml", "early_stopping.yaml", "dropout.yaml",
                "digits.yaml", "breast_cancer.yaml", "iris.yaml", "diabetes.yaml"}
    assert expected <= names, f"missing: {sorted(expected - names)}"
    assert len([p for p in CONFIGS if p.parent.name == "smoke"]) >= 2


@pytest.mark.parametrize("path", CONFIGS, ids=_id)
def test_config_validates_and_opens_with_a_comment(path):
    loaded = load_config(path)
    assert loaded.config.name
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# "), "a shipped config opens with a comment saying what it shows"


@pytest.mark.parametrize("path", LESSONS, ids=_id)
def test_lesson_says_what_to_expect_and_lints_clean(path):
    header = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert any("Expect" in line for line in header), "the opening comment names the outcome"
    warned = {key for key, _ in lint(load_config(path).config)}
    assert warned == INTENDED_WARNINGS.get(path.name, set())


def _quick_overrides(path: Path) -> list[str]:
    overrides = ["training.epochs=2", "expect={}"]
    if load_config(path).config.data.dataset in SYNTHETIC:
        overrides.append(f"data.samples={QUICK_SAMPLES}")
    return overrides


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=_id)
def test_config_trains_two_epochs(path, tmp_path):
    result = train(load_config(path, _quick_overrides(path)), tmp_path / "runs")
    m = result.metrics
    assert m["status"] == "completed"
    assert m["epochs_run"] == 2
    assert result.unmet == []
    for split in ("train", "validation", "test"):
        assert math.isfinite(m[split]["loss"]), split
    assert {"config.yaml", "model.keras", "history.csv", "metrics.json"} <= {
        p.name for p in result.run_dir.iterdir()}
