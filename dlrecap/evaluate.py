"""Score a finished run on one of its splits, rebuilt from the run's own config and seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dlrecap import runs
from dlrecap.config.load import load_config
from dlrecap.errors import RunError

if TYPE_CHECKING:
    import keras
    import numpy as np

    from dlrecap.config.schema import Config
    from dlrecap.data.split import Features, Splits
    from dlrecap.model import Head

SPLITS = ("test", "validation", "train")


def load_run(run_dir: Path) -> tuple[Config, Splits, Head, keras.Model]:
    """The run's config, its data splits, its output head and its trained Keras model."""
    from dlrecap.data import load_splits
    from dlrecap.model import plan_head

    _model_path(run_dir)  # no model: say so before reading any data
    config = load_config(run_dir / runs.CONFIG_FILE).config
    splits = load_splits(config.data, config.seed)
    head = plan_head(config, splits.task, splits.n_classes)
    return config, splits, head, load_model(run_dir, seed=config.seed)


def load_model(run_dir: Path, seed: int = 0, device: str = "auto") -> keras.Model:
    """The run's trained Keras model, uncompiled (`predict` needs no training data)."""
    from dlrecap.train.device import setup_tensorflow

    model_path = _model_path(run_dir)
    setup_tensorflow(device, False, seed)
    import keras

    try:
        return keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # a truncated or foreign file: say so, don't crash
        raise RunError(f"{model_path}: cannot load the model ({type(exc).__name__})") from None


def _model_path(run_dir: Path) -> Path:
    model_path = run_dir / runs.MODEL_FILE
    if not model_path.is_file():
        status = runs.read_metrics(run_dir).get("status", "unknown")
        raise RunError(f"{run_dir} has no trained model (status: {status})",
                       fix="train it again, or pick another run")
    return model_path


@dataclass(frozen=True)
class Scores:
    """A run's scores on one split.

    Args:
        metrics: loss and metrics of the run's saved model.
        baseline: the same for the trivial predictor fitted on the training rows.
    """

    metrics: dict[str, float]
    baseline: dict[str, float]


def evaluate_run(run_dir: Path, split: str = "test") -> dict[str, float]:
    """Loss and metrics of the run's saved model on `split` (`test`, `validation`, `train`)."""
    return score_run(run_dir, split).metrics


def score_run(run_dir: Path, split: str = "test") -> Scores:
    """The run's saved model and the trivial baseline, scored on `split`, in the target's units."""
    from dlrecap.baseline import baseline_metrics
    from dlrecap.data.split import n_rows
    from dlrecap.model import encode_targets

    _config, splits, head, model = load_run(run_dir)
    from dlrecap.train.engines import pick_engine

    x, y = splits.split(split)
    if n_rows(x) == 0:
        key = "test_split" if split == "test" else "validation_split"
        raise RunError(f"the run has no {split} rows (data.{key} is 0)",
                       fix="pick another --split")
    engine = pick_engine("auto", head, x)
    metrics = engine.evaluator(model, head)(x, encode_targets(y, head))
    baseline = baseline_metrics(splits.task, head.loss, head.metrics, splits.y_train, y)
    return Scores(metrics, baseline)


def model_outputs(model: keras.Model, x: Features, batch: int = 8192) -> np.ndarray:
    """The model's outputs for rows `x` (a matrix or a dict of columns) as a NumPy array."""
    import numpy as np
    import tensorflow as tf

    from dlrecap.data.split import n_rows

    if n_rows(x) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype="float32")
    if isinstance(x, dict):
        # Keras' array path rejects string columns; a tf.data pipeline takes them.
        data = tf.data.Dataset.from_tensor_slices(x).batch(batch)
        return np.asarray(model.predict(data, verbose=0), dtype="float32")
    parts = [np.asarray(model(x[i:i + batch], training=False), dtype="float32")
             for i in range(0, len(x), batch)]
    return np.concatenate(parts)
