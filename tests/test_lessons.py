"""Each lesson shows its lesson: its `# Claim:` holds on the history and the metrics it trains.

Not only the final number: a linear XOR network must also plateau at chance, the overfitting
run's validation loss must turn, early stopping must stop before that turn, and so on. Every
top-level config in configs/ is a lesson and must have a claim here. Lessons that teach by
contrast (sigmoid vs tanh, SGD vs momentum, overfit vs its three fixes) are checked against
their partner, trained once per session.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
LESSONS = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
LN2 = math.log(2)  # the cross-entropy of a coin flip: a binary classifier that learned nothing


@dataclass
class Lesson:
    """One trained lesson: what a claim is judged on."""

    name: str
    run_dir: Path
    metrics: dict[str, Any]
    history: dict[str, np.ndarray]
    config: Any
    _baseline: dict[str, float] | None = field(default=None, repr=False)

    def __getitem__(self, column: str) -> np.ndarray:
        return self.history[column]

    @property
    def test(self) -> dict[str, float]:
        return self.metrics["test"]

    @property
    def baseline(self) -> dict[str, float]:
        """The trivial predictor's test metrics (majority class, or the training mean)."""
        if self._baseline is None:
            from dlrecap.baseline import baseline_metrics
            from dlrecap.data import load_splits
            from dlrecap.model import plan_head

            splits = load_splits(self.config.data, self.config.seed)
            head = plan_head(self.config, splits.task, splits.n_classes)
            self._baseline = baseline_metrics(splits.task, head.loss, head.metrics,
                                              splits.y_train, splits.y_test)
        return self._baseline

    def first_epoch(self, column: str, holds: Callable[[float], bool]) -> float:
        """The first epoch whose `column` value satisfies `holds`, or inf if none does."""
        hits = [e for e, v in zip(self["epoch"], self[column], strict=True) if holds(v)]
        return float(hits[0]) if hits else math.inf

    def gap(self) -> float:
        """Validation minus training loss at the last epoch: how far the two curves parted."""
        return float(self["val_loss"][-1] - self["loss"][-1])


_TRAINED: dict[tuple[str, int], Lesson] = {}
# All lessons of a session share one runs directory, as a learner's would, so that an
# early-stopped run finds its unstopped twin beside it.
RUNS_DIR: list[Path] = []


def trained(name: str, seed: int | None = None) -> Lesson:
    """The lesson `name` (a file in configs/) trained once per session and seed."""
    import tempfile

    from dlrecap import runs
    from dlrecap.config.load import load_config
    from dlrecap.pipeline import train

    loaded = load_config(CONFIG_DIR / name, [] if seed is None else [f"seed={seed}"])
    key = (name, loaded.config.seed)
    if key not in _TRAINED:
        if not RUNS_DIR:
            RUNS_DIR.append(Path(tempfile.mkdtemp(prefix="lessons-")) / "runs")
        result = train(loaded, RUNS_DIR[0])
        rows = runs.read_history(result.run_dir)
        history = {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in rows[0]}
        _TRAINED[key] = Lesson(name, result.run_dir, result.metrics, history, loaded.config)
    return _TRAINED[key]


# --- the claims: name -> (what was measured, value, whether it holds) ------------------------

Check = tuple[str, float, bool]


def xor(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    first = run.first_epoch("val_accuracy", lambda v: v >= 0.95)
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] >= 0.95),
            ("first epoch with validation accuracy >= 0.95", first, first <= 10)]


def xor_linear(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    majority = run.baseline["accuracy"]
    lowest = float(np.min(run["loss"]))
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] <= 0.75),
            ("test accuracy minus the majority class's", run.test["accuracy"] - majority,
             run.test["accuracy"] - majority <= 0.15),
            # A plateau at chance: the loss never gets far below a coin flip's.
            ("lowest training loss / ln 2", lowest / LN2, lowest >= 0.95 * LN2),
            ("stopped early (no progress)", run.metrics["stopped_early"],
             run.metrics["stopped_early"] is True)]


def perceptron(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] >= 0.88),
            ("test accuracy minus the majority class's", run.test["accuracy"] - run.baseline["accuracy"],
             run.test["accuracy"] - run.baseline["accuracy"] >= 0.2)]


def students(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    labels = run.metrics.get("labels")
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] >= 0.8),
            ("labels keep their names", labels == ["fail", "pass"], labels == ["fail", "pass"])]


def imbalanced(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    recall, f1 = run.test["recall_yes"], run.test["f1_yes"]
    majority_f1 = run.metrics["baseline"]["test"]["f1_yes"]  # always "no": 0
    return [("test recall of yes", recall, recall >= 0.5),
            ("test F1 of yes minus the majority class's", f1 - majority_f1, f1 - majority_f1 >= 0.2)]


def overfit(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    val, loss = run["val_loss"], run["loss"]
    best = int(np.argmin(val))
    ratio = float(val[-1] / val[best])
    return [("training accuracy", run.metrics["train"]["accuracy"],
             run.metrics["train"]["accuracy"] >= 0.9),
            ("epoch of the lowest validation loss", best + 1, best + 1 <= 40),
            ("last / lowest validation loss", ratio, ratio >= 2.0),
            ("last / best-epoch training loss", float(loss[-1] / loss[best]),
             loss[-1] < 0.9 * loss[best])]


def early_stopping(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    from dlrecap.reference_run import unstopped_twin

    unstopped = partner("overfit.yaml")  # the same config without early stopping
    patience = run.config.training.early_stopping.patience
    best, stop = run.metrics["best_epoch"], run.metrics["epochs_run"]
    best_val = float(run["val_loss"][best - 1])
    # Where the unstopped run's validation loss went after this run had stopped.
    later = float(np.mean(unstopped["val_loss"][-50:]))
    return [("stopped early", run.metrics["stopped_early"], run.metrics["stopped_early"] is True),
            ("epochs run", stop, stop == best + patience and stop <= 40),
            ("unstopped run's late validation loss / best", later / best_val, later >= 2 * best_val),
            ("test loss minus the unstopped run's", run.test["loss"] - unstopped.test["loss"],
             run.test["loss"] < unstopped.test["loss"]),
            ("the unstopped run is found beside it", unstopped_twin(run.run_dir) is not None,
             unstopped_twin(run.run_dir) == unstopped.run_dir)]


def _regularized(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    unstopped = partner("overfit.yaml")  # the same network and data, not regularized
    return [("all epochs run", run.metrics["epochs_run"], run.metrics["epochs_run"] == 200),
            ("final loss gap / overfit.yaml's", run.gap() / unstopped.gap(),
             run.gap() <= 0.5 * unstopped.gap()),
            ("test loss / overfit.yaml's", run.test["loss"] / unstopped.test["loss"],
             run.test["loss"] <= 0.6 * unstopped.test["loss"]),
            ("test accuracy", run.test["accuracy"], run.test["accuracy"] >= 0.8)]


def activation_sigmoid(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    tanh = partner("activation_tanh.yaml")
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] <= 0.8),
            ("last training loss", run["loss"][-1], run["loss"][-1] >= 0.5),
            ("tanh's last training loss", tanh["loss"][-1], tanh["loss"][-1] <= 0.2)]


def activation_tanh(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] >= 0.95)]


def activation_relu(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    tanh = partner("activation_tanh.yaml")
    first = run.first_epoch("val_accuracy", lambda v: v >= 0.95)
    first_tanh = tanh.first_epoch("val_accuracy", lambda v: v >= 0.95)
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] >= 0.95),
            ("first epoch with validation accuracy >= 0.95, relu / tanh", first / first_tanh,
             first < first_tanh)]


def sgd(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    momentum = partner("sgd_momentum.yaml")
    first = run.first_epoch("loss", lambda v: v < 0.6)
    first_momentum = momentum.first_epoch("loss", lambda v: v < 0.6)
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] <= 0.85),
            ("last training loss", run["loss"][-1], run["loss"][-1] >= 0.35),
            ("first epoch with training loss < 0.6, plain / momentum", first / first_momentum,
             first >= 2 * first_momentum)]


def sgd_momentum(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] >= 0.95),
            ("last training loss", run["loss"][-1], run["loss"][-1] <= 0.1)]


def init_small_stddev(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    lowest = float(np.min(run["loss"]))
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] <= 0.8),
            ("lowest training loss / ln 2", lowest / LN2, lowest >= 0.85 * LN2)]


def init_random_normal(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    first = run.first_epoch("loss", lambda v: v < 0.85 * LN2)
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] >= 0.95),
            ("first epoch with training loss < 0.85 ln 2", first, first <= 60)]


def deep(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    stop = run.metrics["epochs_run"]
    return [("test accuracy", run.test["accuracy"], run.test["accuracy"] >= 0.95),
            ("epochs run (early stopping)", stop, run.metrics["stopped_early"] and stop <= 100)]


def spiral(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    # Depth takes its time: the straight boundary of the first epochs cannot follow the arms.
    first = run.first_epoch("val_accuracy", lambda v: v >= 0.9)
    accuracy, majority = run.test["accuracy"], run.baseline["accuracy"]
    return [("test accuracy", accuracy, accuracy >= 0.95),
            ("test accuracy minus the majority class's", accuracy - majority,
             accuracy - majority >= 0.4),
            ("first epoch with validation accuracy >= 0.9", first, 10 <= first <= 80)]


def sine_mse(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    share = run.test["loss"] / run.baseline["loss"]
    return [("test MSE", run.test["loss"], run.test["loss"] <= 0.05),
            ("test MSE / the training mean's", share, share <= 0.1)]


def linear_regression(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
    # The noise has standard deviation 0.1: no model gets below an MSE of about 0.01.
    return [("test MSE", run.test["loss"], run.test["loss"] <= 0.02),
            ("last training MSE", run["loss"][-1], run["loss"][-1] <= 0.02)]


def _accuracy_over_baseline(least: float) -> Callable[[Lesson, Callable[[str], Lesson]], list[Check]]:
    def claim(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
        accuracy, majority = run.test["accuracy"], run.baseline["accuracy"]
        return [("test accuracy", accuracy, accuracy >= least),
                ("test accuracy minus the majority class's", accuracy - majority,
                 accuracy - majority >= 0.2)]
    return claim


def _mae_over_baseline(most: float) -> Callable[[Lesson, Callable[[str], Lesson]], list[Check]]:
    def claim(run: Lesson, partner: Callable[[str], Lesson]) -> list[Check]:
        mae, mean = run.test["mae"], run.baseline["mae"]
        return [("test mae", mae, mae <= most),
                ("test mae / the training mean's", mae / mean, mae <= 0.9 * mean)]
    return claim


CLAIMS: dict[str, Callable[[Lesson, Callable[[str], Lesson]], list[Check]]] = {
    "xor.yaml": xor, "xor_linear.yaml": xor_linear, "perceptron.yaml": perceptron,
    "students.yaml": students, "imbalanced.yaml": imbalanced, "overfit.yaml": overfit,
    "early_stopping.yaml": early_stopping,
    "dropout.yaml": _regularized, "l2.yaml": _regularized,
    "activation_sigmoid.yaml": activation_sigmoid, "activation_tanh.yaml": activation_tanh,
    "activation_relu.yaml": activation_relu, "sgd.yaml": sgd, "sgd_momentum.yaml": sgd_momentum,
    "init_small_stddev.yaml": init_small_stddev, "init_random_normal.yaml": init_random_normal,
    "deep.yaml": deep, "spiral.yaml": spiral, "sine_mse.yaml": sine_mse,
    "linear_regression.yaml": linear_regression,
    "iris.yaml": _accuracy_over_baseline(0.9), "breast_cancer.yaml": _accuracy_over_baseline(0.93),
    "digits.yaml": _accuracy_over_baseline(0.94), "diabetes.yaml": _mae_over_baseline(55),
    "apartments.yaml": _mae_over_baseline(100), "features.yaml": _accuracy_over_baseline(0.95),
}
# Partners train first, so that an early-stopped run finds its unstopped twin beside it.
ORDER = ["overfit.yaml", *[name for name in LESSONS if name != "overfit.yaml"]]


def measure(name: str, seed: int | None = None) -> list[Check]:
    """Train lesson `name` (and the partners its claim compares with) and judge its claim."""
    return CLAIMS[name](trained(name, seed), lambda other: trained(other, seed))


@pytest.fixture(scope="module", autouse=True)
def _fresh_session(tmp_path_factory):
    _TRAINED.clear()
    RUNS_DIR[:] = [tmp_path_factory.mktemp("lessons") / "runs"]
    yield
    _TRAINED.clear()
    RUNS_DIR.clear()


def test_every_lesson_states_a_claim_and_has_a_check():
    assert set(CLAIMS) == set(LESSONS), "a lesson without a check here, or a check without a lesson"
    for name in LESSONS:
        header = []
        for line in (CONFIG_DIR / name).read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            header.append(line)
        assert any(line.startswith("# Claim:") for line in header), f"{name}: no '# Claim:' line"


@pytest.mark.slow
@pytest.mark.parametrize("name", ORDER)
def test_lesson_shows_its_claim(name):
    checks = measure(name)
    failed = [f"{what}: {value}" for what, value, ok in checks if not ok]
    assert not failed, f"{name} does not show its claim: {failed}"
    assert trained(name).metrics["status"] == "completed"
