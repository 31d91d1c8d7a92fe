"""scikit-learn: the benchmark network as an `MLPClassifier` (or `MLPRegressor`).

Same hidden layers, activation, batch size, learning rate (adam) and epochs (`max_iter`).
Differences that scikit-learn imposes, stated in bench/RESULTS.md:
- no dropout;
- without early stopping all epochs are forced (`n_iter_no_change` > `max_iter`) and the
  validation rows are not used;
- with early stopping, scikit-learn carves its own validation rows out of what `fit` gets:
  it receives train + validation rows with `validation_fraction` chosen so that it trains
  on as many rows as the others, and it watches validation accuracy, not validation loss.
Standardization, as in the other contenders, is fitted on the training rows (a pipeline).

Usage: `python bench/sklearn_baseline.py SPLITS.npz SPEC.json`; prints one JSON object
(`fit_s`, `epochs`, `train_rows`, `test_metric`, `metric`) on the last line of stdout.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic", "linear": "identity"}


def make_estimator(spec: dict, n_train: int, n_val: int):
    """The scikit-learn estimator matching `spec`, and whether it needs the validation rows."""
    activations = {layer["activation"] for layer in spec["layers"]}
    if len(activations) != 1 or not activations <= set(ACTIVATIONS):
        raise SystemExit(f"scikit-learn needs one activation of {sorted(ACTIVATIONS)}, "
                         f"got {sorted(activations)}")
    if spec["optimizer"] != "adam":
        raise SystemExit(f"the baselines train with adam only, not {spec['optimizer']}")
    es = spec["early_stopping"]
    common = dict(
        hidden_layer_sizes=tuple(layer["units"] for layer in spec["layers"]),
        activation=ACTIVATIONS[activations.pop()], solver="adam", alpha=0.0,
        batch_size=spec["batch_size"], learning_rate_init=spec["learning_rate"],
        max_iter=spec["epochs"], shuffle=True, random_state=spec["seed"],
    )
    if es and n_val:
        common.update(early_stopping=True, validation_fraction=n_val / (n_train + n_val),
                      n_iter_no_change=es["patience"], tol=es["min_delta"])
    else:
        # n_iter_no_change > max_iter: every epoch runs, as in the other contenders.
        common.update(early_stopping=False, n_iter_no_change=spec["epochs"] + 1, tol=0.0)
    cls = MLPRegressor if spec["task"] == "regression" else MLPClassifier
    steps = [StandardScaler()] if spec["standardize"] else []
    return make_pipeline(*steps, cls(**common)), bool(es and n_val)


def run(splits_path: str, spec_path: str) -> dict:
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    data = np.load(splits_path)
    x_train, y_train = data["x_train"], data["y_train"]
    x_val, y_val = data["x_val"], data["y_val"]
    estimator, uses_val = make_estimator(spec, len(x_train), len(x_val))
    if uses_val:
        # The scaler then sees the validation rows too: scikit-learn splits inside the MLP.
        x_fit, y_fit = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
    else:
        x_fit, y_fit = x_train, y_train

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: intended
        estimator.fit(x_fit, y_fit)
    fit_s = time.perf_counter() - start

    mlp = estimator[-1]
    pred = estimator.predict(data["x_test"])
    if spec["task"] == "regression":
        metric, score = "mae", np.mean(np.abs(pred - data["y_test"]))
    else:
        metric, score = "accuracy", np.mean(pred == data["y_test"])
    return {"fit_s": fit_s, "epochs": int(mlp.n_iter_), "train_rows": int(len(x_train)),
            "test_metric": float(score), "metric": metric}


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit(__doc__)
    print(json.dumps(run(*argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
