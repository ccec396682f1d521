"""Tests for scratchnn.training.metrics against scikit-learn and hand-computed values."""

import numpy as np
import pytest
from sklearn import metrics as skm

from scratchnn.training.metrics import (
    accuracy,
    classification_metrics,
    confusion_matrix,
    precision_recall_f1,
    regression_metrics,
)


def _random_labels(seed, n=200, num_classes=5, never_predicted=3):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, num_classes, size=n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, num_classes, size=n))
    # Remap one class so it is never predicted: its precision must be 0, without warnings.
    y_pred[y_pred == never_predicted] = (never_predicted + 1) % num_classes
    return y_true, y_pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_matches_sklearn_with_unpredicted_class(seed):
    c = 5
    y_true, y_pred = _random_labels(seed, num_classes=c)
    assert 3 not in y_pred and 3 in y_true
    labels = list(range(c))

    cm = confusion_matrix(y_true, y_pred, c)
    assert cm.dtype == np.int64 and cm.shape == (c, c)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=labels))

    prf = precision_recall_f1(y_true, y_pred, c)
    kw = {"labels": labels, "average": "macro", "zero_division": 0}
    assert prf["precision"] == pytest.approx(skm.precision_score(y_true, y_pred, **kw))
    assert prf["recall"] == pytest.approx(skm.recall_score(y_true, y_pred, **kw))
    assert prf["f1"] == pytest.approx(skm.f1_score(y_true, y_pred, **kw))
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


def test_class_absent_from_true_and_pred_counts_in_macro_average():
    # Class 2 never appears: like sklearn labels=range(3) it contributes 0 to each average.
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 1, 1])
    prf = precision_recall_f1(y_true, y_pred, 3)
    # per class precision: [1, 2/3, 0]; recall: [1/2, 1, 0]; f1: [2/3, 4/5, 0]
    assert prf["precision"] == pytest.approx((1 + 2 / 3) / 3)
    assert prf["recall"] == pytest.approx(1.5 / 3)
    assert prf["f1"] == pytest.approx((2 / 3 + 4 / 5) / 3)
    kw = {"labels": [0, 1, 2], "average": "macro", "zero_division": 0}
    assert prf["f1"] == pytest.approx(skm.f1_score(y_true, y_pred, **kw))


def test_classification_metrics_bundle_is_json_ready():
    y_true = np.array([0, 1, 2, 2, 1])
    y_pred = np.array([0, 2, 2, 2, 1])
    out = classification_metrics(y_true, y_pred, 3)
    assert out["accuracy"] == pytest.approx(0.8)
    assert out["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [0, 0, 2]]
    assert all(type(v) is int for row in out["confusion_matrix"] for v in row)
    for key in ("accuracy", "precision", "recall", "f1"):
        assert type(out[key]) is float
    assert out["precision"] == pytest.approx(skm.precision_score(y_true, y_pred, average="macro"))


def test_integral_float_and_bool_labels_are_accepted():
    cm = confusion_matrix(np.array([0.0, 1.0, 1.0]), np.array([True, True, False]), 2)
    np.testing.assert_array_equal(cm, [[0, 1], [1, 1]])


def test_shape_and_label_validation_messages():
    with pytest.raises(ValueError, match=r"y_true \(3,\) and y_pred \(3, 1\)"):
        accuracy(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"label 5 outside the valid range \[0, 2\]"):
        confusion_matrix([0, 1, 5], [0, 1, 2], 3)
    with pytest.raises(ValueError, match=r"y_true has label -1"):
        confusion_matrix([-1, 1], [0, 1], 3)
    with pytest.raises(ValueError, match="integer class indices, got 0.3"):
        confusion_matrix([0, 1], [0.3, 1.0], 2)
    with pytest.raises(ValueError, match="1-D array of class indices.*argmax"):
        confusion_matrix(np.zeros((2, 3)), np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        confusion_matrix([0], [0], 0)
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])


@pytest.mark.parametrize("shape", [(100,), (80, 3)])
def test_regression_matches_sklearn(shape):
    rng = np.random.default_rng(7)
    y_true = rng.standard_normal(shape).astype(np.float32)
    y_pred = (y_true + 0.3 * rng.standard_normal(shape)).astype(np.float32)
    out = regression_metrics(y_true, y_pred)
    assert set(out) == {"mse", "mae", "r2"}
    assert all(type(v) is float for v in out.values())
    assert out["mse"] == pytest.approx(skm.mean_squared_error(y_true, y_pred), rel=1e-6)
    assert out["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred), rel=1e-6)
    assert out["r2"] == pytest.approx(skm.r2_score(y_true, y_pred), rel=1e-6)


def test_regression_hand_values_and_constant_target_convention():
    out = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    assert out["mse"] == pytest.approx(4 / 3)
    assert out["mae"] == pytest.approx(2 / 3)
    assert out["r2"] == pytest.approx(1 - 4 / 2)  # ss_res = 4, ss_tot = 2
    # Constant target: 1.0 if exact, else 0.0 (sklearn force_finite=True), never NaN.
    assert regression_metrics([2.0, 2.0], [2.0, 2.0])["r2"] == 1.0
    assert regression_metrics([2.0, 2.0], [2.0, 3.0])["r2"] == 0.0
    assert regression_metrics([2.0, 2.0], [2.0, 3.0])["r2"] == skm.r2_score([2, 2], [2, 3])
    with pytest.raises(ValueError, match=r"y_true \(4,\) and y_pred \(3,\)"):
        regression_metrics(np.zeros(4), np.zeros(3))


def test_float32_inputs_are_summed_in_float64():
    # 1e6 float32 values of 0.1: a float32 accumulator drifts visibly; float64 does not.
    n = 1_000_000
    y_true = np.zeros(n, dtype=np.float32)
    y_pred = np.full(n, 0.1, dtype=np.float32)
    assert regression_metrics(y_true, y_pred)["mae"] == pytest.approx(float(np.float32(0.1)),
                                                                      rel=1e-12)
