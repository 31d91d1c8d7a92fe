"""Finished runs answered without TensorFlow: eval, predict, plot and report on real runs.

Each command runs in a fresh process where importing tensorflow or keras fails, and eval's
numbers must equal what the training engine recorded in metrics.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import invoke

ROOT = Path(__file__).resolve().parents[1]
WITHOUT_TF = """\
import sys
sys.modules["tensorflow"] = None  # any import of TensorFlow or Keras now fails
sys.modules["keras"] = None
sys.argv = ["dlrecap", *{args!r}]
from dlrecap.cli import main
main()
"""
CONFIGS = {
    "xor": "data: {dataset: xor, samples: 120}\nmodel: {layers: [6]}\ntraining: {epochs: 5}\n",
    "iris": ("data: {dataset: iris}\nmodel: {layers: [{units: 5, activation: gelu, dropout: 0.1}], "
             "l2: 0.01}\ntraining: {epochs: 5, metrics: [accuracy]}\n"),
    "apartments": (f"data: {{path: {ROOT / 'configs/data/apartments.csv'}, target: rent}}\n"
                   "model: {layers: [4]}\ntraining: {epochs: 3, metrics: [mae, rmse]}\n"),
}


def without_tensorflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TF.format(args=list(args))],
                          capture_output=True, text=True, timeout=120)


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def run(request, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp(request.param)
    config = folder / f"{request.param}.yaml"
    config.write_text(CONFIGS[request.param], encoding="utf-8")
    result = invoke("train", str(config), "--runs-dir", str(folder / "runs"), "-q")
    assert result.exit_code == 0, result.output
    return next((folder / "runs").iterdir())


def test_eval_without_tensorflow_equals_the_engine(run):
    recorded = json.loads((run / "metrics.json").read_text())
    for split in ("test", "train"):
        done = without_tensorflow("eval", str(run), "--split", split, "--json")
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)["metrics"]
        assert found.keys() == recorded[split].keys()
        for name, value in recorded[split].items():
            assert found[name] == pytest.approx(value, rel=1e-5, abs=1e-6), (split, name)


def test_predict_plot_and_report_without_tensorflow(run, tmp_path):
    info = json.loads((run / "metrics.json").read_text())
    rows = tmp_path / "rows.csv"
    if "district" in info["features"]:  # 'harbour' was never seen: the unknown slot
        rows.write_text("area_m2,rooms,district,balcony\n50,2,harbour,True\n80,3,centre,False\n")
    else:
        names = info["features"]
        rows.write_text(",".join(names) + "\n" + ",".join(["0.5"] * len(names)) + "\n")
    done = without_tensorflow("predict", str(run), str(rows))
    assert done.returncode == 0, done.stderr
    assert "prediction" in done.stdout.splitlines()[0]
    for command in ("plot", "report"):
        done = without_tensorflow(command, str(run))
        assert done.returncode == 0, done.stderr
    assert (run / "report.html").is_file()


def test_version_answers_without_tensorflow():
    from dlrecap import __version__

    done = without_tensorflow("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"dlrecap {__version__}\n"
