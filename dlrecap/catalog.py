"""The built-in data sets as plain data: names, tasks, shapes and default noise.

Free of NumPy and of `dlrecap.data`, so that config validation (which checks dataset-specific
keys) and `dlrecap datasets` load nothing heavy; `dlrecap.data` loads the sets themselves.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """One built-in data set.

    Args:
        name: the value of `data.dataset`.
        task: `"binary"`, `"multiclass"` or `"regression"`.
        source: `"synthetic"` or `"scikit-learn (bundled)"`.
        features: number of feature columns.
        classes: number of classes, `None` for regression.
        rows: number of rows, `None` for synthetic sets (they have `data.samples` rows).
        description: one line: what it is and what lesson it serves.
        default_noise: the noise used when `data.noise` is not set (synthetic sets only).
        playground: whether `data.recipe: playground` draws it as TensorFlow Playground does.
    """

    name: str
    task: str
    source: str
    features: int
    classes: int | None
    rows: int | None
    description: str
    default_noise: float | None
    playground: bool = False


_SYN = "synthetic"
_SK = "scikit-learn (bundled)"

_ALL = [
    DatasetInfo("xor", "binary", _SYN, 2, 2, None,
                "four noisy corners, label 1 where the signs differ: no line separates it, "
                "one hidden layer does", 0.1, playground=True),
    DatasetInfo("circles", "binary", _SYN, 2, 2, None,
                "a ring around a disc: needs a curved boundary", 0.1, playground=True),
    DatasetInfo("moons", "binary", _SYN, 2, 2, None,
                "two interleaved half-moons: a line gets most, a small network all", 0.1),
    DatasetInfo("spiral", "binary", _SYN, 2, 2, None,
                "two interleaved spiral arms: needs depth and patience", 0.1, playground=True),
    DatasetInfo("gaussian", "binary", _SYN, 2, 2, None,
                "two overlapping Gaussian blobs: a single perceptron is enough", 0.5, playground=True),
    DatasetInfo("pass_fail", "binary", _SYN, 2, 2, None,
                "lectures attended and project hours -> fail/pass: the lecture's perceptron "
                "example", 0.1),
    DatasetInfo("linear", "regression", _SYN, 3, None, None,
                "y = x.w + b + noise: linear regression with a known answer", 0.1),
    DatasetInfo("sine", "regression", _SYN, 1, None, None,
                "y = sin(x) + noise on [-2pi, 2pi]: a curve no linear model fits", 0.1),
    DatasetInfo("plane", "regression", _SYN, 2, None, None,
                "TensorFlow Playground's plane: y = (x1 + x2) / 10 on [-6, 6]^2, noise moves "
                "the point y is read at", 0.0, playground=True),
    DatasetInfo("bumps", "regression", _SYN, 2, None, None,
                "TensorFlow Playground's Gaussian bumps: six cones of height +-1 on [-6, 6]^2",
                0.0, playground=True),
    DatasetInfo("iris", "multiclass", _SK, 4, 3, 150,
                "150 iris flowers, 4 measurements, 3 species: the classic first classifier",
                None),
    DatasetInfo("wine", "multiclass", _SK, 13, 3, 178,
                "178 wines, 13 chemical measurements, 3 cultivars: standardization matters",
                None),
    DatasetInfo("breast_cancer", "binary", _SK, 30, 2, 569,
                "569 tumours, 30 cell-nucleus features, malignant/benign: real binary data",
                None),
    DatasetInfo("digits", "multiclass", _SK, 64, 10, 1797,
                "1797 8x8 handwritten digits, 10 classes: softmax over many classes", None),
    DatasetInfo("diabetes", "regression", _SK, 10, None, 442,
                "442 patients, 10 baseline variables -> disease progression: noisy real "
                "regression", None),
]

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in _ALL}
SYNTHETIC: frozenset[str] = frozenset(n for n, i in DATASETS.items() if i.source == _SYN)

