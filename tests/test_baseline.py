"""The trivial baseline: majority class or training mean, scored like the model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dlrecap.baseline import baseline_metrics, no_better, run_verdict


def test_majority_class_accuracy_and_prior_cross_entropy():
    y_train = np.array([0, 0, 0, 1])  # 75% zeros
    y = np.array([0, 1, 1, 1])
    found = baseline_metrics("binary", "binary_crossentropy", ("accuracy",), y_train, y)
    assert found["accuracy"] == pytest.approx(0.25)  # always 0: right once in four
    expected = -(math.log(0.75) + 3 * math.log(0.25)) / 4
    assert found["loss"] == pytest.approx(expected)


def test_multiclass_majority():
    found = baseline_metrics("multiclass", "categorical_crossentropy", ("accuracy",),
                             np.array([2, 2, 1, 0, 2]), np.array([2, 1]))
    assert found["accuracy"] == pytest.approx(0.5)


def test_binary_precision_recall_auc_of_a_constant():
    found = baseline_metrics("binary", "binary_crossentropy", ("precision", "recall", "auc"),
                             np.array([1, 1, 0]), np.array([1, 0, 0, 0]))
    assert found == {"loss": pytest.approx(found["loss"]), "precision": 0.25, "recall": 1.0, "auc": 0.5}


def test_regression_mean_predictor_in_original_units():
    y_train = np.array([30_000.0, 32_000.0, 28_000.0])  # mean 30,000
    y = np.array([31_000.0, 27_000.0])
    found = baseline_metrics("regression", "mse", ("mae", "rmse"), y_train, y)
    assert found["mae"] == pytest.approx(2_000.0)
    assert found["loss"] == pytest.approx((1_000**2 + 3_000**2) / 2)
    assert found["rmse"] == pytest.approx(math.sqrt(found["loss"]))


def test_the_loss_follows_the_training_loss():
    args = (("mae",), np.array([0.0, 2.0]), np.array([0.0, 3.0]))
    assert baseline_metrics("regression", "mae", *args)["loss"] == pytest.approx(1.5)
    assert baseline_metrics("regression", "huber", *args)["loss"] == pytest.approx((0.5 + 1.5) / 2)


@pytest.mark.parametrize("model, baseline, said", [
    ({"accuracy": 0.51}, {"accuracy": 0.50}, "no better than always predicting the majority class"),
    ({"accuracy": 0.52}, {"accuracy": 0.50}, None),  # 0.02 better: clearly
    ({"mae": 96.0}, {"mae": 100.0}, "no better than always predicting the mean"),
    ({"mae": 94.0}, {"mae": 100.0}, None),
    ({"mse": 0.0}, {"mse": 0.0}, None),  # a constant target: nothing to beat
])
def test_no_better_says_so_in_words(model, baseline, said):
    found = no_better(model, baseline)
    assert (found is None) if said is None else (said in found)


def test_a_run_is_judged_on_its_test_split():
    run = {"validation": {"accuracy": 0.9}, "test": {"accuracy": 0.5},
           "baseline": {"validation": {"accuracy": 0.5}, "test": {"accuracy": 0.5}}}
    assert run_verdict(run) == ("test accuracy 0.5000 is no better than always predicting the "
                                "majority class (0.5000)")
    run["test"]["accuracy"] = 0.9
    assert run_verdict(run) is None


def test_a_run_without_test_rows_is_judged_on_validation():
    run = {"validation": {"mae": 99.0}, "test": None,
           "baseline": {"validation": {"mae": 100.0}, "test": None}}
    assert run_verdict(run).startswith("validation mae 99 is no better than always predicting the mean")


def test_a_run_without_a_baseline_is_not_judged():
    assert run_verdict({"test": {"accuracy": 0.5}}) is None


def test_huber_is_quadratic_for_small_errors_and_linear_for_large_ones():
    found = baseline_metrics("regression", "huber", (), np.array([0.0, 2.0]), np.array([1.5, 3.0]))
    assert found["loss"] == pytest.approx((0.5 * 0.5**2 + (2.0 - 0.5)) / 2)


def test_a_majority_of_negatives_has_no_precision_or_recall():
    found = baseline_metrics("binary", "binary_crossentropy", ("precision", "recall"),
                             np.array([0, 0, 1]), np.array([1, 1, 0]))
    assert (found["precision"], found["recall"]) == (0.0, 0.0)


@pytest.mark.parametrize("model, baseline, said", [
    ({"mse": 96.0}, {"mse": 100.0}, "mse 96 is no better"),
    ({"rmse": 9.0}, {"rmse": 10.0}, None),
    # only a metric both sides have is compared
    ({"accuracy": 0.9, "mae": 1.0, "mse": 96.0}, {"mse": 100.0}, "mse 96 is no better"),
])
def test_no_better_compares_the_errors_both_sides_have(model, baseline, said):
    found = no_better(model, baseline)
    assert (found is None) if said is None else found.startswith(said)


def test_cross_entropy_clips_the_shares_as_keras_clips_probabilities():
    # class 2 never occurs in training: its share 0 is clipped to 1e-7, not log(0)
    unseen = baseline_metrics("multiclass", "categorical_crossentropy", (),
                              np.array([0, 0, 1]), np.array([2]))
    assert unseen["loss"] == pytest.approx(-math.log(1e-7))
    # one class only: its share 1 is clipped to 1 - 1e-7
    single = baseline_metrics("binary", "binary_crossentropy", (), np.array([0, 0]), np.array([0]))
    assert single["loss"] == pytest.approx(-math.log(1 - 1e-7))
