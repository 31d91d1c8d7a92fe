"""Import and configure TensorFlow: which devices, seeds, determinism.

TensorFlow takes seconds to import, so only commands that train or load models call this.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dlrecap.errors import DlrecapError


def setup_tensorflow(device: str = "auto", deterministic: bool = False, seed: int = 0) -> Any:
    """Import TensorFlow, pick the device, seed every random source; return a device label.

    Args:
        device: `auto` (GPUs when visible), `cpu`, or `gpu` (an error when none is visible).
        deterministic: turn on TensorFlow op determinism (slower on GPUs).
        seed: seeds Python's `random`, NumPy's global RNG and TensorFlow.
    """
    with _quiet_native_stderr():
        import keras
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    # Python-side TensorFlow warnings (retracing notices and the like) are not the user's to act on.
    tf.get_logger().setLevel("ERROR")
    if device == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
        gpus = []
    elif device == "gpu" and not gpus:
        raise DlrecapError(
            "--device gpu: TensorFlow sees no GPU",
            fix="install with `pip install .[gpu]` on a machine with an NVIDIA GPU, "
            "or use --device auto",
        )
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialized in this process: keep its setting
            pass
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        return f"gpu ({len(gpus)} x {name})"
    return "cpu"


def set_precision(precision: str, on_gpu: bool) -> str | None:
    """Set Keras' dtype policy for the models built next; return a warning, or None.

    Set on every run, so that one mixed-precision run does not leak into the next one in
    the same process. Loss scaling for `mixed_float16` comes with `compile` (a
    LossScaleOptimizer); `mixed_bfloat16` needs none.

    Args:
        precision: `float32`, `mixed_float16` or `mixed_bfloat16`.
        on_gpu: whether training runs on a GPU (mixed precision only pays off there).
    """
    import keras

    keras.mixed_precision.set_global_policy(precision)
    if precision != "float32" and not on_gpu:
        return (f"training.precision: {precision} on the CPU is slower than float32 "
                "(it pays off on GPUs; use float32 here)")
    return None


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Hide the C++ log lines TensorFlow prints while it loads (CUDA probes on CPU machines).

    They bypass Python, so file descriptor 2 itself is redirected; if loading fails, the
    hidden lines are replayed so that nothing needed for a diagnosis is lost.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
