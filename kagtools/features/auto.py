"""Automatic features for a table nobody wrote a pipeline for, fitted within each fold.

:class:`AutoFeatures` is a scikit-learn transformer that the CV loop fits on the training rows
of every fold (``TrainingSet.fold_features``), so nothing it learns from the target ever sees
a validation row. Per column it decides, from the training rows only:

- numeric: passed through, plus a missing indicator when values are missing;
- constant, or id-like (a distinct value on every row): dropped;
- date/time strings: year, month, day, day of week, hour, and the time as a number;
- low-cardinality categories: kept as ``category`` dtype, so each model encodes them its own
  way (LightGBM natively, one-hot for the linear model, ordinal codes for the forests);
- high-cardinality categories: frequency plus out-of-fold target encoding (the training rows
  see encodings from the other inner folds only; validation and test rows see all of them);
- text (several words per value, and more distinct values than a category has): length and
  word count, plus the out-of-fold prediction of a ridge model on TF-IDF word and character
  n-grams (stacked the same leak-free way).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_union

from kagtools.errors import KagtoolsError

__all__ = ["AutoFeatures", "column_kinds", "target_matrix"]


def target_matrix(y) -> np.ndarray:
    """The target as a float matrix: one-hot for classes ``0..K-1`` (K > 2), else its columns."""
    y = np.asarray(y)
    if y.ndim == 2:
        return y.astype(float)
    if np.issubdtype(y.dtype, np.integer) and y.min() >= 0 and 2 < y.max() + 1 <= 200:
        return np.eye(int(y.max()) + 1)[y]
    return y.astype(float).reshape(-1, 1)


def _parse_dates(s: pd.Series) -> pd.Series | None:
    """The column as datetimes when (nearly) every non-missing value parses as one."""
    values = s.dropna().astype(str)
    if values.empty or not values.str.contains(r"\d[-/:.]\d|\d{4}", regex=True).mean() > 0.9:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if pd.to_datetime(values.iloc[:500], errors="coerce", format="mixed").notna().mean() < 0.95:
            return None
        return pd.to_datetime(s.astype("string"), errors="coerce", format="mixed")


def column_kinds(X: pd.DataFrame, *, max_categories: int = 50, text_words: float = 3.0) -> dict[str, str]:
    """The kind of each column: numeric, constant, id, date, category, high_card or text."""
    kinds = {}
    n = len(X)
    for col in X.columns:
        s = X[col]
        nunique = s.nunique(dropna=True)
        if nunique <= 1 and not s.isna().any() or nunique == 0:
            kinds[col] = "constant"
        elif pd.api.types.is_bool_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype):
            kinds[col] = "category" if nunique <= max_categories else "high_card"
        elif pd.api.types.is_numeric_dtype(s):
            values = s.dropna().to_numpy()
            integral = pd.api.types.is_integer_dtype(s) or np.all(np.mod(values, 1) == 0)
            # Distinct integers packed in a range barely wider than the rows: a row number. (A
            # fold's training rows of ids 0..N-1 span N values for 0.8 N rows, hence the slack.)
            dense = integral and nunique == n and np.ptp(values) + 1 <= 1.5 * n
            kinds[col] = "id" if dense and n > 20 else "numeric"
        elif _parse_dates(s) is not None:
            kinds[col] = "date"
        else:
            words = s.dropna().astype(str).str.count(r"\w+")
            if words.mean() >= text_words and nunique > max_categories:  # a few labels of many words are categories
                kinds[col] = "text"
            elif nunique == s.notna().sum() and n > 20:
                kinds[col] = "id"
            else:
                kinds[col] = "category" if nunique <= max_categories else "high_card"
    return kinds


def _rows(values, idx: np.ndarray):
    return values.iloc[idx] if isinstance(values, pd.Series) else values[idx]


class AutoFeatures(BaseEstimator, TransformerMixin):
    """Model-ready features from a raw table, learned on the rows it is fitted on.

    Parameters
    ----------
    max_categories : int
        Categories with more distinct values than this are target-encoded instead of kept.
    text_words : float
        A string column whose values have at least this many words on average, and more than
        ``max_categories`` distinct values, is text.
    smoothing : float
        Target encoding shrinks each category's mean toward the global mean with this weight.
    inner_splits : int
        Inner folds for the out-of-fold target encoding and text model on the fitted rows.
    max_tfidf_features : int
        Vocabulary size of each TF-IDF vectorizer (words and character n-grams).
    seed : int
        Seed of the inner folds.
    """

    def __init__(self, *, max_categories: int = 50, text_words: float = 3.0, smoothing: float = 10.0,
                 inner_splits: int = 5, max_tfidf_features: int = 10000, seed: int = 0):
        self.max_categories = max_categories
        self.text_words = text_words
        self.smoothing = smoothing
        self.inner_splits = inner_splits
        self.max_tfidf_features = max_tfidf_features
        self.seed = seed

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y=None):
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y=None, **_) -> pd.DataFrame:
        """Fit on ``X`` and return its features, target-based ones out of fold."""
        X = pd.DataFrame(X).reset_index(drop=True)
        self.kinds_ = column_kinds(X, max_categories=self.max_categories, text_words=self.text_words)
        self.missing_ = [c for c, k in self.kinds_.items() if k == "numeric" and X[c].isna().any()]
        self.categories_ = {c: pd.Index(X[c].dropna().astype(str).unique())
                            for c, k in self.kinds_.items() if k == "category"}
        self.counts_ = {c: X[c].astype(str).value_counts(normalize=True)
                        for c, k in self.kinds_.items() if k == "high_card"}
        Y = target_matrix(y) if y is not None else None
        self.target_cols_ = [c for c, k in self.kinds_.items() if k in ("high_card", "text")]
        self.encoders_, self.vectorizers_ = {}, {}
        oof = {}
        if Y is not None and self.target_cols_:
            self.prior_ = Y.mean(axis=0)
            inner = KFold(n_splits=min(self.inner_splits, len(X)), shuffle=True, random_state=self.seed)
            for c in self.target_cols_:
                values = X[c]
                if self.kinds_[c] == "text":
                    # The vocabulary and IDF use no target: fitted once on all the fitted rows.
                    self.vectorizers_[c] = make_union(
                        TfidfVectorizer(max_features=self.max_tfidf_features, ngram_range=(1, 2), sublinear_tf=True),
                        TfidfVectorizer(max_features=self.max_tfidf_features, analyzer="char_wb",
                                        ngram_range=(2, 4), sublinear_tf=True),
                    ).fit(X[c].fillna("").astype(str))
                    values = self.vectorizers_[c].transform(X[c].fillna("").astype(str))
                oof[c] = np.zeros((len(X), Y.shape[1]))
                for tr, va in inner.split(X):
                    enc = self._fit_encoder(c, _rows(values, tr), Y[tr])
                    oof[c][va] = self._apply_encoder(c, enc, _rows(values, va))
                self.encoders_[c] = self._fit_encoder(c, values, Y)
        out = self._features(X, oof)
        if out.shape[1] == 0:
            dropped = ", ".join(f"{c} ({k})" for c, k in list(self.kinds_.items())[:6]) or "none"
            raise KagtoolsError(f"no usable feature: every column of the {len(X)} training rows is constant, empty "
                                f"or id-like, so there is nothing to learn from (columns: {dropped})")
        self.feature_names_ = list(out.columns)
        return out

    def _fit_encoder(self, col: str, values, Y: np.ndarray) -> Any:
        """A ridge model on TF-IDF (text), or smoothed per-category target means."""
        if self.kinds_[col] == "text":
            return Ridge(alpha=3.0).fit(values, Y)
        frame = pd.DataFrame(Y, index=values.index).groupby(values.astype(str).to_numpy())
        sums, counts = frame.sum(), frame.size()
        return (sums.add(self.smoothing * self.prior_, axis=1)).div(counts + self.smoothing, axis=0)

    def _apply_encoder(self, col: str, enc: Any, values) -> np.ndarray:
        if self.kinds_[col] == "text":
            return enc.predict(values).reshape(values.shape[0], -1)
        table = enc.reindex(values.astype(str).to_numpy())
        return table.fillna(pd.Series(self.prior_, index=enc.columns)).to_numpy(dtype=float)

    # -- transforming ----------------------------------------------------------------------------
    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        X = pd.DataFrame(X).reset_index(drop=True)
        encoded = {}
        for c, enc in self.encoders_.items():
            values = X[c]
            if c in self.vectorizers_:
                values = self.vectorizers_[c].transform(values.fillna("").astype(str))
            encoded[c] = self._apply_encoder(c, enc, values)
        return self._features(X, encoded).reindex(columns=self.feature_names_, fill_value=0.0)

    def _features(self, X: pd.DataFrame, encoded: dict[str, np.ndarray]) -> pd.DataFrame:
        parts: dict[str, Any] = {}
        for col, kind in self.kinds_.items():
            s = X[col]
            if kind == "numeric":
                parts[col] = pd.to_numeric(s, errors="coerce").astype(float)
                if col in self.missing_:
                    parts[f"{col}__missing"] = s.isna().astype(float)
            elif kind == "category":
                values = s.astype("string").astype(object)
                known = values.isin(self.categories_[col]) & s.notna()  # unseen -> missing
                parts[col] = pd.Categorical(values.where(known, None), categories=self.categories_[col])
            elif kind == "date":
                d = _parse_dates(s)
                if d is None:  # a test column that no longer parses: all missing
                    d = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
                for name, part in (("year", "year"), ("month", "month"), ("day", "day"),
                                   ("dayofweek", "day_of_week"), ("hour", "hour")):
                    parts[f"{col}__{name}"] = getattr(d.dt, part).astype(float)
                parts[f"{col}__time"] = (d - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0
            elif kind in ("high_card", "text"):
                if kind == "high_card":
                    parts[f"{col}__freq"] = s.astype(str).map(self.counts_[col]).astype(float).fillna(0.0)
                else:
                    text = s.fillna("").astype(str)
                    parts[f"{col}__len"] = text.str.len().astype(float)
                    parts[f"{col}__words"] = text.str.count(r"\w+").astype(float)
                if col in encoded:
                    enc = encoded[col]
                    # Binary and regression targets give one column; drop the redundant last class.
                    keep = enc.shape[1] if enc.shape[1] == 1 else enc.shape[1] - 1
                    tag = "te" if kind == "high_card" else "tfidf"
                    for j in range(keep):
                        parts[f"{col}__{tag}{j if enc.shape[1] > 1 else ''}"] = enc[:, j]
            if kind in ("high_card", "text") and X[col].isna().any() or col in self.missing_:
                parts.setdefault(f"{col}__missing", s.isna().astype(float))
        return pd.DataFrame(parts, index=X.index)
