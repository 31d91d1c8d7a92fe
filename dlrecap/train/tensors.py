"""NumPy arrays as TensorFlow tensors, without a copy where TensorFlow allows it.

`tf.convert_to_tensor` copies an array, and on the way needs up to twice its size: on a
large data set that is the largest share of a run's memory. On the CPU a tensor can use the
array's own memory instead (DLPack), when the array is float32, C-contiguous, writable and
starts at a multiple of 64 bytes (TensorFlow aborts the process on a misaligned tensor):
the splits `dlrecap.data.split.cut` makes are. Anything else, or when a GPU is used (the
tensor must then live there), is copied as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from dlrecap.data.split import ALIGN


def as_tensor(array: Any) -> tf.Tensor:
    """`array` as a tensor; sharing its memory when `shares_memory(array)`.

    The tensor keeps the array alive; neither must be written to while the other is used.
    """
    if shares_memory(array):
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    return tf.convert_to_tensor(array)


def shares_memory(array: Any) -> bool:
    """Whether `as_tensor(array)` uses the array's memory instead of a copy."""
    return (isinstance(array, np.ndarray) and array.dtype == np.float32 and array.size > 0
            and array.flags.c_contiguous and array.flags.writeable
            and array.ctypes.data % ALIGN == 0 and not tf.config.list_logical_devices("GPU"))
