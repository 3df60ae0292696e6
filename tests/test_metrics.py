"""Metrics: every registered name computes the known value, in the right direction."""

from __future__ import annotations

import numpy as np
import pytest

from kagtools.core.metrics import DEFAULT_METRICS, get_metric, list_metrics, mapk
from kagtools.errors import KagtoolsError

ISSUE_METRICS = ["accuracy", "balanced_accuracy", "f1", "f1_macro", "roc_auc", "log_loss", "rmse", "rmsle",
                 "mae", "r2", "pearson", "spearman", "qwk", "map@3"]


def test_issue_metrics_are_registered():
    # Direction, needs and values of every registered metric: tests/test_contracts.py.
    assert set(ISSUE_METRICS) <= set(list_metrics())


def test_label_metrics_threshold_and_argmax():
    y = np.array([0, 1, 1, 0])
    assert get_metric("accuracy")(y, np.array([0.2, 0.7, 0.4, 0.1])) == 0.75
    assert get_metric("accuracy")(y, np.array([0.2, 0.7, 0.4, 0.1]), threshold=0.3) == 1.0
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]])
    assert get_metric("accuracy")(np.array([0, 1, 2, 2]), proba) == 0.75
    assert get_metric("f1_macro")(np.array([0, 1, 2, 2]), proba) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert get_metric("balanced_accuracy")(np.array([0, 1, 2, 2]), proba) == pytest.approx((1 + 1 + 0.5) / 3)


def test_roc_auc_binary_multiclass_and_missing_class():
    assert get_metric("roc_auc")(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    y = np.array([0, 1, 2, 0, 1, 2])
    perfect = np.eye(3)[y] * 0.7 + 0.1
    assert get_metric("roc_auc")(y, perfect) == 1.0
    # A fold without class 2 still scores (one-vs-rest over the classes present).
    y2 = np.array([0, 1, 0, 1])
    assert get_metric("roc_auc")(y2, np.eye(3)[y2] * 0.7 + 0.1) == 1.0


def test_probability_metrics_match_sklearn_in_every_form():
    from sklearn import metrics as skm

    y = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0, 2])
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.3, 0.4, 0.3], [0.5, 0.4, 0.1],
                  [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.7, 0.2], [0.3, 0.3, 0.4], [0.25, 0.35, 0.4]])
    assert get_metric("roc_auc")(y, p) == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr"))
    yb, pb = np.array([0, 1, 1, 0, 1, 0]), np.array([0.2, 0.7, 0.4, 0.1, 0.9, 0.6])
    two = np.column_stack([1 - pb, pb])  # a binary task's two probability columns
    assert get_metric("roc_auc")(yb, two) == pytest.approx(skm.roc_auc_score(yb, pb))
    assert get_metric("log_loss")(yb, two) == pytest.approx(skm.log_loss(yb, pb))
    assert get_metric("f1")(yb, two) == pytest.approx(skm.f1_score(yb, pb >= 0.5))


def test_log_loss_binary_multiclass_multilabel():
    ll = get_metric("log_loss")
    assert ll(np.array([1, 0]), np.array([0.8, 0.3])) == pytest.approx(-(np.log(0.8) + np.log(0.7)) / 2)
    assert ll(np.array([2]), np.array([[0.2, 0.3, 0.5]])) == pytest.approx(-np.log(0.5))
    y = np.array([[1, 0], [0, 1]])
    p = np.array([[0.8, 0.4], [0.3, 0.9]])
    expected = np.mean([-(np.log(0.8) + np.log(0.7)) / 2, -(np.log(0.6) + np.log(0.9)) / 2])
    assert ll(y, p) == pytest.approx(expected)


def test_map_at_k_any_k():
    scores = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    y = np.array([0, 1, 2, 1])
    # ranks 1, 2, 3 and (argsort stable on ties: class 2, then 0, then 1) rank 3
    assert mapk(y, scores, 3) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 3) / 4)
    assert get_metric("map@1")(y, scores) == pytest.approx(0.25)
    assert get_metric("map@2")(y, scores) == pytest.approx((1 + 0.5) / 4)
    # The registered map@3, and map@4 built on demand (with K = 3 classes, the same), score the known value.
    assert get_metric("map@3")(y, scores) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 3) / 4)
    assert get_metric("map@4")(y, scores) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 3) / 4)  # K = 3 classes
    with pytest.raises(KagtoolsError):
        get_metric("map@0")


def test_regression_metrics():
    y, p = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 5.0])
    assert get_metric("rmse")(y, p) == pytest.approx(np.sqrt((0.25 + 0 + 1 + 1) / 4))
    assert get_metric("mae")(y, p) == pytest.approx(0.625)
    assert get_metric("rmsle")(y, p) == pytest.approx(np.sqrt(np.mean((np.log1p(y) - np.log1p(p)) ** 2)))
    assert get_metric("r2")(y, y) == 1.0
    assert get_metric("pearson")(y, 2 * y + 1) == pytest.approx(1.0)
    assert get_metric("spearman")(y, y ** 3) == pytest.approx(1.0)
    Y = np.column_stack([y, 2 * y])
    P = np.column_stack([y + 1, 2 * y])
    assert get_metric("mcrmse")(Y, P) == pytest.approx(0.5)


def test_quadratic_weighted_kappa():
    qwk = get_metric("qwk")
    y = np.array([0, 1, 2, 3])
    assert qwk(y, np.eye(4)[y]) == 1.0
    # Off by one everywhere costs less than reversed order.
    off = qwk(y, np.eye(4)[[1, 2, 3, 3]])
    assert 0 < off < 1 and qwk(y, np.eye(4)[y[::-1]]) < 0


def test_nan_predictions_are_refused():
    with pytest.raises(KagtoolsError, match="NaN"):
        get_metric("rmse")(np.array([1.0]), np.array([np.nan]))


def test_default_metrics_exist():
    for name in DEFAULT_METRICS.values():
        assert get_metric(name).name == name
