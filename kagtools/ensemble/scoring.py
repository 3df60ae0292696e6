"""Metrics over many candidate predictions at once, and decision thresholds for label metrics.

:func:`batch_score` scores every candidate blend (hill climbing) or threshold in one vectorised
pass for the common metrics, one :func:`~kagtools.core.metrics.get_metric` call per candidate
for the others; both give the same numbers (``tests/test_blend.py`` checks it).
"""

from __future__ import annotations

import numpy as np

from kagtools.core.metrics import get_metric

__all__ = ["batch_score", "best_threshold", "needs_threshold", "THRESHOLD_GRID"]

# Thresholds tried for label metrics of binary tasks; 0.5 is on the grid, ties go to it.
THRESHOLD_GRID = np.round(np.linspace(0.2, 0.8, 61), 3)
_EPS = 1e-15


def needs_threshold(metric_name: str, task: str) -> bool:
    """True when a binary task is scored on labels, so a decision threshold matters."""
    return task == "binary" and get_metric(metric_name).needs == "label"


def batch_score(metric_name: str, y: np.ndarray, C: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """Score ``c`` candidate predictions ``C`` (shape ``c x n x k``) against ``y`` (``n``).

    ``k`` is 1 for binary (positive-class probability) and regression, the number of classes
    for multiclass. Returns ``c`` scores in the metric's own direction.
    """
    C = np.asarray(C, dtype=float)
    y = np.asarray(y)
    k = C.shape[2]
    if metric_name == "accuracy":
        labels = C.argmax(axis=2) if k > 1 else (C[:, :, 0] >= threshold).astype(int)
        return (labels == y[None, :]).mean(axis=1)
    if metric_name == "f1" and k == 1:
        labels = C[:, :, 0] >= threshold
        pos = y[None, :] == 1
        tp = (labels & pos).sum(axis=1)
        wrong = (labels != pos).sum(axis=1)  # false positives + false negatives
        return np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0)
    if metric_name == "log_loss":
        if k == 1:
            p = np.clip(C[:, :, 0], _EPS, 1 - _EPS)
            return -np.mean(np.where(y[None, :] == 1, np.log(p), np.log(1 - p)), axis=1)
        p = np.clip(C, _EPS, 1 - _EPS)
        p = p / p.sum(axis=2, keepdims=True)  # as sklearn's log_loss renormalises rows
        return -np.mean(np.log(np.take_along_axis(p, y[None, :, None].astype(int), axis=2)[:, :, 0]), axis=1)
    if metric_name == "roc_auc" and k == 1:  # Mann-Whitney U from average ranks
        pos = y == 1
        n1, n0 = int(pos.sum()), int((~pos).sum())
        return (_positive_rank_sums(C[:, :, 0], pos) - n1 * (n1 + 1) / 2) / (n1 * n0)
    if k == 1 and metric_name in ("rmse", "mae", "r2"):
        err = C[:, :, 0] - y[None, :].astype(float)
        if metric_name == "rmse":
            return np.sqrt(np.mean(err**2, axis=1))
        if metric_name == "mae":
            return np.mean(np.abs(err), axis=1)
        return 1 - np.sum(err**2, axis=1) / np.sum((y - y.mean()) ** 2)
    metric = get_metric(metric_name)
    return np.array([metric(y, c[:, 0] if k == 1 else c, threshold=threshold) for c in C])


def _positive_rank_sums(S: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Per row of ``S``, the sum of the average ranks (ties shared) of the ``pos`` columns.

    ``scipy.stats.rankdata(S, axis=1)`` gives the same ranks at about twice the cost, which
    matters when hill climbing scores every candidate at every step.
    """
    c, n = S.shape
    order = np.argsort(S, axis=1)
    s = np.take_along_axis(S, order, axis=1)
    new = np.ones((c, n), dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]  # a tie group starts here (and at every row start)
    flat = new.ravel()
    group = np.cumsum(flat) - 1
    starts = np.flatnonzero(flat)
    ends = np.append(starts[1:], c * n) - 1
    mean_rank = (starts % n + ends % n) / 2 + 1
    return (mean_rank[group].reshape(c, n) * pos[order]).sum(axis=1)


def best_threshold(metric_name: str, y: np.ndarray, p: np.ndarray) -> float:
    """The threshold on :data:`THRESHOLD_GRID` that scores ``p`` best; ties go nearest 0.5."""
    p = np.asarray(p, dtype=float).reshape(-1)
    labels = (p[None, :] >= THRESHOLD_GRID[:, None]).astype(float)[:, :, None]
    scores = batch_score(metric_name, y, labels) * get_metric(metric_name).sign()
    best = np.flatnonzero(np.isclose(scores, scores.max(), rtol=0, atol=1e-12))
    return float(THRESHOLD_GRID[best[np.argmin(np.abs(THRESHOLD_GRID[best] - 0.5))]])
