"""Tests for `dlrecap export`: each format reloads and reproduces the run's predictions.

One tiny iris run (three softmax outputs) is trained once for the module.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from helpers import invoke

pytestmark = pytest.mark.slow  # every test here needs a trained model

CONFIG = """\
name: iris_export
data: {dataset: iris}
model: {layers: [8]}
training: {epochs: 5, batch_size: 16, learning_rate: 0.05}
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    (folder / "iris_export.yaml").write_text(CONFIG, encoding="utf-8")
    result = invoke("train", str(folder / "iris_export.yaml"), "--runs-dir", str(folder / "runs"),
                    "--quiet")
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip())


@pytest.fixture(scope="module")
def expected(run_dir) -> tuple[np.ndarray, np.ndarray]:
    """The run's test rows and what its own model.keras predicts for them."""
    import keras

    from dlrecap.evaluate import load_run

    _config, splits, _head, model = load_run(run_dir)
    x = splits.x_test.astype("float32")
    return x, keras.ops.convert_to_numpy(model(x))


def test_savedmodel_reproduces_the_runs_predictions(run_dir, expected, tmp_path):
    import tensorflow as tf

    result = invoke("export", str(run_dir), "--format", "savedmodel",
                    "--output", str(tmp_path / "served"))
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path == tmp_path / "served" and (path / "saved_model.pb").is_file()
    x, want = expected
    loaded = tf.saved_model.load(str(path))
    got = loaded.serve(tf.constant(x)).numpy()
    assert got.shape == want.shape == (len(x), 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_tflite_reproduces_the_runs_predictions(run_dir, expected):
    import tensorflow as tf

    result = invoke("export", str(run_dir), "--format", "tflite")
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path == run_dir / "export" / "tflite" / "model.tflite"  # the default place
    x, want = expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the interpreter's notice that LiteRT replaces it
        interpreter = tf.lite.Interpreter(model_path=str(path))
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_an_earlier_export_is_replaced_but_other_folders_are_kept(run_dir, tmp_path):
    target = tmp_path / "out"
    for _ in range(2):
        result = invoke("export", str(run_dir), "--format", "savedmodel", "--output", str(target))
        assert result.exit_code == 0, result.output
    assert (target / "saved_model.pb").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folders left

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = invoke("export", str(run_dir), "--format", "savedmodel", "--output", str(mine))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "not empty" in result.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("args, message", [
    (["no_such_run", "--format", "savedmodel"], "no run directory or run named 'no_such_run'"),
    (["{run}", "--format", "onnx"], "unknown format 'onnx'"),
    (["{run}", "--format", "tflit"], "did you mean 'tflite'"),
])
def test_bad_run_or_format_exits_2(run_dir, args, message):
    result = invoke("export", *[a.format(run=run_dir) for a in args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output
    assert not (run_dir / "export" / "onnx").exists()
