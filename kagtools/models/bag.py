"""``bag``: any registered model fitted several times with other seeds (and optionally on
bootstrap samples of the rows), its predictions averaged (``kagtools cv --model M --bag N``).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from kagtools.core.model_registry import get_model_class, make_model, register_model
from kagtools.errors import KagtoolsError

__all__ = ["Bag", "BAG_SEED_STRIDE"]

BAG_SEED_STRIDE = 100_003  # member seeds far apart from the engine's per-fold offsets


@register_model("bag")
class Bag(BaseEstimator):
    """The mean of ``n_bags`` fits of the registered ``model`` (with ``params``), each with its
    own seed: member ``i`` is seeded ``seed + BAG_SEED_STRIDE * i``. With ``bootstrap`` each
    member fits a seeded bootstrap sample of the rows."""

    tasks = ("binary", "multiclass", "regression", "multitarget")

    def __init__(self, *, model: str = "lgbm", params: dict | None = None, n_bags: int = 5,
                 bootstrap: bool = False, task: str = "binary", seed: int = 0):
        self.model = model
        self.params = params
        self.n_bags = n_bags
        self.bootstrap = bootstrap
        self.task = task
        self.seed = seed

    @property
    def parallel_folds(self) -> bool:
        return getattr(get_model_class(self.model), "parallel_folds", True)

    def fit(self, X, y, X_valid=None, y_valid=None):
        if self.n_bags < 1:
            raise KagtoolsError(f"bag: n_bags must be at least 1, got {self.n_bags}")
        y = np.asarray(y)
        self.members_ = []
        for i in range(self.n_bags):
            seed = self.seed + BAG_SEED_STRIDE * i
            member = make_model(self.model, self.params, task=self.task, seed=seed)
            if self.bootstrap:
                idx = np.random.default_rng(seed).integers(0, len(y), len(y))
                Xi, yi = (X.iloc[idx] if hasattr(X, "iloc") else np.asarray(X)[idx]), y[idx]
            else:
                Xi, yi = X, y
            self.members_.append(member.fit(Xi, yi, X_valid=X_valid, y_valid=y_valid))
        return self

    def member_scores(self, X) -> list[np.ndarray]:
        """Each member's predictions (to see how much the members differ)."""
        return [np.asarray(m.predict_scores(X), dtype=float) for m in self.members_]

    def predict_scores(self, X) -> np.ndarray:
        return np.mean(self.member_scores(X), axis=0)
