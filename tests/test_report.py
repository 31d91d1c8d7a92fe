"""Tests for dlrecap.report and `dlrecap report`: one self-contained page that renders offline."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dlrecap import plots
from dlrecap.report import REPORT_FILE, _fmt, build_report, model_summary

from helpers import invoke, make_run_dir

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
PNG = b"\x89PNG\r\n\x1a\n"


def train_tiny(runs_dir: Path, *overrides: str) -> Path:
    from dlrecap.config.load import load_config
    from dlrecap.pipeline import train

    base = ["data.samples=64", "training.epochs=3", "expect={}"]
    return train(load_config(ROOT / "configs/xor.yaml", [*base, *overrides]), runs_dir).run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny xor run with two hidden layers and dropout, pictures drawn."""
    run = train_tiny(tmp_path_factory.mktemp("report") / "runs",
                     "model.layers=[{units: 5, activation: tanh, dropout: 0.1}, 3]")
    if not (run / plots.LEARNING_CURVES).is_file():
        plots.draw_run(run)
    return run


def inlined_images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)",
                                                     page)]


def test_report_is_one_self_contained_page(run_dir):
    path = build_report(run_dir)
    assert path == run_dir / REPORT_FILE
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//)", page), "links outside the file"
    assert "<script" not in page and "<link" not in page
    images = inlined_images(page)
    pictures = sorted(p.name for p in run_dir.glob("*.png"))
    assert len(images) == len(pictures) >= 3
    assert all(image.startswith(PNG) and len(image) > 10_000 for image in images)
    assert {image for image in images} == {(run_dir / p).read_bytes() for p in pictures}


def test_report_shows_config_metrics_and_history(run_dir):
    page = build_report(run_dir).read_text(encoding="utf-8")
    info = json.loads((run_dir / "metrics.json").read_text())
    config = (run_dir / "config.yaml").read_text()
    assert "learning_rate: " + str(yaml.safe_load(config)["training"]["learning_rate"]) in page
    for split in ("train", "validation", "test"):
        assert f"<td class='l'>{split}</td><td>{_fmt(info[split]['loss'])}</td>" in page
    history = re.search(r"<h2>History</h2>.*?</table>", page, re.S).group(0)
    assert history.count("<tr") == info["epochs_run"] + 1  # a header and one row per epoch
    assert f"<tr class=best><td>{info['best_epoch']}</td>" in history


def test_model_summary_counts_parameters_like_the_lecture(run_dir):
    layers = model_summary(run_dir / "model.keras")
    info = json.loads((run_dir / "metrics.json").read_text())
    dense = [layer for layer in layers if layer.kind == "Dense"]
    assert [(d.name, d.activation, d.output_shape) for d in dense] == [
        ("hidden_1", "tanh", "(None, 5)"), ("hidden_2", "relu", "(None, 3)"),
        ("output", "sigmoid", "(None, 1)")]
    assert [d.formula for d in dense] == ["(2 + 1) x 5 = 15", "(5 + 1) x 3 = 18",
                                          "(3 + 1) x 1 = 4"]
    # The lecture's count agrees with what Keras counted when training.
    assert sum(layer.params or 0 for layer in layers) == info["parameters"]
    assert "Dropout" in [layer.kind for layer in layers]
    page = build_report(run_dir).read_text(encoding="utf-8")
    assert "(5 + 1) x 3 = 18" in page


def test_report_on_a_drawn_run_does_not_import_tensorflow(run_dir, tmp_path):
    code = (f"import sys; from dlrecap.report import build_report; "
            f"build_report({str(run_dir)!r}, {str(tmp_path / 'r.html')!r}); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok" and (tmp_path / "r.html").stat().st_size > 10_000


def test_report_of_a_failed_run_without_model(tmp_path):
    run = make_run_dir(tmp_path / "broken-20260101-000000", metrics={
        "name": "broken", "status": "failed", "epochs_run": 2,
        "error": "the loss became nan in epoch 3; training diverged"},
        history="epoch,loss,val_loss\n1,0.9,1.0\n2,5.0,7.0\n", config="name: broken\n")
    page = build_report(run).read_text(encoding="utf-8")
    assert "the loss became nan in epoch 3" in page
    assert "no saved model" in page and "no metrics" in page
    assert len(inlined_images(page)) == 1  # learning curves only


def test_diagnostics_and_warnings_appear_when_present(run_dir, tmp_path):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    (copy / "diagnostics.csv").write_text(
        "epoch,layer,name,activation,units,dead_share,saturated_share,grad_norm\n"
        "3,1,hidden_1,relu,5,0.8,,0.01\n3,output,output,sigmoid,1,,,0.2\n")
    info = json.loads((copy / "metrics.json").read_text())
    info["warnings"] = ["layer 1: 80% of ReLU units never activate <test>"]
    (copy / "metrics.json").write_text(json.dumps(info))
    page = build_report(copy).read_text(encoding="utf-8")
    assert "Training health" in page and "80%" in page
    assert "never activate &lt;test&gt;" in page  # user text is escaped


def test_report_command_prints_the_path(run_dir, tmp_path):
    out = tmp_path / "elsewhere.html"
    result = invoke("report", str(run_dir), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_report_command_with_no_runs_exits_2(tmp_path):
    result = invoke("report", "--runs-dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no runs in")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),  # CI installs it: never skip there
                    reason="/usr/bin/chromium is not installed (apt-get install chromium) "
                           "so the report cannot be rendered headless")
def test_headless_chromium_renders_the_report(run_dir, tmp_path):
    from matplotlib.image import imread

    page = build_report(run_dir)
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
         f"--screenshot={shot}", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == PNG
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1200)
    assert pixels.std() > 0.1  # text, tables and pictures, not a blank page
    # the pictures' colours show up: Playground orange somewhere on the page
    orange = np.all(np.abs(pixels - np.array([0xf5, 0x93, 0x22]) / 255) < 0.08, axis=-1)
    assert orange.sum() > 500
