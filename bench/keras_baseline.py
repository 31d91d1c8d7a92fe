"""Plain Keras: the benchmark network trained the way the Keras guides do it.

A `Sequential` model with an adapted `Normalization` layer, `compile`, then `fit` on NumPy
arrays with `validation_data` (plus `EarlyStopping` where the workload has it) and
`evaluate` on the test rows. Nothing here is tuned for speed: this is the baseline.

Usage: `python bench/keras_baseline.py SPLITS.npz SPEC.json`, or
`python bench/keras_baseline.py --tf-baseline` (import TensorFlow, fit a tiny model: the
memory any TensorFlow training process needs before its data).

Prints one JSON object on the last line of stdout: `fit_s` (the `fit` call), `epochs`,
`train_rows`, `test_metric` and `metric`.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_model(spec: dict, x_train: np.ndarray):
    """Normalization (adapted on the training rows), the hidden Dense stack, the output."""
    import keras

    layers = [keras.Input(shape=(x_train.shape[1],))]
    if spec["standardize"]:
        normalizer = keras.layers.Normalization()
        normalizer.adapt(x_train)
        layers.append(normalizer)
    for layer in spec["layers"]:
        layers.append(keras.layers.Dense(layer["units"], activation=layer["activation"]))
        if layer["dropout"] > 0:
            layers.append(keras.layers.Dropout(layer["dropout"]))
    if spec["task"] == "regression":
        layers.append(keras.layers.Dense(1))
    elif spec["task"] == "binary":
        layers.append(keras.layers.Dense(1, activation="sigmoid"))
    else:
        layers.append(keras.layers.Dense(spec["n_classes"], activation="softmax"))
    return keras.Sequential(layers)


def run(splits_path: str, spec_path: str) -> dict:
    import keras

    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    data = np.load(splits_path)
    x_train, y_train = data["x_train"], data["y_train"]
    x_val, y_val = data["x_val"], data["y_val"]
    x_test, y_test = data["x_test"], data["y_test"]
    keras.utils.set_random_seed(spec["seed"])

    model = build_model(spec, x_train)
    loss, metric = {"binary": ("binary_crossentropy", "accuracy"),
                    "multiclass": ("sparse_categorical_crossentropy", "accuracy"),
                    "regression": ("mse", "mae")}[spec["task"]]
    if spec["optimizer"] != "adam":
        raise SystemExit(f"the baselines train with adam only, not {spec['optimizer']}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=spec["learning_rate"]),
                  loss=loss, metrics=[metric])

    callbacks = []
    if spec["early_stopping"]:
        es = spec["early_stopping"]
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=es["monitor"], patience=es["patience"], min_delta=es["min_delta"],
            restore_best_weights=es["restore_best_weights"]))

    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=spec["batch_size"], epochs=spec["epochs"],
                        validation_data=(x_val, y_val) if len(x_val) else None,
                        callbacks=callbacks, verbose=0)
    fit_s = time.perf_counter() - start

    _, score = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
    return {"fit_s": fit_s, "epochs": len(history.history["loss"]),
            "train_rows": int(len(x_train)), "test_metric": float(score), "metric": metric}


def tf_baseline() -> dict:
    """Imports TensorFlow and fits a tiny model: TensorFlow's own memory, without data."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 32)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input(shape=(32,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=32, epochs=1, validation_data=(x, y), verbose=0)
    fit_s = time.perf_counter() - start
    _, accuracy = model.evaluate(x, y, verbose=0)
    return {"fit_s": fit_s, "epochs": 1, "train_rows": len(x), "test_metric": float(accuracy),
            "metric": "accuracy"}


def main(argv: list[str]) -> None:
    if argv == ["--tf-baseline"]:
        result = tf_baseline()
    elif len(argv) == 2:
        result = run(*argv)
    else:
        sys.exit(__doc__)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
