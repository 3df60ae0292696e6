"""Blenders: ways to combine level-1 predictions, each a small estimator.

Every blender takes ``P``, the level-1 predictions of ``m`` runs on ``n`` rows, shaped
``m x n x k`` (``k`` = 1 for a binary positive-class probability or a regression value, the
number of classes for multiclass), and returns ``n x k`` predictions on the same scale:

    blender.fit(P, y, X=None).predict(P, X=None)

``X`` (the original features, AutoGluon-style) is used by the stackers that ask for it.
``weights_`` says how much each run contributes (sums to 1) so that tables and plots can
show it. Blenders are scikit-learn estimators (plain ``__init__`` keywords, learned state
ending in ``_``), so ``clone`` gives the fresh copy fitted in each fold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize, nnls
from scipy.special import expit, logit, softmax
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression, RidgeCV

from kagtools.core.metrics import get_metric
from kagtools.core.registry import Registry
from kagtools.ensemble.scoring import batch_score
from kagtools.errors import KagtoolsError

__all__ = [
    "Blender", "MeanBlender", "RankMeanBlender", "GeoMeanBlender", "HillClimbBlender",
    "OptimizedBlender", "LinearStacker", "LGBMStacker", "BLENDERS", "make_blender",
]

_EPS = 1e-6
# Tasks whose predictions are values (``k`` target columns for multitarget): no probabilities.
_VALUES = ("regression", "multitarget")


def _margin(P: np.ndarray, task: str) -> np.ndarray:
    """Predictions on an additive scale: logits (binary), log-probabilities (multiclass), values."""
    if task == "binary":
        return logit(np.clip(P, _EPS, 1 - _EPS))
    if task == "multiclass":
        return np.log(np.clip(P, _EPS, 1.0))
    return P


def _from_margin(F: np.ndarray, task: str) -> np.ndarray:
    """Back from :func:`_margin`'s scale: probabilities (binary, multiclass), values."""
    if task == "binary":
        return expit(F)
    return softmax(F, axis=1) if task == "multiclass" else F


class Blender(BaseEstimator):
    """Base: a blender that learns nothing but the mean (subclasses override)."""

    def __init__(self, *, task: str = "binary"):
        self.task = task

    def fit(self, P: np.ndarray, y: np.ndarray, X: pd.DataFrame | None = None) -> Blender:
        self.weights_ = np.full(P.shape[0], 1 / P.shape[0])
        return self

    def predict(self, P: np.ndarray, X: pd.DataFrame | None = None) -> np.ndarray:
        return np.tensordot(self.weights_, P, axes=1)


class MeanBlender(Blender):
    """The plain mean of probabilities or values."""


class GeoMeanBlender(Blender):
    """The geometric mean: of probabilities (renormalised, i.e. the mean logit for binary,
    the softmax of mean log-probabilities for multiclass), of positive values for regression."""

    def fit(self, P, y, X=None):
        if self.task in _VALUES and (P <= 0).any():
            raise KagtoolsError("geo_mean: regression predictions must all be positive")
        return super().fit(P, y, X)

    def predict(self, P, X=None):
        if self.task in _VALUES and (P <= 0).any():
            raise KagtoolsError("geo_mean: regression predictions must all be positive")
        z = np.tensordot(self.weights_, np.log(P) if self.task in _VALUES else _margin(P, self.task), axes=1)
        return _from_margin(z, self.task) if self.task in ("binary", "multiclass") else np.exp(z)


class RankMeanBlender(Blender):
    """The mean of ranks, mapped back onto the prediction scale.

    Each run's predictions become their quantile in that run's fitted predictions; the mean
    quantile is read off the fitted mean blend's distribution, so the output stays a
    probability (or a value) and thresholds such as 0.5 keep their meaning.
    """

    def fit(self, P, y, X=None):
        super().fit(P, y, X)
        self.sorted_ = np.sort(P, axis=1)  # m x n x k
        self.reference_ = np.sort(P.mean(axis=0), axis=0)  # n x k
        return self

    def predict(self, P, X=None):
        m, n, k = P.shape
        n_fit = self.sorted_.shape[1]
        grid = (np.arange(n_fit) + 0.5) / n_fit
        out = np.empty((n, k))
        for c in range(k):
            q = np.mean([(np.searchsorted(self.sorted_[j, :, c], P[j, :, c], side="left")
                          + np.searchsorted(self.sorted_[j, :, c], P[j, :, c], side="right")) / (2 * n_fit)
                         for j in range(m)], axis=0)
            out[:, c] = np.interp(q, grid, self.reference_[:, c])
        if self.task == "multiclass":
            out = np.clip(out, _EPS, None)
            out /= out.sum(axis=1, keepdims=True)
        return out


class HillClimbBlender(Blender):
    """Caruana's greedy ensemble selection with replacement, on the competition metric.

    Starts from the best single run; each step adds the run (again, possibly) whose addition
    scores best; keeps the best prefix of ``n_iter`` steps. Weights are selection counts.
    Ties on the metric (frequent with accuracy) go to the candidate with the better log loss
    (RMSE for regression), so the choice does not depend on the order of the runs.
    """

    def __init__(self, *, task: str = "binary", metric: str = "accuracy", n_iter: int = 25):
        self.task = task
        self.metric = metric
        self.n_iter = n_iter

    def fit(self, P, y, X=None):
        scores = self._score(y, P)
        counts = np.zeros(P.shape[0], dtype=int)
        first = self._pick(y, P, scores)
        counts[first] = 1
        total = P[first].copy()
        best_score, best_counts = scores[first], counts.copy()
        for step in range(2, self.n_iter + 1):
            cand = (total[None] + P) / step
            s = self._score(y, cand)
            j = self._pick(y, cand, s)
            counts[j] += 1
            total += P[j]
            if s[j] > best_score + 1e-12:
                best_score, best_counts = s[j], counts.copy()
        self.weights_ = best_counts / best_counts.sum()
        return self

    def _score(self, y, C) -> np.ndarray:
        return batch_score(self.metric, y, C) * get_metric(self.metric).sign()

    def _pick(self, y, C, scores) -> int:
        tied = np.flatnonzero(scores >= scores.max() - 1e-12)
        if len(tied) == 1:
            return int(tied[0])
        smooth = batch_score("rmse" if self.task in _VALUES else "log_loss", y, C[tied])
        return int(tied[np.argmin(smooth)])


class OptimizedBlender(Blender):
    """Non-negative weights fitted by an optimizer on a smooth loss.

    Classification: weights on the simplex minimising the log loss of the weighted mean
    probability (SLSQP). Regression: non-negative least squares (no sum constraint, so a
    blend can also rescale); several targets share the weights, fitted on all their values.
    The competition metric judges the result afterwards.
    """

    def fit(self, P, y, X=None):
        m = P.shape[0]
        if self.task in _VALUES:
            self.coef_, _ = nnls(P.reshape(m, -1).T, np.asarray(y, dtype=float).ravel())
            if not self.coef_.any():
                self.coef_ = np.full(m, 1 / m)
            self.weights_ = self.coef_ / self.coef_.sum()
            return self
        Q = P if P.shape[2] > 1 else np.concatenate([1 - P, P], axis=2)
        truth = np.take_along_axis(Q, np.asarray(y, dtype=int)[None, :, None], axis=2)[:, :, 0]  # m x n

        def loss(w):
            p = np.clip(w @ truth, _EPS, None)
            return -np.mean(np.log(p)), -(truth / p).mean(axis=1)

        res = minimize(loss, np.full(m, 1 / m), jac=True, method="SLSQP", bounds=[(0, 1)] * m,
                       constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones(m)}])
        w = np.clip(res.x, 0, None)
        self.weights_ = self.coef_ = w / w.sum()
        return self

    def predict(self, P, X=None):
        return np.tensordot(self.coef_, P, axes=1)


def _stack_frame(P: np.ndarray, task: str, X: pd.DataFrame | None = None) -> pd.DataFrame:
    Z = _margin(P, task)
    frame = pd.DataFrame({f"l1_{j}_{c}": Z[j, :, c] for j in range(Z.shape[0]) for c in range(Z.shape[2])})
    return frame if X is None else pd.concat([X.reset_index(drop=True), frame], axis=1)


def _per_run(importance: np.ndarray, m: int, k: int) -> np.ndarray:
    """Importances of the ``m*k`` level-1 columns summed per run and normalised."""
    imp = np.abs(importance).reshape(m, k).sum(axis=1)
    return imp / imp.sum() if imp.sum() > 0 else np.full(m, 1 / m)


class LinearStacker(Blender):
    """Level 2: logistic regression on logits / log-probabilities, or ridge on values."""

    def __init__(self, *, task: str = "binary", C: float = 1.0):
        self.task = task
        self.C = C

    def fit(self, P, y, X=None):
        Z = _stack_frame(P, self.task).to_numpy()
        if self.task in _VALUES:  # several targets: one multi-output ridge
            self.model_ = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(Z, y)
        else:
            self.model_ = LogisticRegression(C=self.C, max_iter=2000).fit(Z, y)
        self.weights_ = _per_run(np.abs(np.atleast_2d(self.model_.coef_)).sum(axis=0), P.shape[0], P.shape[2])
        return self

    def predict(self, P, X=None):
        Z = _stack_frame(P, self.task).to_numpy()
        if self.task in _VALUES:
            return self.model_.predict(Z).reshape(len(Z), -1)
        proba = self.model_.predict_proba(Z)
        return proba[:, 1:] if self.task == "binary" else proba


class LGBMStacker(Blender):
    """Level 2: a small, regularised LightGBM on the level-1 predictions.

    With ``features=True`` it also sees the original features (AutoGluon's stack layer);
    ``fold_features`` (the pipeline's in-fold target-based transformer) is then fitted on the
    level-2 training rows only, as the CV loop does for level 1.
    """

    def __init__(self, *, task: str = "binary", features: bool = False, fold_features: Any = None,
                 n_estimators: int = 150, learning_rate: float = 0.05, num_leaves: int = 7,
                 min_child_samples: int = 20, seed: int = 0):
        self.task = task
        self.features = features
        self.fold_features = fold_features
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.seed = seed

    def _frame(self, P, X, fit_y=None):
        if not self.features:
            return _stack_frame(P, self.task)
        if X is None:
            raise KagtoolsError("stack_lgbm_features needs the original features (a TrainingSet)")
        if self.fold_features is not None:
            if fit_y is not None:
                self.fold_features_ = clone(self.fold_features)
                X = self.fold_features_.fit_transform(X.reset_index(drop=True), fit_y)
            else:
                X = self.fold_features_.transform(X.reset_index(drop=True))
        return _stack_frame(P, self.task, X)

    def fit(self, P, y, X=None):
        from kagtools.models import create_model

        if self.task == "multitarget":
            raise KagtoolsError("stack_lgbm: LightGBM fits one target; multitarget runs use the other methods")
        frame = self._frame(P, X, fit_y=y)
        self.model_ = create_model(
            "lgbm", task=self.task, n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, min_child_samples=self.min_child_samples, subsample=0.8,
            colsample_bytree=0.8, reg_lambda=1.0, seed=self.seed).fit(frame, y)
        gain = self.model_.estimator_.booster_.feature_importance(importance_type="gain")
        m, k = P.shape[0], P.shape[2]
        self.features_share_ = float(gain[:-m * k].sum() / max(gain.sum(), 1e-12)) if self.features else 0.0
        self.weights_ = _per_run(gain[-m * k:], m, k)
        return self

    def predict(self, P, X=None):
        scores = np.asarray(self.model_.predict_scores(self._frame(P, X)), dtype=float)
        return scores.reshape(len(scores), -1)


# Every method works for binary, multiclass, regression; all but the LightGBM stackers for
# multitarget regression too (weights shared by the targets). An entry is (class, fixed keywords).
BLENDERS: Registry[tuple[type[Blender], dict[str, Any]]] = Registry("blend method")
for _name, _entry in {
    "mean": (MeanBlender, {}),
    "rank_mean": (RankMeanBlender, {}),
    "geo_mean": (GeoMeanBlender, {}),
    "hill_climb": (HillClimbBlender, {}),
    "optimize": (OptimizedBlender, {}),
    "stack_linear": (LinearStacker, {}),
    "stack_lgbm": (LGBMStacker, {}),
    "stack_lgbm_features": (LGBMStacker, {"features": True}),
}.items():
    BLENDERS.add(_name, _entry)


def make_blender(method: str, *, task: str, metric: str, seed: int = 0, fold_features: Any = None) -> Blender:
    """A fresh blender for ``method`` (see :data:`BLENDERS`)."""
    cls, fixed = BLENDERS.get(method)
    names = cls().get_params()
    given = {"metric": metric, "seed": seed, "fold_features": fold_features if fixed.get("features") else None}
    return cls(task=task, **fixed, **{k: v for k, v in given.items() if k in names})
