"""Metrics registered by name, with their direction and what they need (labels or scores)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from kagtools.core.registry import Registry, did_you_mean
from kagtools.errors import KagtoolsError

__all__ = ["Metric", "METRICS", "NEEDS", "register_metric", "get_metric", "list_metrics", "to_labels", "mapk",
           "DEFAULT_METRICS"]

NEEDS = ("label", "proba", "value")  # what a metric scores (see Metric)


@dataclass(frozen=True)
class Metric:
    """A scoring function ``fn(y_true, y_pred)``.

    ``needs`` is ``"label"`` (class labels, from probabilities by threshold/argmax),
    ``"proba"`` (class probabilities) or ``"value"`` (regression values).
    """

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool
    needs: str

    def __call__(self, y_true, y_pred, *, threshold: float = 0.5) -> float:
        y_true = np.asarray(y_true)
        y_pred = np.asarray(y_pred, dtype=float)
        if np.isnan(y_pred).any():
            raise KagtoolsError(f"metric {self.name}: predictions contain NaN")
        if self.needs == "label":
            y_pred = to_labels(y_pred, threshold=threshold)
        return float(self.fn(y_true, y_pred))

    def better(self, a: float, b: float) -> bool:
        """True when score ``a`` is strictly better than ``b``."""
        return a > b if self.greater_is_better else a < b

    def sign(self) -> float:
        """+1 when greater is better, else -1 (multiply to get a 'higher is better' score)."""
        return 1.0 if self.greater_is_better else -1.0


def _check_metric(name: str, metric: Metric) -> None:
    if metric.needs not in NEEDS:
        raise KagtoolsError(f"metric '{name}': needs '{metric.needs}' is not one of {', '.join(NEEDS)}")


METRICS: Registry[Metric] = Registry("metric", check=_check_metric)


def register_metric(name: str, *, greater_is_better: bool, needs: str):
    """Decorator: register ``fn(y_true, y_pred) -> float`` under ``name``."""

    def deco(fn):
        METRICS.add(name, Metric(name, fn, greater_is_better, needs))
        return fn

    return deco


_MAPK = re.compile(r"map@(\d+)")


def get_metric(name: str) -> Metric:
    """The metric registered as ``name``; ``map@k`` works for any ``k``."""
    if name in METRICS:
        return METRICS.get(name)
    match = _MAPK.fullmatch(name)
    if match and int(match.group(1)) > 0:
        k = int(match.group(1))
        return Metric(name, lambda y, p: mapk(y, p, k), True, "proba")
    raise KagtoolsError(f"unknown metric '{name}'{did_you_mean(name, list_metrics())} "
                        f"(known: {', '.join(list_metrics())}, map@k for any k)")


def list_metrics() -> list[str]:
    return METRICS.names()


def to_labels(y_pred: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """Class indices from scores: threshold a 1-D positive-class probability, argmax a 2-D one."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        return y_pred.argmax(axis=1)
    return (y_pred.reshape(-1) >= threshold).astype(int)


register_metric("accuracy", greater_is_better=True, needs="label")(skm.accuracy_score)
register_metric("balanced_accuracy", greater_is_better=True, needs="label")(skm.balanced_accuracy_score)
register_metric("f1", greater_is_better=True, needs="label")(skm.f1_score)
register_metric("f1_binary", greater_is_better=True, needs="label")(skm.f1_score)
register_metric("f1_macro", greater_is_better=True, needs="label")(lambda y, p: skm.f1_score(y, p, average="macro"))
register_metric("qwk", greater_is_better=True, needs="label")(
    lambda y, p: skm.cohen_kappa_score(y, p, weights="quadratic"))


@register_metric("roc_auc", greater_is_better=True, needs="proba")
def _roc_auc(y, p):
    if y.ndim == 2:  # multi-label: the mean of the per-column AUCs
        return skm.roc_auc_score(y, p, average="macro")
    if p.ndim == 2 and p.shape[1] > 2:
        # Multiclass: one-vs-rest, macro over the classes present (a fold may lack one).
        present = [k for k in range(p.shape[1]) if 0 < np.sum(y == k) < len(y)]
        return float(np.mean([skm.roc_auc_score(y == k, p[:, k]) for k in present]))
    return skm.roc_auc_score(y, p[:, 1] if p.ndim == 2 and p.shape[1] == 2 else p)


@register_metric("log_loss", greater_is_better=False, needs="proba")
def _log_loss(y, p):
    if y.ndim == 2:  # multi-label: the mean of the per-column binary log losses
        return float(np.mean([_log_loss(y[:, j], p[:, j]) for j in range(y.shape[1])]))
    if p.ndim == 1:
        p = np.column_stack([1 - p, p])
    return skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=np.arange(p.shape[1]))


def mapk(y_true, scores, k: int) -> float:
    """Mean average precision at ``k`` with one relevant class per row (Kaggle's MAP@k).

    ``scores`` are ``(n, K)`` class scores; a row earns ``1/rank`` when its true class is
    among the top ``k`` (ties broken by class order, as a stable sort does).
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise KagtoolsError(f"metric map@{k}: needs (n, K) class scores, got shape {scores.shape}")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = top == np.asarray(y_true).reshape(-1, 1)
    return float((hits / np.arange(1, top.shape[1] + 1)).sum(axis=1).mean())


register_metric("map@3", greater_is_better=True, needs="proba")(lambda y, p: mapk(y, p, 3))
register_metric("rmse", greater_is_better=False, needs="value")(
    lambda y, p: float(np.sqrt(skm.mean_squared_error(y, p))))
register_metric("mcrmse", greater_is_better=False, needs="value")(  # mean column-wise RMSE
    lambda y, p: float(np.mean(np.sqrt(skm.mean_squared_error(y, p, multioutput="raw_values")))))
register_metric("rmsle", greater_is_better=False, needs="value")(
    lambda y, p: float(np.sqrt(skm.mean_squared_log_error(y, np.clip(p, 0, None)))))
register_metric("mae", greater_is_better=False, needs="value")(skm.mean_absolute_error)
register_metric("r2", greater_is_better=True, needs="value")(skm.r2_score)
register_metric("pearson", greater_is_better=True, needs="value")(
    lambda y, p: float(stats.pearsonr(np.ravel(y), np.ravel(p))[0]))
register_metric("spearman", greater_is_better=True, needs="value")(
    lambda y, p: float(stats.spearmanr(np.ravel(y), np.ravel(p))[0]))


#: The metric ``kagtools init`` proposes when none is given, by (task, submission kind):
#: labels are scored by accuracy, probabilities by AUC / log loss, values by RMSE.
DEFAULT_METRICS = {
    ("binary", "labels"): "accuracy",
    ("binary", "probabilities"): "roc_auc",
    ("multiclass", "labels"): "accuracy",
    ("multiclass", "probabilities"): "log_loss",
    ("regression", "values"): "rmse",
    ("multitarget", "values"): "mcrmse",
    ("multilabel", "probabilities"): "roc_auc",
    ("multilabel", "labels"): "f1_macro",
}
