"""CatBoost and XGBoost: the two gradient-boosting libraries AutoGluon stacks beside LightGBM.

Both train a fixed number of rounds by default. With ``early_stopping_rounds`` they stop on an
inner holdout (``inner_valid`` of the training rows, stratified for classifiers) and never on
``X_valid``: in cross-validation ``X_valid`` is the scored fold, and choosing the round count
on it would overstate CV. The rounds kept are recorded in ``best_iteration_`` (``None`` without
early stopping), and ``refit_params(n)`` gives the parameters of a refit with ``n`` rounds.

Imported only when one of them is asked for by name (``pip install 'kagtools[gbm]'``).
"""

from __future__ import annotations

import catboost
import numpy as np
import pandas as pd
import xgboost

from kagtools.models import register_model
from kagtools.models.tabular import (
    _CATEGORICAL,
    _NUMERIC,
    TabularModel,
    _as_frame,
    _categories_as_str,
    _lgbm_frame,
    _RefitRounds,
    align_categories,
    finite_numerics,
    inner_split,
)

__all__ = ["CatBoost", "XGBoost"]


def _float_numerics(X: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns in range (:func:`finite_numerics`), nullable ones (``Int64``, ``Float64``
    with ``pd.NA``) as float64 with NaN, which both libraries read."""
    X = finite_numerics(X)
    ext = [c for c in _NUMERIC(X) if not isinstance(X[c].dtype, np.dtype)]
    if ext:
        X = X.copy()
        for c in ext:
            X[c] = X[c].to_numpy(dtype=float, na_value=np.nan)
    return X


class _Booster(_RefitRounds, TabularModel):
    """Shared fit/predict: subclasses build the estimator and prepare the frame."""

    early_stopping_rounds: int | None
    inner_valid: float
    seed: int

    def _frame(self, X, *, fit: bool) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit(self, X: pd.DataFrame, y: np.ndarray, eval_set) -> int | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_params(self) -> None:
        """Both libraries check their parameters when they train: two rounds on made-up rows."""
        self._probe_fit(**self.refit_params(2))

    def fit(self, X, y, X_valid=None, y_valid=None):
        """Fit on ``X``, ``y``. ``X_valid``/``y_valid`` (the scored fold) are not used."""
        X = self._frame(X, fit=True)
        y = np.asarray(y)
        eval_set = None
        if self.early_stopping_rounds:
            tr, ho = inner_split(y, frac=self.inner_valid, seed=self.seed, stratify=self.is_classifier)
            X, y, eval_set = X.iloc[tr], y[tr], (X.iloc[ho], y[ho])
        self.best_iteration_ = self._fit(X, y, eval_set)
        if self.is_classifier:
            self.classes_ = np.asarray(self.estimator_.classes_)
        return self

    def predict_proba(self, X) -> np.ndarray:
        # XGBoost computes in float32: its rows sum to 1 only within float32 rounding, which
        # scikit-learn's log loss warns about; in float64 and renormalised they sum to 1.
        p = np.asarray(self.estimator_.predict_proba(self._frame(X, fit=False)), dtype=float)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        if self.is_classifier:
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        return np.asarray(self.estimator_.predict(self._frame(X, fit=False)), dtype=float).ravel()


@register_model("catboost")
class CatBoost(_Booster):
    """CatBoost with native categoricals (ordered target statistics) and a fixed number of rounds.

    Non-numeric columns are categorical features (as strings, missing as ``"<NA>"``); numeric
    NaN and +/-inf are missing. Nothing is written to disk (no ``catboost_info/``).
    """

    rounds_param = "iterations"

    def __init__(self, *, task: str = "binary", iterations: int = 500, learning_rate: float = 0.08,
                 depth: int = 6, l2_leaf_reg: float = 3.0, random_strength: float = 1.0,
                 bagging_temperature: float = 1.0, border_count: int = 254, one_hot_max_size: int = 2,
                 rsm: float = 1.0, early_stopping_rounds: int | None = None, inner_valid: float = 0.1,
                 n_jobs: int = 1, seed: int = 0):
        self.task = task
        self.iterations = iterations
        self.learning_rate = learning_rate
        self.depth = depth
        self.l2_leaf_reg = l2_leaf_reg
        self.random_strength = random_strength
        self.bagging_temperature = bagging_temperature
        self.border_count = border_count
        self.one_hot_max_size = one_hot_max_size
        self.rsm = rsm
        self.early_stopping_rounds = early_stopping_rounds
        self.inner_valid = inner_valid
        self.n_jobs = n_jobs
        self.seed = seed

    def _frame(self, X, *, fit: bool) -> pd.DataFrame:
        X = _categories_as_str(_float_numerics(_as_frame(X)))
        if fit:
            self.cat_features_ = _CATEGORICAL(X)
        return X

    def _fit(self, X: pd.DataFrame, y: np.ndarray, eval_set) -> int | None:
        loss = {"binary": "Logloss", "multiclass": "MultiClass", "regression": "RMSE"}[self.task]
        cls = catboost.CatBoostClassifier if self.is_classifier else catboost.CatBoostRegressor
        self.estimator_ = cls(
            loss_function=loss, iterations=self.iterations, learning_rate=self.learning_rate, depth=self.depth,
            l2_leaf_reg=self.l2_leaf_reg, random_strength=self.random_strength,
            bagging_temperature=self.bagging_temperature, border_count=self.border_count, rsm=self.rsm,
            one_hot_max_size=self.one_hot_max_size, thread_count=self.n_jobs, random_seed=self.seed,
            verbose=False, allow_writing_files=False,
        )
        stop = {"eval_set": eval_set, "early_stopping_rounds": self.early_stopping_rounds, "use_best_model": True}
        self.estimator_.fit(X, y, cat_features=self.cat_features_, **(stop if eval_set is not None else {}))
        return self.estimator_.get_best_iteration() + 1 if eval_set is not None else None

    @staticmethod
    def search_space(trial):
        return {
            "iterations": trial.suggest_int("iterations", 100, 1500, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "depth": trial.suggest_int("depth", 3, 9),
            "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 0.5, 30.0, log=True),
            "random_strength": trial.suggest_float("random_strength", 0.1, 10.0, log=True),
            "bagging_temperature": trial.suggest_float("bagging_temperature", 0.0, 2.0),
            "rsm": trial.suggest_float("rsm", 0.3, 1.0),
        }


@register_model("xgboost")
class XGBoost(_Booster):
    """XGBoost (``hist`` trees) with native categoricals and a fixed number of rounds.

    Non-numeric columns become ``category`` columns whose categories are fixed at fit time
    (unseen ones at predict time are missing); numeric NaN and +/-inf are missing.
    """

    rounds_param = "n_estimators"

    def __init__(self, *, task: str = "binary", n_estimators: int = 500, learning_rate: float = 0.05,
                 max_depth: int = 6, min_child_weight: float = 1.0, subsample: float = 1.0,
                 colsample_bytree: float = 1.0, reg_lambda: float = 1.0, reg_alpha: float = 0.0,
                 gamma: float = 0.0, max_bin: int = 256, max_cat_to_onehot: int = 4,
                 early_stopping_rounds: int | None = None, inner_valid: float = 0.1, n_jobs: int = 1,
                 seed: int = 0):
        self.task = task
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.reg_alpha = reg_alpha
        self.gamma = gamma
        self.max_bin = max_bin
        self.max_cat_to_onehot = max_cat_to_onehot
        self.early_stopping_rounds = early_stopping_rounds
        self.inner_valid = inner_valid
        self.n_jobs = n_jobs
        self.seed = seed

    def _frame(self, X, *, fit: bool) -> pd.DataFrame:
        X = _lgbm_frame(_float_numerics(_as_frame(X)))
        if fit:
            self.categories_ = {c: X[c].cat.categories for c in X.columns if X[c].dtype == "category"}
            return X
        return align_categories(X, self.categories_)

    def _fit(self, X: pd.DataFrame, y: np.ndarray, eval_set) -> int | None:
        cls = xgboost.XGBClassifier if self.is_classifier else xgboost.XGBRegressor
        self.estimator_ = cls(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, max_depth=self.max_depth,
            min_child_weight=self.min_child_weight, subsample=self.subsample,
            colsample_bytree=self.colsample_bytree, reg_lambda=self.reg_lambda, reg_alpha=self.reg_alpha,
            gamma=self.gamma, max_bin=self.max_bin, max_cat_to_onehot=self.max_cat_to_onehot,
            tree_method="hist", enable_categorical=True, n_jobs=self.n_jobs, random_state=self.seed,
            early_stopping_rounds=self.early_stopping_rounds if eval_set is not None else None, verbosity=0,
        )
        kwargs = {"eval_set": [eval_set], "verbose": False} if eval_set is not None else {}
        self.estimator_.fit(X, y, **kwargs)
        return int(self.estimator_.best_iteration) + 1 if eval_set is not None else None

    @staticmethod
    def search_space(trial):
        return {
            "n_estimators": trial.suggest_int("n_estimators", 50, 1500, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 3, 10),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        }
