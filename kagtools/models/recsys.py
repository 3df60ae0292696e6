"""Collaborative filtering for explicit ratings: biases, matrix factorization, torch embeddings.

Every model reads two id columns of ``X`` (``user_col``, ``item_col``; other columns are
ignored) and optionally a ``session_col`` (e.g. the day a rating was made): a bias per
(user, session) pair captures the mood of one sitting, which is strong when held-out ratings
were made in the same sittings as the training ones (a random split of ratings). Users, items
or sessions never seen in training fall back to the biases that are known (at worst the global
mean): predictions are never NaN. The torch models (``cf_dot``, ``cf_neural``) are in
:mod:`kagtools.models.recsys_nets`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from kagtools.errors import KagtoolsError
from kagtools.models import register_model

__all__ = ["IdIndex", "CFModel", "GlobalMean", "Biases", "MatrixFactorization"]


class IdIndex:
    """Maps raw ids to ``0..n-1``; ids not seen when built map to ``-1``."""

    def __init__(self, values) -> None:
        self.index = pd.Index(pd.unique(np.asarray(values)))

    def __len__(self) -> int:
        return len(self.index)

    def codes(self, values) -> np.ndarray:
        return self.index.get_indexer(np.asarray(values))


def _lookup(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``table[codes]`` with 0 (no information) for unknown codes (-1)."""
    out = np.zeros((len(codes),) + table.shape[1:], dtype=table.dtype)
    known = codes >= 0
    out[known] = table[codes[known]]
    return out


def _group_mean(codes: np.ndarray, values: np.ndarray, n: int, reg: float) -> np.ndarray:
    """Ridge-shrunk mean per group: ``sum / (count + reg)`` (a regularized bias)."""
    return np.bincount(codes, weights=values, minlength=n) / (np.bincount(codes, minlength=n) + reg)


class CFModel(BaseEstimator, RegressorMixin):
    """Base for rating models: id indexing, ``fit``/``predict`` and ``predict_pairs``.

    Subclasses implement ``_fit(u, i, s, y)`` and ``_predict(u, i, s)`` on integer codes
    (``-1`` for unseen ids, ``s`` is ``None`` without a session column).
    """

    tasks = ("regression",)

    user_col: str
    item_col: str
    session_col: str | None

    def codes(self, X: pd.DataFrame, *, build: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Integer codes of ``X``'s users, items and (user, session) pairs; ``-1`` where unseen."""
        for col in (self.user_col, self.item_col, self.session_col):
            if col is not None and col not in X.columns:
                raise KagtoolsError(f"{type(self).__name__}: X has no column '{col}' "
                                    f"(columns: {', '.join(map(str, X.columns[:20]))})")
        if build:
            self.users_, self.items_ = IdIndex(X[self.user_col]), IdIndex(X[self.item_col])
        u, i = self.users_.codes(X[self.user_col]), self.items_.codes(X[self.item_col])
        if self.session_col is None:
            return u, i, None
        # A session is one user's sitting: the pair (user, session value), as one integer key.
        if build:
            self.session_values_ = IdIndex(X[self.session_col])
        v = self.session_values_.codes(X[self.session_col])
        key = np.where((u >= 0) & (v >= 0), u.astype(np.int64) * len(self.session_values_) + v, -1)
        if build:
            self.sessions_ = IdIndex(key)
        return u, i, self.sessions_.codes(key)

    def fit(self, X: pd.DataFrame, y, X_valid=None, y_valid=None):
        # The validation fold is never used: no early stopping on scored rows.
        y = np.asarray(y, dtype=float)
        u, i, s = self.codes(X, build=True)
        self.mean_ = float(y.mean())
        self._fit(u, i, s, y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self._predict(*self.codes(X))

    def predict_scores(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict(X)

    def predict_pairs(self, user_ids, item_ids) -> np.ndarray:
        """Predicted ratings for raw (user, item) ids with no session (e.g. recommendations)."""
        return self._predict(self.users_.codes(user_ids), self.items_.codes(item_ids), None)

    def _fit(self, u, i, s, y):  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, u, i, s) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


@register_model("cf_global_mean")
class GlobalMean(CFModel):
    """Every rating is the mean training rating: the floor every other model must beat."""

    session_col = None

    def __init__(self, *, user_col: str = "userId", item_col: str = "movieId", task: str = "regression"):
        self.user_col = user_col
        self.item_col = item_col
        self.task = task

    def _fit(self, u, i, s, y):
        pass

    def _predict(self, u, i, s) -> np.ndarray:
        return np.full(len(u), self.mean_)


def _fit_biases(u, i, s, r, n_users, n_items, n_sessions, *, reg_user, reg_item, reg_session, n_iter):
    """Alternating ridge steps for ``r ~ b_u + b_i + b_s`` (each step is exact given the others)."""
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    bs = np.zeros(n_sessions) if s is not None else None
    sess = (lambda: bs[s]) if s is not None else (lambda: 0.0)
    for _ in range(n_iter):
        bi = _group_mean(i, r - bu[u] - sess(), n_items, reg_item)
        bu = _group_mean(u, r - bi[i] - sess(), n_users, reg_user)
        if s is not None:
            bs = _group_mean(s, r - bu[u] - bi[i], n_sessions, reg_session)
    return bu, bi, bs


@register_model("cf_biases")
class Biases(CFModel):
    """``mean + b_user + b_item (+ b_session)``, each bias a ridge-shrunk mean of residuals.

    Parameters
    ----------
    reg_user, reg_item, reg_session : float
        Shrinkage: a bias is ``sum(residuals) / (count + reg)``, so rarely seen ids stay near 0.
    session_col : str or None
        Column whose value, paired with the user, names a sitting (e.g. the rating day).
    n_iter : int
        Alternating passes (converges in a handful).
    """

    def __init__(self, *, user_col: str = "userId", item_col: str = "movieId", session_col: str | None = None,
                 reg_user: float = 5.0, reg_item: float = 5.0, reg_session: float = 3.0, n_iter: int = 15,
                 task: str = "regression"):
        self.user_col = user_col
        self.item_col = item_col
        self.session_col = session_col
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.reg_session = reg_session
        self.n_iter = n_iter
        self.task = task

    def _fit(self, u, i, s, y):
        self.user_bias_, self.item_bias_, self.session_bias_ = _fit_biases(
            u, i, s, y - self.mean_, len(self.users_), len(self.items_),
            len(self.sessions_) if s is not None else 0, reg_user=self.reg_user, reg_item=self.reg_item,
            reg_session=self.reg_session, n_iter=self.n_iter)

    def _predict(self, u, i, s) -> np.ndarray:
        pred = self.mean_ + _lookup(self.user_bias_, u) + _lookup(self.item_bias_, i)
        if s is not None and self.session_bias_ is not None:
            pred += _lookup(self.session_bias_, s)
        return pred

    @staticmethod
    def search_space(trial):
        return {name: trial.suggest_float(name, 0.5, 50, log=True) for name in ("reg_user", "reg_item", "reg_session")}


def _ridge_rows(group: np.ndarray, feats: np.ndarray, target: np.ndarray, n_groups: int,
                penalty: np.ndarray) -> np.ndarray:
    """Solve one ridge regression per group, all at once.

    Row ``r`` belongs to group ``group[r]`` with features ``feats[r]`` and target ``target[r]``;
    group ``g`` solves ``(sum x x^T + diag(penalty[g])) w = sum x t``. The Gram matrices are
    sums of outer products, reduced over rows sorted by group (one column of every Gram matrix
    at a time), then solved in one batched ``np.linalg.solve``.
    """
    n, k = feats.shape
    order = np.argsort(group, kind="stable")
    group, target = group[order], target[order]
    cols = np.ascontiguousarray(feats[order].T)  # (k, n): reduceat runs along contiguous rows
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    present = group[starts]
    gram = np.zeros((n_groups, k, k))
    for a in range(k):
        gram[present, a, :] = np.add.reduceat(cols[a] * cols, starts, axis=1).T
    gram[:, np.arange(k), np.arange(k)] += penalty
    rhs = np.zeros((n_groups, k))
    rhs[present] = np.add.reduceat(cols * target, starts, axis=1).T
    return np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]


@register_model("cf_mf")
class MatrixFactorization(CFModel):
    """Biased matrix factorization, ``mean + b_u + b_i (+ b_s) + p_u . q_i``, by alternating least squares.

    Each half-step solves every user's (then every item's) ridge regression exactly and in one
    batch: the user's factors and bias together against the items' factors and a constant 1.
    The factor penalty grows with the number of ratings (ALS-WR, Zhou et al. 2008), which keeps
    one penalty right for heavy and light users alike.

    Parameters
    ----------
    n_factors : int
        Latent dimension.
    reg_factors : float
        Factor penalty per rating (``reg_factors * n_ratings`` on the diagonal).
    reg_bias, reg_session : float
        Bias penalties (as in ``cf_biases``).
    n_iter : int
        ALS sweeps.
    """

    def __init__(self, *, user_col: str = "userId", item_col: str = "movieId", session_col: str | None = None,
                 n_factors: int = 32, reg_factors: float = 0.1, reg_bias: float = 5.0, reg_session: float = 3.0,
                 n_iter: int = 12, init_scale: float = 0.1, seed: int = 0, task: str = "regression"):
        self.user_col = user_col
        self.item_col = item_col
        self.session_col = session_col
        self.n_factors = n_factors
        self.reg_factors = reg_factors
        self.reg_bias = reg_bias
        self.reg_session = reg_session
        self.n_iter = n_iter
        self.init_scale = init_scale
        self.seed = seed
        self.task = task

    def _fit(self, u, i, s, y):
        n_u, n_i, k = len(self.users_), len(self.items_), self.n_factors
        n_s = len(self.sessions_) if s is not None else 0
        r = y - self.mean_
        bu, bi, bs = _fit_biases(u, i, s, r, n_u, n_i, n_s, reg_user=self.reg_bias, reg_item=self.reg_bias,
                                 reg_session=self.reg_session, n_iter=5)
        rng = np.random.default_rng(self.seed)
        P = rng.normal(0, self.init_scale / np.sqrt(k), (n_u, k))
        Q = rng.normal(0, self.init_scale / np.sqrt(k), (n_i, k))
        ones = np.ones((len(r), 1))
        pen_u = self._penalty(np.bincount(u, minlength=n_u))
        pen_i = self._penalty(np.bincount(i, minlength=n_i))
        sess = (lambda: bs[s]) if s is not None else (lambda: 0.0)
        for _ in range(self.n_iter):
            w = _ridge_rows(u, np.hstack([Q[i], ones]), r - bi[i] - sess(), n_u, pen_u)
            P, bu = w[:, :k], w[:, k]
            w = _ridge_rows(i, np.hstack([P[u], ones]), r - bu[u] - sess(), n_i, pen_i)
            Q, bi = w[:, :k], w[:, k]
            if s is not None:
                bs = _group_mean(s, r - bu[u] - bi[i] - np.einsum("nk,nk->n", P[u], Q[i]), n_s, self.reg_session)
        self.user_factors_, self.item_factors_ = P, Q
        self.user_bias_, self.item_bias_, self.session_bias_ = bu, bi, bs

    def _penalty(self, counts: np.ndarray) -> np.ndarray:
        fac = self.reg_factors * np.maximum(counts, 1)[:, None] * np.ones((1, self.n_factors))
        return np.hstack([fac, np.full((len(counts), 1), self.reg_bias)])

    def _predict(self, u, i, s) -> np.ndarray:
        pred = (self.mean_ + _lookup(self.user_bias_, u) + _lookup(self.item_bias_, i)
                + np.einsum("nk,nk->n", _lookup(self.user_factors_, u), _lookup(self.item_factors_, i)))
        if s is not None and self.session_bias_ is not None:
            pred += _lookup(self.session_bias_, s)
        return pred

    @property
    def item_embeddings_(self) -> tuple[np.ndarray, np.ndarray]:
        """``(item ids, item factors)`` for similarity search and plots."""
        return self.items_.index.to_numpy(), self.item_factors_

    @staticmethod
    def search_space(trial):
        return {
            "n_factors": trial.suggest_int("n_factors", 8, 128, log=True),
            "reg_factors": trial.suggest_float("reg_factors", 0.01, 1.0, log=True),
            "reg_bias": trial.suggest_float("reg_bias", 0.5, 50, log=True),
        }
