"""Tests for seed-aware comparisons: sweep_summary.csv, the verdicts, `--seeds`, `compare`."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from dlrecap.sweep.seeds import BEST, BEYOND, UNKNOWN, WITHIN, Setting, judge, within_noise

from helpers import invoke

TINY = """\
name: tiny
data:
  dataset: linear
  samples: 40
model:
  layers: []
training:
  optimizer: sgd
  learning_rate: 0.01
  epochs: 2
  batch_size: 8
"""


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _noise(a: list[float], b: list[float]) -> bool:
    """The rule, written out again: |mean difference| < 2 sqrt(s1^2/n1 + s2^2/n2)."""
    def stats(v):
        m = sum(v) / len(v)
        return m, sum((x - m) ** 2 for x in v) / (len(v) - 1), len(v)
    (m1, v1, n1), (m2, v2, n2) = stats(a), stats(b)
    return abs(m1 - m2) < 2 * math.sqrt(v1 / n1 + v2 / n2)


def test_within_noise_follows_the_rule():
    best = Setting({}, [0.10, 0.12, 0.14])
    near = Setting({}, [0.13, 0.15, 0.17])  # means 0.12 and 0.15, margin 2*sqrt(2*0.0004/3)
    far = Setting({}, [0.30, 0.31, 0.32])
    assert within_noise(best, near) is _noise(best.scores, near.scores) is True
    assert within_noise(best, far) is _noise(best.scores, far.scores) is False
    assert within_noise(best, Setting({}, [0.2])) is None  # one seed: no spread to judge by


def test_judge_ranks_by_mean_and_marks_each_setting():
    settings = [Setting({"lr": 1}, [0.30, 0.31, 0.32]), Setting({"lr": 2}, [0.10, 0.12, 0.14]),
                Setting({"lr": 3}, [0.13, 0.15, 0.17]), Setting({"lr": 4}, [0.5]), Setting({"lr": 5})]
    ranked = judge(settings, maximize=False)
    assert [s.values["lr"] for s in ranked] == [2, 3, 1, 4, 5]
    assert [s.verdict for s in ranked] == [BEST, WITHIN, BEYOND, UNKNOWN, UNKNOWN]
    assert [s.values["lr"] for s in judge(settings, maximize=True)][:2] == [4, 1]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    config = folder / "tiny.yaml"
    config.write_text(TINY, encoding="utf-8")
    result = invoke("sweep", str(config), "--grid", "training.learning_rate=0.01,0.3",
                    "--seeds", "0,1", "--jobs", "1", "--runs-dir", str(folder / "runs"))
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1]), result


@pytest.mark.slow
def test_a_sweep_over_seeds_keeps_its_trials_and_summarizes_its_settings(swept):
    sweep_dir, result = swept
    trials = _read(sweep_dir / "sweep.csv")
    assert sorted((t["training.learning_rate"], t["seed"]) for t in trials) == [
        (lr, seed) for lr in ("0.01", "0.3") for seed in ("0", "1")]
    summary = _read(sweep_dir / "sweep_summary.csv")
    assert [s["training.learning_rate"] for s in summary] == sorted(
        {"0.01", "0.3"}, key=lambda lr: sum(float(t["val_loss"]) for t in trials
                                            if t["training.learning_rate"] == lr))
    scores = {s["training.learning_rate"]: [float(t["val_loss"]) for t in trials
                                            if t["training.learning_rate"] == s["training.learning_rate"]]
              for s in summary}
    for s in summary:
        values = scores[s["training.learning_rate"]]
        mean = sum(values) / 2
        assert float(s["val_loss_mean"]) == pytest.approx(mean)
        assert float(s["val_loss_std"]) == pytest.approx(
            math.sqrt(sum((v - mean) ** 2 for v in values) / 1))
        assert s["seeds"] == s["trials"] == "2"
    best, other = summary
    assert best["verdict"] == BEST
    close = _noise(scores[best["training.learning_rate"]], scores[other["training.learning_rate"]])
    assert other["verdict"] == (WITHIN if close else BEYOND)
    assert "val_loss mean ± std" in result.stdout and other["verdict"] in result.stdout


@pytest.mark.slow
def test_compare_groups_runs_over_their_seeds_as_the_sweep_does(swept, tmp_path):
    sweep_dir, _ = swept
    runs = sorted(str(p) for p in sweep_dir.glob("tiny-0*") if p.is_dir())
    result = invoke("compare", *runs, "--output", str(tmp_path / "c.png"))
    assert result.exit_code == 0, result.output
    assert "settings (runs grouped over their seeds)" in result.stdout
    for s in _read(sweep_dir / "sweep_summary.csv"):
        mean, std = float(s["val_loss_mean"]), float(s["val_loss_std"])
        assert f"{mean:.4f} ± {std:.4f}" in result.stdout
        assert s["verdict"] in result.stdout


def test_compare_of_runs_with_one_seed_each_shows_no_settings_table(tmp_path, recwarn):
    from helpers import make_run_dir

    for i in range(2):
        make_run_dir(tmp_path / f"r{i}", metrics={"status": "completed", "monitor": "val_loss",
                                                  "validation": {"loss": 0.5 + i}},
                     config={"name": "r", "seed": 0, "training": {"learning_rate": 0.1 * (i + 1)}})
    result = invoke("compare", str(tmp_path / "r0"), str(tmp_path / "r1"),
                    "--output", str(tmp_path / "c.png"))
    assert result.exit_code == 0, result.output
    assert "grouped over their seeds" not in result.stdout
    # Runs without history.csv: the picture says so instead of warning about an empty legend.
    assert (tmp_path / "c.png").is_file() and not [w for w in recwarn if "legend" in str(w.message)]


@pytest.mark.parametrize(("monitor", "worse", "better"), [
    ("val_accuracy", [0.60, 0.62], [0.90, 0.92]),  # larger is better
    ("val_loss", [0.60, 0.62], [0.20, 0.22]),  # smaller is better
    ("loss", [0.60, 0.62], [0.20, 0.22]),  # no validation rows: the training value
])
def test_compare_ranks_settings_the_way_their_metric_improves(tmp_path, monitor, worse, better):
    from dlrecap.compare import compare_runs
    from dlrecap.sweep.seeds import compare_settings

    from helpers import make_run_dir

    name = monitor.removeprefix("val_")
    split = "validation" if monitor.startswith("val_") else "train"
    folders = []
    for lr, scores in ((0.1, worse), (0.2, better)):
        for seed, score in enumerate(scores):
            folders.append(make_run_dir(
                tmp_path / f"lr{lr}-seed{seed}",
                metrics={"status": "completed", "monitor": monitor, split: {name: score}},
                config={"name": "r", "seed": seed, "training": {"learning_rate": lr}}))
    keys, metric, settings = compare_settings(compare_runs(folders))
    assert (keys, metric) == (["training.learning_rate"], monitor)
    assert [(s.values["training.learning_rate"], s.scores, s.verdict) for s in settings] == [
        ("0.2", better, BEST), ("0.1", worse, BEYOND)]


@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "0"], "expected two or more seeds"),
    (["--seeds", "0,x"], "expected two or more seeds"),
    (["--seeds", "0,1", "--grid", "seed=3,4"], "the seeds are given twice"),
    (["--seeds", "0,1", "--search", "random", "--range", "training.learning_rate=0.01:0.1"],
     "--seeds repeats each setting of a grid"),
])
def test_bad_seeds_exit_2(tmp_path, args, message):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY, encoding="utf-8")
    result = invoke("sweep", str(config), *args, "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "runs").exists()
