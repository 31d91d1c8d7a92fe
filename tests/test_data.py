"""Tests for dlrecap.data: the registry, the generators and the splits."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from dlrecap.data import DATASETS, SYNTHETIC, DatasetInfo, Splits, load_splits
from dlrecap.data.split import _split_indices
from dlrecap.data.synthetic import GENERATORS, LINEAR_BIAS, LINEAR_WEIGHTS
from dlrecap.errors import DataError

SYNTHETIC_NAMES = ["xor", "circles", "moons", "spiral", "gaussian", "pass_fail", "linear", "sine",
                   "plane", "bumps"]
BUNDLED = {  # name: (rows, features, classes)
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "breast_cancer": (569, 30, 2),
    "digits": (1797, 64, 10),
    "diabetes": (442, 10, None),
}


def cfg(dataset="xor", **kw):
    """A stand-in for the `data:` config section."""
    base = dict(dataset=dataset, path=None, samples=None, noise=None,
                validation_split=0.2, test_split=0.2, task="auto")
    return SimpleNamespace(**{**base, **kw})


def all_rows(s: Splits):
    return np.concatenate([s.x_train, s.x_val, s.x_test]), np.concatenate(
        [s.y_train, s.y_val, s.y_test])


# --- registry ---------------------------------------------------------------------------


def test_registry_lists_synthetic_first_then_bundled():
    assert list(DATASETS) == SYNTHETIC_NAMES + list(BUNDLED)
    assert SYNTHETIC == frozenset(SYNTHETIC_NAMES)
    assert set(GENERATORS) == SYNTHETIC


@pytest.mark.parametrize("name", list(DATASETS))
def test_registry_entries_are_consistent(name):
    info = DATASETS[name]
    assert isinstance(info, DatasetInfo) and info.name == name
    assert info.task in ("binary", "multiclass", "regression")
    assert (info.classes is None) == (info.task == "regression")
    assert info.description and "\n" not in info.description
    if name in SYNTHETIC:
        assert info.source == "synthetic" and info.rows is None and info.default_noise >= 0
    else:
        assert info.source == "scikit-learn (bundled)" and info.default_noise is None
        assert (info.rows, info.features, info.classes) == BUNDLED[name]


@pytest.mark.parametrize("module", ["dlrecap.data.registry", "dlrecap.data"])
def test_registry_import_is_light(module):
    code = (f"import {module}, sys; "
            "heavy = {'numpy', 'sklearn', 'pandas', 'tensorflow'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- shapes, dtypes, samples and noise ---------------------------------------------------


@pytest.mark.parametrize("name", list(DATASETS))
def test_shapes_and_dtypes(name):
    info = DATASETS[name]
    s = load_splits(cfg(name, samples=50), seed=0)
    x, y = all_rows(s)
    assert x.dtype == np.float32 and x.shape == (info.rows or 50, info.features)
    assert np.isfinite(x).all() and np.isfinite(y).all()
    assert s.task == info.task and s.n_features == info.features == len(s.feature_names)
    assert s.n_classes == info.classes
    for split in ("train", "validation", "test"):
        xs, ys = s.split(split)
        assert xs.ndim == 2 and ys.shape == (len(xs),)
    if info.task == "regression":
        assert y.dtype == np.float32 and s.label_names is None
    else:
        assert y.dtype == np.int64 and len(s.label_names) == info.classes
        assert set(np.unique(y)) == set(range(info.classes))


def test_samples_default_and_explicit():
    assert len(all_rows(load_splits(cfg("moons"), 0))[0]) == 400
    assert len(all_rows(load_splits(cfg("moons", samples=123), 0))[0]) == 123


def test_noise_none_means_the_default():
    default = DATASETS["spiral"].default_noise
    a = all_rows(load_splits(cfg("spiral"), 3))[0]
    b = all_rows(load_splits(cfg("spiral", noise=default), 3))[0]
    c = all_rows(load_splits(cfg("spiral", noise=default * 2), 3))[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_noise_is_honoured():
    rng = np.random.default_rng(0)
    x, _, _, _ = GENERATORS["xor"](200, 0.0, rng)
    assert np.array_equal(np.abs(x), np.ones_like(x))  # exactly on the corners
    spread = [np.abs(np.abs(GENERATORS["xor"](400, n, rng)[0]) - 1).std() for n in (0.05, 0.3)]
    assert spread[0] < spread[1]
    x, y, _, _ = GENERATORS["sine"](100, 0.0, rng)
    np.testing.assert_allclose(y, np.sin(x[:, 0]), atol=1e-6)
    x, y, _, _ = GENERATORS["linear"](100, 0.0, rng)
    np.testing.assert_allclose(y, x @ np.array(LINEAR_WEIGHTS) + LINEAR_BIAS, atol=1e-5)


def test_linear_noise_std_matches():
    x, y, _, _ = GENERATORS["linear"](4000, 0.5, np.random.default_rng(0))
    residual = y - (x @ np.array(LINEAR_WEIGHTS) + LINEAR_BIAS)
    assert abs(residual.std() - 0.5) < 0.05


def test_negative_noise_and_samples_rejected():
    with pytest.raises(DataError):
        load_splits(cfg(noise=-0.1), 0)
    with pytest.raises(DataError):
        load_splits(cfg(samples=0), 0)


def test_pass_fail_features_are_plausible():
    s = load_splits(cfg("pass_fail", samples=500), 0)
    x, _ = all_rows(s)
    assert s.feature_names == ["lectures", "project_hours"]
    assert s.label_names == ["fail", "pass"]
    assert np.array_equal(x[:, 0], np.round(x[:, 0])) and x[:, 0].min() >= 0
    assert x[:, 0].max() <= 30 and 0 <= x[:, 1].min() and x[:, 1].max() <= 40


# --- seeding -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["xor", "pass_fail", "sine", "iris"])
def test_same_seed_same_arrays_different_seed_different(name):
    a, b, c = (load_splits(cfg(name), seed) for seed in (7, 7, 8))
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_test, c.x_test)


def test_global_rng_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    for name in SYNTHETIC_NAMES:
        load_splits(cfg(name, samples=40), 0)
    assert np.array_equal(np.random.get_state()[1], before)


# --- splits ------------------------------------------------------------------------------


@pytest.mark.parametrize("name,val,test", [("gaussian", 0.2, 0.2), ("sine", 0.1, 0.3),
                                           ("breast_cancer", 0.15, 0.25)])
def test_splits_disjoint_and_sized(name, val, test):
    s = load_splits(cfg(name, samples=300, validation_split=val, test_split=test), 1)
    x, _ = all_rows(s)
    n = len(x)
    rows = {r.tobytes() for r in x}
    assert len(rows) == n  # every row unique, so equal rows would mean a shared row
    assert abs(len(s.x_test) - test * n) <= 1 and abs(len(s.x_val) - val * n) <= 1
    parts = [{r.tobytes() for r in a} for a in (s.x_train, s.x_val, s.x_test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


def test_split_indices_partition_all_rows():
    y = np.arange(100) % 3
    tr, va, te = _split_indices(y, 20, 30, stratify=True, seed=0)
    assert (len(tr), len(va), len(te)) == (50, 20, 30)
    assert np.array_equal(np.sort(np.concatenate([tr, va, te])), np.arange(100))


@pytest.mark.parametrize("name", ["iris", "pass_fail", "digits"])
def test_stratified_class_proportions(name):
    s = load_splits(cfg(name, samples=303, validation_split=0.2, test_split=0.3), 2)
    _, y = all_rows(s)
    total = np.bincount(y, minlength=s.n_classes)
    for ys, frac in ((s.y_val, 0.2), (s.y_test, 0.3), (s.y_train, 0.5)):
        counts = np.bincount(ys, minlength=s.n_classes)
        assert np.all(np.abs(counts - frac * total) <= 2), (counts, frac * total)


def test_zero_fraction_gives_empty_split():
    s = load_splits(cfg("moons", samples=50, validation_split=0.0, test_split=0.0), 0)
    assert s.x_val.shape == (0, 2) and s.x_test.shape == (0, 2) and s.y_val.shape == (0,)
    assert s.x_val.dtype == np.float32 and s.y_test.dtype == np.int64
    assert len(s.x_train) == 50


def test_split_lookup_by_name():
    s = load_splits(cfg("xor", samples=40), 0)
    assert s.split("validation")[0] is s.x_val and s.split("test")[1] is s.y_test
    with pytest.raises(DataError):
        s.split("valid")


# --- tasks -------------------------------------------------------------------------------


def test_task_overrides():
    s = load_splits(cfg("xor", task="multiclass"), 0)
    assert s.task == "multiclass" and s.n_classes == 2
    s = load_splits(cfg("iris", task="regression"), 0)
    assert s.task == "regression" and s.n_classes is None and s.label_names is None
    assert s.y_train.dtype == np.float32 and set(np.unique(s.y_train)) == {0.0, 1.0, 2.0}
    assert load_splits(cfg("breast_cancer", task="binary"), 0).task == "binary"


@pytest.mark.parametrize("name,task,word", [("iris", "binary", "multiclass"),
                                            ("digits", "binary", "multiclass"),
                                            ("sine", "binary", "regression"),
                                            ("diabetes", "multiclass", "regression")])
def test_impossible_task_is_an_error(name, task, word):
    with pytest.raises(DataError) as e:
        load_splits(cfg(name, task=task), 0)
    assert e.value.fix and word in e.value.fix


# --- errors ------------------------------------------------------------------------------


def test_tiny_classification_data_names_rows_needed():
    # 5 rows at 0.2/0.2 leave 1 test row, fewer than the 2 classes; 8 rows give 2 each.
    with pytest.raises(DataError) as e:
        load_splits(cfg("xor", samples=5), 0)
    assert "8 rows" in e.value.message and "data.samples >= 8" in e.value.fix
    load_splits(cfg("xor", samples=8), 0)


def test_empty_training_set_is_an_error():
    with pytest.raises(DataError) as e:
        load_splits(cfg("sine", samples=10, validation_split=0.5, test_split=0.49), 0)
    assert "0 train" in e.value.message and "data.validation_split" in e.value.fix


def test_bundled_too_small_split_points_at_fractions():
    with pytest.raises(DataError) as e:
        load_splits(cfg("iris", test_split=0.01), 0)
    assert "data.test_split" in e.value.fix and "data.samples" not in e.value.fix


def test_fractions_must_leave_training_rows():
    with pytest.raises(DataError):
        load_splits(cfg(validation_split=0.5, test_split=0.5), 0)


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(DataError) as e:
        load_splits(cfg("xro"), 0)
    assert "did you mean 'xor'" in e.value.message and "pass_fail" in e.value.fix


def test_a_path_is_read_as_a_data_file(tmp_path):
    # Reading files is tested in test_files.py; here only the routing.
    with pytest.raises(DataError, match="students.csv: no such file"):
        load_splits(cfg(None, path=str(tmp_path / "students.csv"), target="y", features=None), 0)


# --- the lessons the sets are for ---------------------------------------------------------


@pytest.mark.parametrize("name,low,high", [("xor", 0.0, 0.8), ("circles", 0.0, 0.8),
                                           ("pass_fail", 0.85, 1.0), ("gaussian", 0.95, 1.0)])
def test_linear_model_accuracy(name, low, high):
    from sklearn.linear_model import LogisticRegression

    s = load_splits(cfg(name, validation_split=0.0, test_split=0.25), 0)
    acc = LogisticRegression().fit(s.x_train, s.y_train).score(s.x_test, s.y_test)
    assert low <= acc <= high, acc


def test_saved_rows_are_reused_and_give_the_same_splits(tmp_path):
    from dlrecap.data.split import load_rows, save_rows

    data = SimpleNamespace(dataset="xor", path=None, samples=60, noise=0.1, validation_split=0.2,
                           test_split=0.2, task="auto")
    first = load_splits(data, seed=3)
    save_rows(first, tmp_path / "splits.npz")
    rows = load_rows(tmp_path / "splits.npz")
    again = load_splits(data, seed=3, rows=rows)
    for a, b in zip(first.rows, again.rows, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.x_test, again.x_test)
    # Rows that do not number this data exactly once are ignored: the data is split again.
    wrong = (rows[0][:-1], rows[1], rows[2])
    again = load_splits(data, seed=3, rows=wrong)
    assert len(again.y_train) == len(first.y_train)  # split again: no row lost
    np.testing.assert_array_equal(again.x_test, first.x_test)
    twice = (rows[0], rows[1], np.concatenate([rows[2][:-1], rows[0][:1]]))  # a row in two splits
    np.testing.assert_array_equal(load_splits(data, seed=3, rows=twice).x_test, first.x_test)
    assert load_rows(tmp_path / "missing.npz") is None


def test_reused_rows_need_no_scikit_learn(tmp_path):
    code = (
        "import sys; from types import SimpleNamespace\n"
        "from dlrecap.data import load_splits\n"
        "from dlrecap.data.split import load_rows, save_rows\n"
        "d = SimpleNamespace(dataset='xor', path=None, samples=60, noise=0.1, validation_split=0.2,"
        " test_split=0.2, task='auto')\n"
        f"save_rows(load_splits(d, 0), {str(tmp_path / 's.npz')!r})\n"
        "for m in [m for m in sys.modules if m.startswith('sklearn')]: del sys.modules[m]\n"
        "sys.modules['sklearn'] = None\n"
        f"load_splits(d, 0, rows=load_rows({str(tmp_path / 's.npz')!r}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
