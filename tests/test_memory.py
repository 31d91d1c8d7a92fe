"""Large data without large copies: a numeric .npz file becomes one float32 matrix, the
splits views of one buffer that TensorFlow uses in place, and standardization's statistics
come without a copy of the training rows; the values stay exactly what they were."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from dlrecap.config.schema import DataConfig
from dlrecap.data.files import load_table
from dlrecap.data.split import ALIGN, cut, load_splits
from dlrecap.errors import DataError
from dlrecap.model import column_moments


def npz(folder: Path, x: np.ndarray, y: np.ndarray, name: str = "d.npz") -> Path:
    path = folder / name
    np.savez(path, x=x, y=y)
    return path


def numbers(rows: int = 300, columns: int = 5, dtype: str = "float64", seed: int = 0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(rows, columns)) * rng.uniform(0.01, 1e4, size=columns)).astype(dtype)
    return x, rng.integers(0, 3, size=rows)


def one_buffer(*arrays: np.ndarray) -> bool:
    """Whether the arrays are views of the same buffer."""
    bases = {id(a.base) for a in arrays}
    return len(bases) == 1 and all(a.base is not None for a in arrays)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
def test_a_numeric_npz_reads_as_the_general_path_reads_it(tmp_path, dtype):
    x, y = numbers(dtype=dtype)
    path = npz(tmp_path, x, y)
    direct = load_table(DataConfig(path=str(path)))
    # Listing the features takes the general path (a DataFrame, a float64 array per column).
    general = load_table(DataConfig(path=str(path), features=[f"x{i + 1}" for i in range(5)]))
    assert direct.x.dtype == np.float32 and direct.x.shape == (300, 5)
    np.testing.assert_array_equal(direct.x, general.x)
    np.testing.assert_array_equal(direct.y, general.y)
    assert (direct.features, direct.labels, direct.task, direct.target) == \
        (general.features, general.labels, general.task, general.target)


@pytest.mark.parametrize("value, message", [
    (1e39, "column 'x2', data row 4: 1e+39 is beyond float32's range"),
    (np.inf, "column 'x2', data row 4: inf is not a number"),
    (np.nan, "column 'x2', data row 4: missing value (1 row has one)"),
])
def test_values_a_float32_matrix_cannot_hold_are_refused_as_before(tmp_path, value, message):
    x, y = numbers()
    x[3, 1] = value
    with pytest.raises(DataError) as info:
        load_table(DataConfig(path=str(npz(tmp_path, x, y))))
    assert message in info.value.message


def test_missing_values_in_an_npz_are_dropped_when_asked(tmp_path):
    x, y = numbers()
    x[[3, 7], 1] = np.nan
    table = load_table(DataConfig(path=str(npz(tmp_path, x, y)), missing="drop"))
    assert len(table.x) == 298 and not np.isnan(table.x).any()


def test_cut_gives_each_split_as_indexing_would_in_one_aligned_buffer():
    x, _ = numbers(rows=101, columns=3, dtype="float32")  # 12-byte rows: splits start unaligned
    rows = tuple(np.random.default_rng(1).permutation(101)[s] for s in
                 (slice(0, 61), slice(61, 81), slice(81, 101)))
    parts = cut(x, rows)
    for part, r in zip(parts, rows, strict=True):
        assert part.dtype == np.float32 and part.flags.c_contiguous
        assert part.ctypes.data % ALIGN == 0
        np.testing.assert_array_equal(part, x[r])
    assert one_buffer(*parts)
    assert not any(np.shares_memory(a, b) for i, a in enumerate(parts) for b in parts[i + 1:])


def test_cut_takes_the_rows_of_each_column_of_a_table_with_text():
    x = {"a": np.arange(6, dtype=np.float32).reshape(-1, 1),
         "b": np.array(list("uvwxyz"), dtype=object).reshape(-1, 1)}
    parts = cut(x, (np.array([4, 0]), np.array([1, 5]), np.array([3, 2])))
    assert [p["a"].ravel().tolist() for p in parts] == [[4, 0], [1, 5], [3, 2]]
    assert [p["b"].ravel().tolist() for p in parts] == [["y", "u"], ["v", "z"], ["x", "w"]]


def test_file_splits_are_the_rows_they_number_in_one_buffer(tmp_path):
    x, y = numbers(rows=500)
    splits = load_splits(DataConfig(path=str(npz(tmp_path, x, y))), 3)
    parts = (splits.x_train, splits.x_val, splits.x_test)
    assert one_buffer(*parts)
    for part, target, r in zip(parts, (splits.y_train, splits.y_val, splits.y_test), splits.rows,
                               strict=True):
        np.testing.assert_array_equal(part, x[r].astype(np.float32))
        np.testing.assert_array_equal(target, y[r])


def test_missing_values_filled_with_the_training_means_stay_in_the_one_buffer(tmp_path):
    x, y = numbers(rows=500)
    gaps = np.arange(0, 500, 7)
    x[gaps, 2] = np.nan
    splits = load_splits(DataConfig(path=str(npz(tmp_path, x, y)), missing="mean"), 0)
    parts = (splits.x_train, splits.x_val, splits.x_test)
    assert one_buffer(*parts)
    train = x[splits.rows[0], 2].astype(np.float32)
    mean = np.float32(train[~np.isnan(train)].mean(dtype=np.float64))
    for part, r in zip(parts, splits.rows, strict=True):
        filled = np.isin(r, gaps)
        assert filled.any() and (part[filled, 2] == mean).all()
        np.testing.assert_array_equal(part[~filled], x[r][~filled].astype(np.float32))


def test_a_built_in_data_set_splits_into_one_buffer():
    splits = load_splits(DataConfig(dataset="circles", samples=200), 0)
    assert one_buffer(splits.x_train, splits.x_val, splits.x_test)
    assert splits.x_train.dtype == np.float32


def peak_bytes(work) -> int:
    """The most memory Python allocations held at once while `work()` ran."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_loading_a_numeric_npz_holds_the_data_at_most_about_twice(tmp_path):
    x, y = numbers(rows=20_000, columns=32, dtype="float32")
    data = DataConfig(path=str(npz(tmp_path, x, y)))
    load_splits(data, 0)  # imports and first-use caches out of the count
    peak = peak_bytes(lambda: load_splits(data, 0))
    # The file's matrix and the splits' buffer, and the small targets and row numbers; the
    # DataFrame path held a float64 copy of every column besides (over 3x).
    assert peak < 2.5 * x.nbytes


@pytest.mark.parametrize("rows, columns, block", [
    (1000, 7, 64), (1000, 32, 999), (1000, 32, 1000), (5, 3, 2), (1, 4, 1), (300, 1, 7)])
def test_column_moments_are_numpys_mean_and_var_to_the_last_bit(rows, columns, block):
    x, _ = numbers(rows=rows, columns=columns, dtype="float32")
    x[:, -1] = 3.25  # a constant column: variance exactly 0
    before = x.copy()
    mean, variance = column_moments(x, block)
    assert mean.dtype == variance.dtype == np.float32
    assert np.array_equal(mean, x.mean(axis=0)) and np.array_equal(variance, x.var(axis=0))
    assert variance[-1] == 0
    np.testing.assert_array_equal(x, before)  # in place of nothing: the rows stay as they were


def test_column_moments_hold_a_block_of_rows_not_a_copy_of_them():
    x, _ = numbers(rows=20_000, columns=32, dtype="float32")
    peak = peak_bytes(lambda: column_moments(x, 1000))
    assert peak < 0.1 * x.nbytes  # x.var(axis=0) holds a temporary as large as x


# --- TensorFlow: the tensors the fast engine trains on -------------------------------------

def in_place_expected() -> bool:
    """Tensors share an array's memory on the CPU only; with a GPU they are copied there."""
    import tensorflow as tf

    return not tf.config.list_logical_devices("GPU")


def test_an_aligned_float32_split_becomes_a_tensor_without_a_copy_on_the_cpu(tmp_path):
    from dlrecap.train.tensors import as_tensor, shares_memory

    x, y = numbers(rows=200, columns=3)
    splits = load_splits(DataConfig(path=str(npz(tmp_path, x, y))), 0)
    shared = in_place_expected()
    for part in (splits.x_train, splits.x_val, splits.x_test):
        assert shares_memory(part) == shared
        tensor = as_tensor(part)
        np.testing.assert_array_equal(tensor.numpy(), part)
        part[0, 0] += 1  # only to show whether the memory is shared: nothing writes to a split
        assert (tensor.numpy()[0, 0] == part[0, 0]) == shared


@pytest.mark.parametrize("make", [
    lambda x: x[1:],  # starts 12 bytes in: TensorFlow would abort on it in place
    lambda x: x.astype(np.float64),
    lambda x: np.asfortranarray(x),
    lambda x: x[:0],
])
def test_anything_else_is_copied(make):
    from dlrecap.train.tensors import as_tensor, shares_memory

    x = cut(numbers(rows=20, columns=3, dtype="float32")[0], (np.arange(20),) * 3)[0]
    array = make(x)
    assert not shares_memory(array)
    np.testing.assert_array_equal(as_tensor(array).numpy(), array)


def test_a_read_only_array_is_copied():
    from dlrecap.train.tensors import as_tensor, shares_memory

    x = cut(numbers(rows=20, columns=3, dtype="float32")[0], (np.arange(20),) * 3)[0]
    x.flags.writeable = False
    assert not shares_memory(x)
    np.testing.assert_array_equal(as_tensor(x).numpy(), x)


def _train(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray):
    """History rows and final weights of two fast-engine epochs from seeded weights."""
    import keras

    from dlrecap.config.schema import Config
    from dlrecap.model import Head
    from dlrecap.train.fast_engine import FastEngine

    config = Config.model_validate({"name": "m", "seed": 5, "data": {"dataset": "moons"},
                                    "training": {"epochs": 2, "batch_size": 16}})
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    head = Head(1, "sigmoid", "binary_crossentropy", False, ("accuracy",))
    engine = FastEngine()
    engine.compile(model, head, config, train_rows=len(x))
    rows: list[dict] = []
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda _epoch, row: rows.append(dict(row)))
    engine.fit(model, head, config, (x, y), (x_val, y_val), [keep])
    return rows, model.get_weights(), engine.evaluator(model, head)(x_val, y_val)


def test_training_on_the_splits_in_place_gives_what_training_on_copies_gives():
    from dlrecap.train.tensors import shares_memory

    x, _ = numbers(rows=120, columns=3, dtype="float32")
    y = (x[:, :1] > 0).astype("float32")
    shared = cut(x, (np.arange(90), np.arange(90, 120), np.arange(0)))[:2]
    copies = [np.asfortranarray(a) for a in shared]  # the same values, copied into tensors
    assert all(shares_memory(a) == in_place_expected() for a in shared)
    assert not any(shares_memory(a) for a in copies)
    import tensorflow as tf

    with tf.device("/CPU:0"):  # bit for bit: no GPU reduction order in between
        in_place = _train(shared[0], y[:90], shared[1], y[90:])
        copied = _train(copies[0], y[:90], copies[1], y[90:])
    assert in_place[0] == copied[0] and in_place[2] == copied[2]
    for a, b in zip(in_place[1], copied[1], strict=True):
        np.testing.assert_array_equal(a, b)
