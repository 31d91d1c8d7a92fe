"""Imported once by the process that `--jobs N` forks its workers from (`forkserver`).

TensorFlow takes seconds of CPU to import, and the modules a trial needs (the data split,
the pictures, Optuna) another second; imported here once, every worker starts with them
loaded. Only imported: TensorFlow picks its devices and sizes its thread pools in each
worker, after the fork (`worker.init_worker`).
"""

# Its start-up noise hidden, as when training imports it.
from dlrecap.train.device import _quiet_native_stderr

with _quiet_native_stderr():
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

import matplotlib.backends.backend_agg  # noqa: E402,F401
import matplotlib.figure  # noqa: E402,F401
import optuna.storages  # noqa: E402,F401
import sklearn.model_selection  # noqa: E402,F401
import threadpoolctl  # noqa: E402,F401

import dlrecap.pipeline  # noqa: E402,F401
import dlrecap.plots  # noqa: E402,F401
import dlrecap.sweep.worker  # noqa: E402,F401
import dlrecap.train.fast_engine  # noqa: E402,F401
import dlrecap.train.numpy_engine  # noqa: E402,F401
