"""``similarity_lgbm``: LightGBM on the similarity features of phrase pairs (no torch)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from kagtools.models import register_model
from kagtools.models.tabular import LightGBM

__all__ = ["SimilarityLGBM"]


@register_model("similarity_lgbm")
class SimilarityLGBM(BaseEstimator):
    """LightGBM on the numeric and category columns of X; string columns are left out.

    The phrase-matching pipelines hand every model one frame: raw text for the encoders and
    similarity features for this booster. Fixed rounds, no early stopping on the scored fold.
    """

    tasks = ("binary", "multiclass", "regression")

    def __init__(self, *, task: str = "regression", n_estimators: int = 600, learning_rate: float = 0.03,
                 num_leaves: int = 31, min_child_samples: int = 40, subsample: float = 0.8,
                 colsample_bytree: float = 0.7, reg_lambda: float = 1.0, n_jobs: int = 1, seed: int = 0):
        self.task = task
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.n_jobs = n_jobs
        self.seed = seed

    def _select(self, X: pd.DataFrame) -> pd.DataFrame:
        keep = [c for c in X.columns
                if pd.api.types.is_numeric_dtype(X[c]) or isinstance(X[c].dtype, pd.CategoricalDtype)]
        return X[keep]

    def fit(self, X, y, X_valid=None, y_valid=None):
        X = self._select(X)
        self.booster_ = LightGBM(**self.get_params()).fit(X, y)
        self.columns_ = list(X.columns)
        return self

    def predict(self, X) -> np.ndarray:
        return self.booster_.predict(X[self.columns_])

    def predict_proba(self, X) -> np.ndarray:
        return self.booster_.predict_proba(X[self.columns_])

    def predict_scores(self, X) -> np.ndarray:
        return self.booster_.predict_scores(X[self.columns_])

    @staticmethod
    def search_space(trial):
        return LightGBM.search_space(trial)
