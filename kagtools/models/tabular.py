"""Classical tabular models: logistic/ridge, random forest, extra trees, LightGBM, HistGB, kNN.

Each owns its preprocessing (one-hot + scaling for the linear model and kNN, ordinal codes for
forests, native categoricals for the boosters), so a pipeline hands every model the same
DataFrame of numeric and ``category`` columns. Every model reads +/-inf in a numeric column as
missing and clips values beyond the float32 range (see :func:`finite_numerics`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from kagtools.core.folds import inner_holdout
from kagtools.models import register_model

__all__ = ["align_categories", "TabularModel", "LogReg", "RandomForest", "ExtraTrees", "LightGBM", "HistGB", "KNN",
           "finite_numerics", "inner_split"]

#: Numeric values are clipped to +/- this (float32's largest): forests cast to float32, and a
#: scaler squares values (1e308 squared is inf).
BIG = float(np.finfo(np.float32).max)


def _is_categorical(dtype) -> bool:
    return not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _CATEGORICAL(X: pd.DataFrame) -> list[str]:
    """Columns treated as categories: anything not numeric (object, string, category, bool)."""
    return [c for c in X.columns if _is_categorical(X[c].dtype)]


def _NUMERIC(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if not _is_categorical(X[c].dtype)]


def _as_frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    X = np.asarray(X)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])


def finite_numerics(X: pd.DataFrame) -> pd.DataFrame:
    """``X`` with +/-inf in float columns as NaN (missing) and other values clipped to +/-``BIG``.

    Returns ``X`` itself (no copy) when every float column is already in range, so finite data
    reach the models exactly as before.
    """
    fixed = {}
    for c in [c for c in _NUMERIC(X) if pd.api.types.is_float_dtype(X[c].dtype)]:  # integers are always in range
        values = X[c].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = np.isinf(values) | (np.abs(values) > BIG)
        if bad.any():
            fixed[c] = np.clip(np.where(np.isinf(values), np.nan, values), -BIG, BIG)
    if not fixed:
        return X
    X = X.copy()
    for c, values in fixed.items():
        X[c] = values
    return X


def _prepare(X) -> pd.DataFrame:
    return _categories_as_str(finite_numerics(_as_frame(X)))


def _categories_as_str(X: pd.DataFrame) -> pd.DataFrame:
    cats = _CATEGORICAL(X)
    X = X.copy() if cats else X
    for c in cats:
        X[c] = X[c].astype("string").fillna("<NA>").astype(object)
    return X


def _one_hot_scaled(min_frequency: int) -> ColumnTransformer:
    """One-hot categories (rare levels pooled) and median-imputed, standardised numerics with
    missing indicators: the input of the linear model and of k-nearest neighbours."""
    return ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=min_frequency,
                              sparse_output=False), _CATEGORICAL),
        ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                              StandardScaler()), _NUMERIC),
    ])


def inner_split(y: np.ndarray, *, frac: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """(train, holdout) positions of the training rows, for early stopping inside a fold;
    stratified on ``y`` when asked and every class has enough rows, else a plain random split."""
    return inner_holdout(len(y), frac=frac, seed=seed, stratify=y if stratify else None)


class _RefitRounds:
    """A model that early-stops on an inner holdout (the rounds kept: ``best_iteration_``);
    ``rounds_param`` names its parameter that counts rounds (trees, iterations or epochs)."""

    rounds_param: str

    def refit_params(self, n_rounds: int) -> dict[str, Any]:
        """The parameters of a refit with ``n_rounds`` rounds and no early stopping."""
        return {self.rounds_param: int(n_rounds), "early_stopping_rounds": None}


class TabularModel(BaseEstimator):
    """Base for the classical models: ``_make_estimator()`` builds the scikit-learn pipeline.

    ``task`` is ``binary``, ``multiclass`` or ``regression`` (the CV runner sets it from the
    competition spec).
    """

    tasks = ("binary", "multiclass", "regression")
    task: str

    def _make_estimator(self, X: pd.DataFrame):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def is_classifier(self) -> bool:
        return self.task in ("binary", "multiclass")

    def check_params(self) -> None:
        """Refuse bad parameter values now, with scikit-learn's own parameter constraints, before
        any data is read (a fit would find them only after the features are built)."""
        est = self._make_estimator(pd.DataFrame({"x": np.arange(8.0)}))
        for step in [s for _, s in getattr(est, "steps", [(None, est)])]:
            if hasattr(step, "_validate_params"):
                step._validate_params()

    def _probe_fit(self, **overrides) -> None:
        """Fit a copy with ``overrides`` (a few rounds) on 40 made-up rows: for libraries that
        check their parameters only when they train. What C++ code prints is silenced."""
        rng = np.random.default_rng(0)
        X = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
        y = np.arange(40) % (3 if self.task == "multiclass" else 2)
        with _quiet_stderr():
            clone(self).set_params(**overrides).fit(X, y.astype(float) if self.task == "regression" else y)

    def fit(self, X, y, X_valid=None, y_valid=None):
        X = _prepare(X)
        self.estimator_ = self._make_estimator(X)
        with warnings.catch_warnings(action="ignore", category=UserWarning):
            self.estimator_.fit(X, np.asarray(y))
        if self.is_classifier:
            self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        with warnings.catch_warnings(action="ignore", category=UserWarning):
            return self.estimator_.predict_proba(_prepare(X))

    def predict(self, X) -> np.ndarray:
        with warnings.catch_warnings(action="ignore", category=UserWarning):
            return self.estimator_.predict(_prepare(X))

    def predict_scores(self, X) -> np.ndarray:
        """What a run records: positive-class probability (binary), class probabilities
        (multiclass) or values (regression)."""
        if not self.is_classifier:
            return np.asarray(self.predict(X), dtype=float)
        proba = self.predict_proba(X)
        return proba[:, 1] if self.task == "binary" else proba


@register_model("logreg")
class LogReg(TabularModel):
    """Logistic regression (ridge for regression) on one-hot categories and scaled numerics."""

    tasks = ("binary", "multiclass", "regression", "multitarget")

    def __init__(self, *, task: str = "binary", C: float = 1.0, max_iter: int = 2000,
                 min_frequency: int = 5, seed: int = 0):
        self.task = task
        self.C = C
        self.max_iter = max_iter
        self.min_frequency = min_frequency
        self.seed = seed

    def _make_estimator(self, X: pd.DataFrame):
        if self.is_classifier:
            model = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
        else:
            model = Ridge(alpha=1.0 / self.C, random_state=self.seed)
        return make_pipeline(_one_hot_scaled(self.min_frequency), model)

    @staticmethod
    def search_space(trial):
        return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}


class _Forest(TabularModel):
    tasks = ("binary", "multiclass", "regression", "multitarget")
    _classes: tuple[type, type]

    def __init__(self, *, task: str = "binary", n_estimators: int = 500, max_depth: int | None = None,
                 min_samples_leaf: int = 1, max_features: float | str | None = "sqrt",
                 n_jobs: int = 1, seed: int = 0):
        self.task = task
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.n_jobs = n_jobs
        self.seed = seed

    def _make_estimator(self, X: pd.DataFrame):
        cls = self._classes[0] if self.is_classifier else self._classes[1]
        pre = ColumnTransformer([
            ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                   encoded_missing_value=-1), _CATEGORICAL),
            ("num", SimpleImputer(strategy="median", keep_empty_features=True), _NUMERIC),
        ])
        return make_pipeline(pre, cls(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                      min_samples_leaf=self.min_samples_leaf, max_features=self.max_features,
                                      n_jobs=self.n_jobs, random_state=self.seed))

    @staticmethod
    def search_space(trial):
        return {
            "n_estimators": trial.suggest_int("n_estimators", 100, 800, step=100),
            "max_depth": trial.suggest_int("max_depth", 3, 16),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 20),
            "max_features": trial.suggest_float("max_features", 0.2, 1.0),
        }


@register_model("rf")
class RandomForest(_Forest):
    """Random forest on ordinal-coded categories."""

    _classes = (RandomForestClassifier, RandomForestRegressor)


@register_model("et")
class ExtraTrees(_Forest):
    """Extremely randomized trees on ordinal-coded categories."""

    _classes = (ExtraTreesClassifier, ExtraTreesRegressor)


@register_model("lgbm")
class LightGBM(_RefitRounds, TabularModel):
    """LightGBM with native categoricals: a fixed number of rounds, or early stopping on an inner split.

    Early stopping is on an inner holdout, never on the validation fold, as for CatBoost and XGBoost
    (:mod:`kagtools.models.boosters` says why); the rounds kept are ``best_iteration_``.
    """

    rounds_param = "n_estimators"

    def __init__(self, *, task: str = "binary", n_estimators: int = 300, learning_rate: float = 0.05,
                 num_leaves: int = 31, max_depth: int = -1, min_child_samples: int = 20,
                 subsample: float = 1.0, colsample_bytree: float = 1.0, reg_lambda: float = 0.0,
                 reg_alpha: float = 0.0, min_split_gain: float = 0.0, cat_smooth: float = 10.0,
                 early_stopping_rounds: int | None = None, inner_valid: float = 0.1,
                 n_jobs: int = 1, seed: int = 0, callbacks: list | None = None):
        self.task = task
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.reg_alpha = reg_alpha
        self.min_split_gain = min_split_gain
        self.cat_smooth = cat_smooth
        self.early_stopping_rounds = early_stopping_rounds
        self.inner_valid = inner_valid
        self.n_jobs = n_jobs
        self.seed = seed
        self.callbacks = callbacks

    def _make_estimator(self, X: pd.DataFrame):
        cls = lgb.LGBMClassifier if self.is_classifier else lgb.LGBMRegressor
        return cls(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, max_depth=self.max_depth,
            min_child_samples=self.min_child_samples, subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1 else 0, colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda, reg_alpha=self.reg_alpha, min_split_gain=self.min_split_gain,
            cat_smooth=self.cat_smooth, n_jobs=self.n_jobs, random_state=self.seed, verbose=-1,
        )

    def fit(self, X, y, X_valid=None, y_valid=None):
        X = _lgbm_frame(finite_numerics(_as_frame(X)))
        self.categories_ = {c: X[c].cat.categories for c in X.columns if X[c].dtype == "category"}
        self.estimator_ = self._make_estimator(X)
        y = np.asarray(y)
        kwargs: dict = {}
        if self.early_stopping_rounds:
            # The inner holdout is the only evaluation set: LightGBM's early stopping watches
            # every one it is given, and callbacks (Optuna pruning) then read the holdout too.
            tr, ho = inner_split(y, frac=self.inner_valid, seed=self.seed, stratify=self.is_classifier)
            kwargs = {"eval_X": (X.iloc[ho],), "eval_y": (y[ho],),
                      "callbacks": [lgb.early_stopping(self.early_stopping_rounds, verbose=False),
                                    *(self.callbacks or [])]}
            X, y = X.iloc[tr], y[tr]
        elif X_valid is not None and self.callbacks:
            # Validation rows feed callbacks (e.g. Optuna pruning) only, never early stopping.
            kwargs = {"eval_X": (self._align(X_valid),), "eval_y": (np.asarray(y_valid),),
                      "callbacks": self.callbacks}
        self.estimator_.fit(X, y, **kwargs)
        self.best_iteration_ = int(self.estimator_.best_iteration_) if self.early_stopping_rounds else None
        if self.is_classifier:
            self.classes_ = self.estimator_.classes_
        return self

    def check_params(self) -> None:
        """LightGBM checks its parameters when it trains: two rounds on made-up rows."""
        try:
            self._probe_fit(n_estimators=2, callbacks=None)
        except lgb.basic.LightGBMError as exc:
            raise ValueError(str(exc).split(" at /")[0]) from None

    def _align(self, X) -> pd.DataFrame:
        return align_categories(_lgbm_frame(finite_numerics(_as_frame(X))), self.categories_)

    def predict_proba(self, X) -> np.ndarray:
        return self.estimator_.predict_proba(self._align(X))

    def predict(self, X) -> np.ndarray:
        return self.estimator_.predict(self._align(X))

    @staticmethod
    def search_space(trial):
        return {
            "n_estimators": trial.suggest_int("n_estimators", 30, 600, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        }


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what C++ code writes to file descriptor 2 (Python's own errors still raise)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def align_categories(X: pd.DataFrame, categories: dict[str, pd.Index]) -> pd.DataFrame:
    """``X`` with each ``category`` column on the categories seen at fit time (unseen -> NaN)."""
    for c, cats in categories.items():
        vals = X[c].astype(object)
        X[c] = pd.Categorical(vals.where(vals.isin(cats)), categories=cats)
    return X


def _lgbm_frame(X: pd.DataFrame) -> pd.DataFrame:
    cats = _CATEGORICAL(X)
    X = X.copy() if cats else X
    for c in cats:
        if X[c].dtype != "category":
            X[c] = X[c].astype("string").astype("category")
    return X


@register_model("hgb")
class HistGB(TabularModel):
    """scikit-learn's histogram gradient boosting, categories native, fixed iterations."""

    def __init__(self, *, task: str = "binary", max_iter: int = 200, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 20, l2_regularization: float = 0.0,
                 seed: int = 0):
        self.task = task
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.seed = seed

    def _make_estimator(self, X: pd.DataFrame):
        cls = HistGradientBoostingClassifier if self.is_classifier else HistGradientBoostingRegressor
        n_cat = len(_CATEGORICAL(X))
        return make_pipeline(
            ColumnTransformer([
                ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                       encoded_missing_value=np.nan, max_categories=250), _CATEGORICAL),
                ("num", "passthrough", _NUMERIC),
            ]),
            cls(max_iter=self.max_iter, learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
                l2_regularization=self.l2_regularization,
                categorical_features=[True] * n_cat + [False] * (X.shape[1] - n_cat) if n_cat else None,
                early_stopping=False, random_state=self.seed),
        )

    @staticmethod
    def search_space(trial):
        return {
            "max_iter": trial.suggest_int("max_iter", 50, 600, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 4, 63, log=True),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 100, log=True),
            "l2_regularization": trial.suggest_float("l2_regularization", 1e-4, 10.0, log=True),
        }


@register_model("knn")
class KNN(TabularModel):
    """k-nearest neighbours on one-hot categories and median-imputed, standardised numerics.

    Uniform votes of ``n_neighbors`` neighbours by default (AutoGluon fits a uniform and a
    distance-weighted one: ``weights="distance"``); ``p`` is the Minkowski power (1 Manhattan,
    2 Euclidean). Fewer training rows than ``n_neighbors`` use them all.
    """

    def __init__(self, *, task: str = "binary", n_neighbors: int = 15, weights: str = "uniform", p: int = 2,
                 min_frequency: int = 5, n_jobs: int = 1):
        self.task = task
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.p = p
        self.min_frequency = min_frequency
        self.n_jobs = n_jobs

    def _make_estimator(self, X: pd.DataFrame):
        cls = KNeighborsClassifier if self.is_classifier else KNeighborsRegressor
        knn = cls(n_neighbors=max(1, min(self.n_neighbors, len(X))), weights=self.weights, p=self.p, n_jobs=self.n_jobs)
        return make_pipeline(_one_hot_scaled(self.min_frequency), knn)

    @staticmethod
    def search_space(trial):
        return {
            "n_neighbors": trial.suggest_int("n_neighbors", 3, 100, log=True),
            "weights": trial.suggest_categorical("weights", ["uniform", "distance"]),
            "p": trial.suggest_categorical("p", [1, 2]),
        }
