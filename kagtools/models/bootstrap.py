"""``bootstrap``: any registered model fitted on a bootstrap sample of its training rows.

Bagging (``kagtools cv --bag N --bootstrap``, :mod:`kagtools.bagging`) averages several of
these over seeds; registered here so that ``kagtools models`` lists it and the contract tests
over every registered model cover it.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from kagtools.models import create_model, get_model_class, register_model

__all__ = ["Bootstrap"]


@register_model("bootstrap")
class Bootstrap(BaseEstimator):
    """Any registered model fitted on a bootstrap sample (rows drawn with replacement).

    Parameters
    ----------
    model : str
        The registered model to fit.
    params : dict, optional
        Its parameters.
    task, seed
        Set by the CV loop; ``seed`` draws the sample and seeds the model.
    """

    def __init__(self, *, model: str = "lgbm", params: dict | None = None, task: str = "binary", seed: int = 0):
        self.model = model
        self.params = params
        self.task = task
        self.seed = seed

    @property
    def parallel_folds(self) -> bool:
        return getattr(get_model_class(self.model), "parallel_folds", True)

    def fit(self, X, y, X_valid=None, y_valid=None):
        rng = np.random.default_rng(self.seed)
        idx = rng.integers(0, len(y), len(y))
        inner = create_model(self.model, **(self.params or {}))
        names = inner.get_params()
        inner.set_params(**{k: v for k, v in (("task", self.task), ("seed", self.seed)) if k in names})
        Xb = X.iloc[idx] if hasattr(X, "iloc") else np.asarray(X)[idx]
        self.model_ = inner.fit(Xb, np.asarray(y)[idx], X_valid=X_valid, y_valid=y_valid)
        return self

    def predict_scores(self, X) -> np.ndarray:
        return self.model_.predict_scores(X)
