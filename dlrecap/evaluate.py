"""Score a finished run on one of its splits, rebuilt from the run's own config and seed.

A plain dense network is run with NumPy (`dlrecap.inference`), without importing
TensorFlow; any other model is loaded with Keras.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dlrecap import runs
from dlrecap.config.load import load_config
from dlrecap.errors import RunError
from dlrecap.inference import LightModel, Unsupported, load_light, score

if TYPE_CHECKING:
    import keras
    import numpy as np

    from dlrecap.config.schema import Config
    from dlrecap.data.split import Features, Splits
    from dlrecap.model import Head

SPLITS = ("test", "validation", "train")


def load_run(run_dir: Path) -> tuple[Config, Splits, Head, keras.Model | LightModel]:
    """The run's config, its data splits, its output head and its trained model."""
    from dlrecap.data import load_splits
    from dlrecap.data.split import ROWS_FILE, load_rows
    from dlrecap.model import plan_head

    _model_path(run_dir)  # no model: say so before reading any data
    config = load_config(run_dir / runs.CONFIG_FILE).config
    splits = load_splits(config.data, config.seed, rows=load_rows(run_dir / ROWS_FILE))
    head = plan_head(config, splits.task, splits.n_classes)
    return config, splits, head, load_inference_model(run_dir, seed=config.seed)


def load_inference_model(run_dir: Path, seed: int = 0) -> keras.Model | LightModel:
    """The run's model for inference: NumPy when it is a plain dense network, else Keras.

    `DLRECAP_INFERENCE=keras` always takes Keras (to compare the two, as the benchmark does).
    """
    if os.environ.get("DLRECAP_INFERENCE") == "keras":
        return load_model(run_dir, seed=seed)
    try:
        return load_light(_model_path(run_dir))
    except Exception:  # noqa: BLE001 - Unsupported, or a damaged file: Keras says what is wrong
        return load_model(run_dir, seed=seed)


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

    config, splits, head, model = load_run(run_dir)
    x, y = splits.split(split)
    if n_rows(x) == 0:
        key = "test_split" if split == "test" else "validation_split"
        raise RunError(f"the run has no {split} rows (data.{key} is 0)",
                       fix="pick another --split")
    baseline = baseline_metrics(splits.task, head.loss, head.metrics, splits.y_train, y,
                                splits.label_names)
    labels = splits.label_names
    return Scores(_model_scores(run_dir, config.seed, model, head, x, y, labels), baseline)


def _model_scores(run_dir: Path, seed: int, model: keras.Model | LightModel, head: Head,
                  x: Features, y: np.ndarray, labels: list[str] | None) -> dict[str, float]:
    """Loss and metrics of the model on rows `x`: with NumPy when it can, else with Keras."""
    from dlrecap.model import encode_targets

    if isinstance(model, LightModel):
        try:
            return score(head, model(x), encode_targets(y, head), model.weight_penalty(), labels)
        except Unsupported:  # a loss only Keras computes
            model = load_model(run_dir, seed=seed)
    from dlrecap.train.engines import pick_engine

    encoded = encode_targets(y, head)
    scores = pick_engine("auto", head, x).evaluator(model, head)(x, encoded)
    return exact_class_scores(scores, model, head, x, encoded, labels)


def exact_class_scores(scores: dict[str, float], model: keras.Model | LightModel, head: Head,
                       x: Features, y: np.ndarray, labels: list[str] | None) -> dict[str, float]:
    """`scores` with precision, recall, F1 and AUC computed exactly from the model's outputs
    (an engine's AUC is a 200-threshold estimate), and per class with `labels`.

    Args:
        scores: an engine evaluator's loss and metrics on rows `x`.
        model: the model that scored them.
        head: its head; without class metrics, `scores` come back as they are.
        x: the rows.
        y: their targets, encoded as the loss expects them.
        labels: the class names.
    """
    from dlrecap.scoring import CLASS_METRICS, class_indices, class_scores

    if not any(name in CLASS_METRICS for name in head.metrics):
        return scores
    return {**scores, **class_scores(head.metrics, model_outputs(model, x), class_indices(y),
                                     labels)}


def model_outputs(model: keras.Model | LightModel, x: Features, batch: int = 8192) -> np.ndarray:
    """The model's outputs for rows `x` (a matrix or a dict of columns) as a NumPy array."""
    import numpy as np

    from dlrecap.data.split import n_rows

    if isinstance(model, LightModel):
        parts = [model(_rows(x, i, i + batch)) for i in range(0, max(n_rows(x), 1), batch)]
        return np.concatenate(parts)
    import tensorflow as tf

    if n_rows(x) == 0:
        return np.zeros((0, model.output_shape[-1]), dtype="float32")
    if isinstance(x, dict):
        # Keras' array path rejects string columns; a tf.data pipeline takes them.
        data = tf.data.Dataset.from_tensor_slices(x).batch(batch)
        return np.asarray(model.predict(data, verbose=0), dtype="float32")
    parts = [np.asarray(model(x[i:i + batch], training=False), dtype="float32")
             for i in range(0, len(x), batch)]
    return np.concatenate(parts)


def _rows(x: Features, start: int, stop: int) -> Features:
    if isinstance(x, dict):
        return {key: column[start:stop] for key, column in x.items()}
    return x[start:stop]
