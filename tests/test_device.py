"""Tests for devices and precision: --device, mixed precision on CPU and GPU, the gpu marker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import TINY_MOONS, invoke


def train(tmp_path: Path, *args: str) -> tuple[object, dict]:
    """Train TINY_MOONS with extra CLI arguments; return the result and metrics.json (if written)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_MOONS, encoding="utf-8")
    result = invoke("train", str(config), "--runs-dir", str(tmp_path / "runs"), *args)
    runs = sorted((tmp_path / "runs").glob("tiny-*")) if (tmp_path / "runs").is_dir() else []
    metrics = json.loads((runs[-1] / "metrics.json").read_text()) if runs else {}
    return result, metrics


def _gpus() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def test_device_gpu_without_a_gpu_exits_2_and_writes_nothing(tmp_path):
    if _gpus():
        pytest.skip("a GPU is visible here, so --device gpu is valid")
    result, metrics = train(tmp_path, "--device", "gpu")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --device gpu: TensorFlow sees no GPU")
    assert "pip install .[gpu]" in result.stderr and "Traceback" not in result.output
    assert metrics == {} and not list((tmp_path / "runs").glob("*"))


def test_unknown_device_is_a_usage_error(tmp_path):
    result, _ = train(tmp_path, "--device", "tpu")
    assert result.exit_code == 2 and "unknown device 'tpu'" in result.stderr


@pytest.mark.slow
def test_mixed_precision_on_cpu_warns_scales_the_loss_and_still_learns(tmp_path):
    import keras

    base, base_metrics = train(tmp_path / "f32", "--device", "cpu")
    assert base.exit_code == 0, base.output
    assert "precision" not in base.stderr
    assert "trained 6 epochs in " in base.stderr and "s on cpu, best epoch" in base.stderr
    result, metrics = train(tmp_path / "f16", "--device", "cpu", "--quiet",
                            "--set", "training.precision=mixed_float16")
    assert result.exit_code == 0, result.output
    assert "warning: training.precision: mixed_float16 on the CPU is slower" in result.stderr
    assert metrics["device"] == "cpu" and metrics["distribute"] == "none"
    # Loss scaling: the fast engine scales the loss and the optimizer unscales the gradients;
    # done wrong, the weights barely move and the loss stays near its starting value.
    assert metrics["train"]["loss"] == pytest.approx(base_metrics["train"]["loss"], abs=0.05)
    model = keras.models.load_model(Path(result.stdout.strip()) / "model.keras")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.get_layer("hidden_1").dtype_policy.name == "mixed_float16"
    assert model.get_layer("output").dtype_policy.name == "float32"  # a stable sigmoid
    # The policy is set per run: it does not leak into the next run in the same process.
    again, _ = train(tmp_path / "again", "--device", "cpu", "--quiet")
    assert again.exit_code == 0 and keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.gpu
def test_trains_on_the_gpu_in_float32_and_mixed_float16(tmp_path):
    result, metrics = train(tmp_path / "f32", "--device", "gpu", "--quiet")
    assert result.exit_code == 0, result.output
    assert metrics["device"].startswith("gpu (") and metrics["status"] == "completed"
    assert metrics["test"]["accuracy"] > 0.7
    mixed, mixed_metrics = train(tmp_path / "f16", "--device", "gpu", "--quiet",
                                 "--set", "training.precision=mixed_float16")
    assert mixed.exit_code == 0, mixed.output
    assert "precision" not in mixed.stderr  # no CPU warning on a GPU
    assert mixed_metrics["test"]["accuracy"] > 0.7
