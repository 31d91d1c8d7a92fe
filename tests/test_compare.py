"""Tests for dlrecap.compare and `dlrecap compare`: exactly the differing keys, metrics, curves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dlrecap.compare import MISSING, compare_runs, draw_comparison, flatten

from helpers import invoke, make_run_dir

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def resolved(*overrides: str) -> dict:
    from dlrecap.config.load import load_config

    return load_config(ROOT / "configs/xor.yaml", list(overrides)).config.resolved()


def fake_run(folder: Path, config: dict, test_accuracy: float, epochs: int = 4,
             validation: bool = True) -> Path:
    """A finished-looking run directory: config.yaml, metrics.json, history.csv."""
    metrics = {
        "name": config["name"], "status": "completed", "epochs_run": epochs,
        "best_epoch": epochs, "stopped_early": False, "duration_s": 1.5, "parameters": 33,
        "train": {"loss": 0.1, "accuracy": 0.99}, "validation": {"loss": 0.2, "accuracy": 0.9},
        "test": {"loss": 0.3, "accuracy": test_accuracy}}
    columns = "epoch,loss,accuracy" + (",val_loss,val_accuracy" if validation else "")
    rows = [f"{e},{1 / e},{0.5 + e / 10}" + (f",{1.2 / e},{0.4 + e / 10}" if validation else "")
            for e in range(1, epochs + 1)]
    return make_run_dir(folder, metrics=metrics, history="\n".join([columns, *rows]) + "\n",
                        config=config)


def test_flatten_names_every_leaf_with_a_dotted_key():
    assert flatten({"a": {"b": [1, {"c": None}], "d": {}}, "e": []}) == {
        "a.b[0]": 1, "a.b[1].c": None, "a.d": {}, "e": []}


def test_compare_reports_exactly_the_differing_keys(tmp_path):
    a = fake_run(tmp_path / "a", resolved(), 0.95)
    b = fake_run(tmp_path / "b", resolved("training.learning_rate=0.1", "training.batch_size=16",
                                          "name=other"), 0.85)
    found = compare_runs([a, b])
    assert dict(found.config_diff) == {
        "name": ["xor", "other"],
        "training.learning_rate": ["0.05", "0.1"],
        "training.batch_size": ["32", "16"],
    }
    assert found.labels == ["a", "b"]


def test_layers_of_different_depth_differ_key_by_key(tmp_path):
    a = fake_run(tmp_path / "a", resolved(), 0.95)
    b = fake_run(tmp_path / "b", resolved("model.layers=[8, 4]"), 0.9)
    diff = dict(compare_runs([a, b]).config_diff)
    # Values as trained: an unset layer activation shows the model default it took (relu).
    assert diff == {
        "model.layers[0].activation": ["tanh", "relu"],
        "model.layers[1].units": [MISSING, "4"],
        "model.layers[1].activation": [MISSING, "relu"],
        "model.layers[1].dropout": [MISSING, "0.0"],
        "model.layers[1].initializer": [MISSING, "glorot_uniform"],
        "model.layers[1].batch_norm": [MISSING, "false"],
    }


def test_a_default_spelled_out_is_no_difference(tmp_path):
    a = fake_run(tmp_path / "a", resolved("model.layers=[8]"), 0.9)
    b = fake_run(tmp_path / "b", resolved("model.layers=[{units: 8, activation: relu}]"), 0.9)
    assert compare_runs([a, b]).config_diff == []


def test_identical_configs_have_no_differences_but_metrics_side_by_side(tmp_path):
    runs = [fake_run(tmp_path / n, resolved(), acc) for n, acc in (("a", 0.9), ("b", 0.8),
                                                                    ("c", 0.7))]
    found = compare_runs(runs)
    assert found.config_diff == []
    metrics = dict(found.metrics)
    assert metrics["test accuracy"] == [0.9, 0.8, 0.7]
    assert metrics["epochs_run"] == [4, 4, 4]
    assert list(metrics)[:3] == ["status", "epochs_run", "best_epoch"]


def test_compare_needs_two_runs(tmp_path):
    from dlrecap.errors import RunError

    with pytest.raises(RunError, match="at least two runs"):
        compare_runs([fake_run(tmp_path / "a", resolved(), 0.9)])


def test_compare_png_overlays_the_runs(tmp_path):
    from matplotlib.image import imread

    a = fake_run(tmp_path / "a", resolved(), 0.9, epochs=5)
    b = fake_run(tmp_path / "b", resolved(), 0.9, epochs=9, validation=False)
    path = draw_comparison(compare_runs([a, b]), tmp_path / "new folder" / "c.png")
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000
    assert imread(path)[..., :3].std() > 0.05


def test_compare_command_prints_tables_and_writes_compare_png_here(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    fake_run(runs / "xor-20260101-000000", resolved(), 0.95)
    fake_run(runs / "xor-20260101-000001", resolved("training.epochs=7"), 0.85)
    monkeypatch.chdir(tmp_path)
    result = invoke("compare", "xor-20260101-000000", str(runs / "xor-20260101-000001"),
                    "--runs-dir", str(runs))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "config keys that differ" in out and "training.epochs" in out
    keys = [line.split("│")[1].strip() for line in out.split("metrics")[0].splitlines()
            if line.startswith("│")]
    assert keys == ["training.epochs"]
    assert "test accuracy" in out and "0.9500" in out and "0.8500" in out
    png = tmp_path / "compare.png"
    assert out.strip().splitlines()[-1] == f"validation curves: {png}"
    assert png.read_bytes()[:8] == PNG


def test_compare_command_errors_exit_2(tmp_path):
    one = fake_run(tmp_path / "runs" / "xor-20260101-000000", resolved(), 0.9)
    result = invoke("compare", str(one))
    assert result.exit_code == 2 and "name at least two runs" in result.stderr
    result = invoke("compare", str(one), "missing", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no run directory or run named 'missing'")
    assert "Traceback" not in result.output


def test_compare_does_not_import_tensorflow(tmp_path):
    a = fake_run(tmp_path / "a", resolved(), 0.9)
    b = fake_run(tmp_path / "b", resolved("seed=1"), 0.9)
    code = ("import sys; from typer.testing import CliRunner; from dlrecap.cli import app; "
            f"r = CliRunner().invoke(app, ['compare', {str(a)!r}, {str(b)!r}, '-o', "
            f"{str(tmp_path / 'c.png')!r}]); assert r.exit_code == 0, r.output; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.slow
def test_compare_two_trained_runs(tmp_path, monkeypatch):
    from dlrecap.config.load import load_config
    from dlrecap.pipeline import train

    runs = tmp_path / "runs"
    base = ["data.samples=64", "training.epochs=3", "expect={}"]
    a = train(load_config(ROOT / "configs/xor.yaml", base), runs).run_dir
    b = train(load_config(ROOT / "configs/xor.yaml", [*base, "training.learning_rate=0.2"]),
              runs).run_dir
    found = compare_runs([a, b])
    assert [key for key, _ in found.config_diff] == ["training.learning_rate"]
    assert dict(found.metrics)["epochs_run"] == [3, 3]
    monkeypatch.chdir(tmp_path)
    result = invoke("compare", str(a), str(b))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "compare.png").read_bytes()[:8] == PNG
