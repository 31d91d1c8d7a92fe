"""Prepare one benchmark workload: its data file, its splits and the network spec.

Run by `bench/run.py` in a child process, so that the parent stays small: a child's peak
RSS as reported by `wait4` can never be below what its parent held when it was started.

Usage: `python bench/prepare.py OUT_DIR KEY CONFIG [--rows N] [--set KEY=VALUE]...`

Writes `OUT_DIR/KEY.npz` (arrays `x`, `y`: the generated data set, when `--rows` is given),
`OUT_DIR/KEY-splits.npz` (`x_train`, `y_train`, `x_val`, `y_val`, `x_test`, `y_test`: the very
rows dlrecap trains, validates and tests on) and `OUT_DIR/KEY-spec.json` (the network and
training settings the baselines copy), and prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

# Synthetic workloads: informative share and class balance of sklearn's make_classification.
N_FEATURES = 32
N_INFORMATIVE = 16


def make_synthetic(path: Path, rows: int, seed: int) -> None:
    """Writes a seeded binary classification set of `rows` x 32 float32 features as `.npz`."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=N_FEATURES,
                               n_informative=N_INFORMATIVE, n_redundant=8,
                               class_sep=1.0, flip_y=0.01, random_state=seed)
    np.savez(path, x=x.astype(np.float32), y=y.astype(np.int64))


def network_spec(config, task: str, n_classes: int | None) -> dict:
    """The settings every contender shares, read from the resolved dlrecap config."""
    model, training = config.model, config.training
    layers = [{"units": layer.units,
               "activation": layer.activation or model.activation,
               "dropout": model.dropout if layer.dropout is None else layer.dropout}
              for layer in model.layers]
    es = training.early_stopping
    return {
        "seed": config.seed,
        "task": task,
        "n_classes": n_classes,
        "layers": layers,
        "optimizer": training.optimizer,
        "learning_rate": training.learning_rate,
        "batch_size": training.batch_size,
        "epochs": training.epochs,
        "early_stopping": None if not es else {
            "patience": es.patience, "monitor": es.monitor, "min_delta": es.min_delta,
            "restore_best_weights": es.restore_best_weights},
        "standardize": config.data.standardize,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("key")
    parser.add_argument("config", type=Path)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)

    from dlrecap.config.load import load_config
    from dlrecap.data import load_splits

    overrides = list(args.overrides)
    if args.rows is not None:
        data_file = args.out_dir / f"{args.key}.npz"
        make_synthetic(data_file, args.rows, seed=0)
        overrides.append(f"data.path={data_file}")
    config = load_config(args.config, overrides).config
    splits = load_splits(config.data, config.seed)
    parts = {name: getattr(splits, name) for name in
             ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
    np.savez(args.out_dir / f"{args.key}-splits.npz", **parts)
    spec = network_spec(config, splits.task, splits.n_classes)
    (args.out_dir / f"{args.key}-spec.json").write_text(json.dumps(spec, indent=1))
    print(json.dumps({
        "overrides": overrides,
        "rows": {"train": len(splits.y_train), "validation": len(splits.y_val),
                 "test": len(splits.y_test)},
        "data_bytes": int(sum(a.nbytes for a in parts.values())),
        "task": splits.task,
    }))


if __name__ == "__main__":
    main()
