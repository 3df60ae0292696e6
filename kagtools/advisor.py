"""The validation-split advisor: a CV scheme designed from the data, with its reasons.

It looks for what makes a random K-fold lie:

- **groups**: a column whose values repeat over many rows (a user, a patient, an anchor
  phrase) and whose rows resemble each other in the target. When the test holds *new*
  entities, rows of one entity must stay in one fold (``GroupKFold``); when the test shares
  the training entities, a random split draws validation rows the way the test was drawn;
- **time**: a date/time column with the test after the training period: then validation must
  come after training too (``TimeSeriesSplit``);
- **imbalance**: classes are stratified so every fold holds each class's share;
- **drift**: adversarial validation (a model telling train from test rows): an AUC well above
  0.5 means the test differs from train and names the columns that differ most.

:func:`compare_schemes` measures how CV scores move between the naive and the proposed split.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kagtools.autofeatures import _parse_dates, target_matrix
from kagtools.errors import KagtoolsError
from kagtools.spec import CompetitionSpec, CVScheme

__all__ = ["Advice", "GroupCandidate", "advise", "adversarial_auc", "naive_scheme", "compare_schemes"]

_ENTITY_NAME = re.compile(r"(^|_|\b)(id|user|customer|client|patient|subject|group|session|store|shop|"
                          r"item|product|anchor|author|account|device|household|site|player|team)s?($|_|\b)",
                          re.I)


def _entity_like(name) -> bool:
    """``user_id``, ``userId``, ``customer``: a name that says the column identifies an entity."""
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    return bool(_ENTITY_NAME.search(snake))


_TIME_NAME = re.compile(r"date|time|timestamp|datetime|day|month|year|period|week", re.I)


@dataclass(frozen=True)
class GroupCandidate:
    """A column whose rows form entities, with the evidence."""

    column: str
    n_values: int
    rows_per_value: float
    target_similarity: float  # correlation of each row's target with its group's other rows' mean
    test_overlap: float | None  # share of test rows whose value appears in train

    def describe(self) -> str:
        seen = "" if self.test_overlap is None else f"; {self.test_overlap:.0%} of test rows share a train value"
        return (f"'{self.column}': {self.n_values} values, {self.rows_per_value:.1f} rows each, "
                f"target similarity within a value r={self.target_similarity:.2f}{seen}")


@dataclass
class Advice:
    """The proposed scheme and what it was based on."""

    scheme: CVScheme
    reasons: list[str] = field(default_factory=list)
    groups: list[GroupCandidate] = field(default_factory=list)
    time_col: str | None = None
    test_after_train: bool | None = None
    minority_share: float | None = None
    drift_auc: float | None = None
    drift_columns: list[str] = field(default_factory=list)

    def explain(self) -> str:
        s = self.scheme
        head = f"proposed: {s.splitter}, {s.n_splits} folds x {s.n_repeats} repeat(s), seed {s.seed}"
        extras = [f"{k} {getattr(s, k)}" for k in ("stratify", "group", "time") if getattr(s, k)]
        return "\n".join([head + (f" ({', '.join(extras)})" if extras else "")] + [f"  - {r}" for r in self.reasons])


def _target_vector(train: pd.DataFrame, target_cols: list[str], task: str) -> np.ndarray:
    y = train[target_cols]
    if task in ("binary", "multiclass"):
        codes = pd.factorize(y.iloc[:, 0])[0]
        return target_matrix(codes if codes.max() > 1 else codes.astype(float))
    return y.to_numpy(dtype=float)


def _group_similarity(groups: pd.Series, Y: np.ndarray) -> float:
    """Mean over target columns of corr(y_i, mean of y over the *other* rows of i's group)."""
    codes = pd.factorize(groups.astype(str).fillna("<NA>"))[0]
    counts = np.bincount(codes)
    in_group = counts[codes] > 1
    if in_group.sum() < 10:
        return 0.0
    sims = []
    for j in range(Y.shape[1]):
        y = Y[:, j]
        sums = np.bincount(codes, weights=y)
        loo = (sums[codes] - y)[in_group] / (counts[codes][in_group] - 1)
        if np.std(loo) > 0 and np.std(y[in_group]) > 0:
            sims.append(float(np.corrcoef(loo, y[in_group])[0, 1]))
    return float(np.mean(sims)) if sims else 0.0


def find_groups(train: pd.DataFrame, test: pd.DataFrame | None, *, id_col: str, target_cols: list[str],
                task: str, n_splits: int = 5, min_similarity: float = 0.2) -> list[GroupCandidate]:
    """Columns whose values repeat over rows and whose rows share their target, best first."""
    Y = _target_vector(train, target_cols, task)
    found = []
    n = len(train)
    for col in train.columns:
        if col == id_col or col in target_cols:
            continue
        s = train[col]
        if pd.api.types.is_numeric_dtype(s) and not _entity_like(col):
            continue  # numbers are measurements or counts unless named like an entity (user_id)
        if pd.api.types.is_float_dtype(s) and not np.all(np.mod(s.dropna(), 1) == 0):
            continue
        k, known = s.nunique(), int(s.notna().sum())
        if k < max(20, 2 * n_splits) or known / k < 2 or known < n / 2:
            continue
        sim = _group_similarity(s, Y)
        if sim < min_similarity and not _entity_like(col):
            continue  # repeated values that neither name an entity nor share a target
        overlap = None
        if test is not None and col in test.columns:
            t = test[col].dropna().astype(str)
            overlap = float(t.isin(set(s.dropna().astype(str))).mean()) if len(t) else None
        found.append(GroupCandidate(str(col), int(k), known / k, sim, overlap))
    return sorted(found, key=lambda g: -g.target_similarity)


def _as_time(s: pd.Series) -> pd.Series | None:
    if pd.api.types.is_numeric_dtype(s):
        return s.astype(float) if _TIME_NAME.search(str(s.name)) else None
    parsed = _parse_dates(s)
    return None if parsed is None else (parsed - pd.Timestamp("1970-01-01")).dt.total_seconds()


def find_time(train: pd.DataFrame, test: pd.DataFrame | None, *, id_col: str,
              target_cols: list[str]) -> tuple[str | None, bool | None, str | None]:
    """A date/time column, whether the test comes after train in it, and the reason."""
    for col in train.columns:
        if col == id_col or col in target_cols or test is None or col not in test.columns:
            continue
        t_train, t_test = _as_time(train[col]), _as_time(test[col])
        if t_train is None or t_test is None or t_train.nunique() < 10:
            continue
        cut = t_train.quantile(0.95)
        after = float((t_test.dropna() >= cut).mean())
        if after >= 0.9:
            return col, True, (f"'{col}' is a time and {after:.0%} of test rows come after 95% of train rows: "
                               f"validate on later rows than the model trains on (TimeSeriesSplit)")
        return col, False, (f"'{col}' is a time but test rows fall inside the training period "
                            f"({after:.0%} after it): a random split matches how the test was drawn")
    return None, None, None


def adversarial_auc(train: pd.DataFrame, test: pd.DataFrame, *, id_col: str, target_cols: list[str],
                    max_rows: int = 5000, seed: int = 0) -> tuple[float, list[str]]:
    """Cross-validated AUC of a LightGBM telling test rows from train rows, and its top columns."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from kagtools.autofeatures import column_kinds

    cols = [c for c in test.columns if c in train.columns and c != id_col and c not in target_cols]
    a = train[cols].sample(min(len(train), max_rows), random_state=seed)
    b = test[cols].sample(min(len(test), max_rows), random_state=seed)
    X = pd.concat([a, b], ignore_index=True)
    # Row ids and free text tell train from test by construction, not by drift: left out.
    kinds = column_kinds(X)
    cols = [c for c in cols if kinds[c] not in ("id", "text", "constant")]
    if not cols:
        return 0.5, []
    X = X[cols].copy()
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            # Frequencies, not codes: codes in order of appearance would tell train from test.
            X[c] = X[c].astype(str).map(X[c].astype(str).value_counts(normalize=True))
    X = X.astype(float)
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    if min(len(a), len(b)) < 10:
        return 0.5, []
    pred = np.zeros(len(y))
    gain = np.zeros(len(cols))
    for tr, va in StratifiedKFold(3, shuffle=True, random_state=seed).split(X, y):
        model = lgb.LGBMClassifier(n_estimators=60, learning_rate=0.15, num_leaves=15, colsample_bytree=0.3,
                                   n_jobs=1, random_state=seed, verbose=-1, importance_type="gain")
        model.fit(X.iloc[tr], y[tr])
        pred[va] = model.predict_proba(X.iloc[va])[:, 1]
        gain += model.feature_importances_
    top = [cols[i] for i in np.argsort(-gain)[:3] if gain[i] > 0]
    return float(roc_auc_score(y, pred)), top


def advise(train: pd.DataFrame, test: pd.DataFrame | None, *, id_col: str, target_cols: list[str], task: str,
           n_splits: int = 5, seed: int = 42, group: str | None = None, drift: bool = True) -> Advice:
    """Propose a CV scheme for this data, with the reasons. ``group`` forces a group column."""
    if group is not None and group not in train.columns:
        raise KagtoolsError(f"--group: column '{group}' is not in train.csv")
    n = len(train)
    reasons: list[str] = []
    classification = task in ("binary", "multiclass")
    target = target_cols[0]
    n_repeats = 3 if n < 2000 else 1
    advice = Advice(scheme=CVScheme())
    if n_repeats > 1:
        reasons.append(f"{n} rows: one K-fold split is noisy, so it is repeated {n_repeats} times with new seeds")
    stratify = None
    if classification:
        shares = train[target].value_counts(normalize=True)
        advice.minority_share = float(shares.min())
        stratify = target
        state = "imbalanced" if shares.min() < 0.5 / len(shares) else "classes"
        reasons.append(f"{state}: smallest class '{shares.idxmin()}' is {shares.min():.1%} of rows; folds are "
                       f"stratified on '{target}' so each holds every class's share")

    groups = find_groups(train, test, id_col=id_col, target_cols=target_cols, task=task, n_splits=n_splits)
    advice.groups = groups
    group_col = group
    for g in groups:
        if g.test_overlap is not None and g.test_overlap >= 0.5:
            reasons.append(f"group candidate {g.describe()}: the test shares these entities, so a random split "
                           f"matches it (pass --group {g.column} to keep them apart anyway)")
        elif group_col is None:
            group_col = g.column
            reasons.append(f"group {g.describe()}: the test holds new entities, so rows of one value stay "
                           f"in one fold")
    if group and not any(g.column == group for g in groups):
        reasons.append(f"group '{group}' (given)")

    time_col, after, why = find_time(train, test, id_col=id_col, target_cols=target_cols)
    advice.time_col, advice.test_after_train = time_col, after
    if why:
        reasons.append(why)

    if after:
        scheme = CVScheme(splitter="TimeSeriesSplit", n_splits=n_splits, n_repeats=1, seed=seed, time=time_col)
    elif group_col:
        splitter = "StratifiedGroupKFold" if classification else "GroupKFold"
        scheme = CVScheme(splitter=splitter, n_splits=n_splits, n_repeats=n_repeats, seed=seed,
                          stratify=stratify, group=group_col)
    elif classification:
        scheme = CVScheme(splitter="StratifiedKFold", n_splits=n_splits, n_repeats=n_repeats, seed=seed,
                          stratify=stratify)
    else:
        scheme = CVScheme(splitter="KFold", n_splits=n_splits, n_repeats=n_repeats, seed=seed)
        if not groups and not time_col:
            reasons.append("no groups or time order found: rows are exchangeable, plain shuffled K-fold")
    advice.scheme = scheme

    if drift and test is not None:
        auc, top = adversarial_auc(train, test, id_col=id_col, target_cols=target_cols, seed=seed)
        advice.drift_auc, advice.drift_columns = auc, top
        if auc >= 0.7:
            reasons.append(f"drift: adversarial validation tells test from train with AUC {auc:.2f} (most by "
                           f"{', '.join(top)}): the test differs, expect the leaderboard to differ from CV")
        else:
            reasons.append(f"drift: adversarial validation AUC {auc:.2f}: train and test look alike")
    advice.reasons = reasons
    return advice


def naive_scheme(spec: CompetitionSpec) -> CVScheme:
    """Shuffled K-fold (stratified for classes) with the spec's folds, seed and repeats."""
    if spec.task in ("binary", "multiclass"):
        return replace(spec.cv, splitter="StratifiedKFold", stratify=spec.target, group=None, time=None)
    return replace(spec.cv, splitter="KFold", stratify=None, group=None, time=None)


def compare_schemes(spec: CompetitionSpec, data, schemes: dict[str, CVScheme], *, model: str | None = None,
                    params: dict[str, Any] | None = None, n_jobs: int = 1) -> list[dict[str, Any]]:
    """CV of one model under each scheme (same features, same model), for the split report.

    ``model`` defaults to LightGBM (200 trees), or a random forest when there are several
    targets (LightGBM fits one).

    A scheme scoring much better than the proposed one is the optimism the proposed split
    removes (leakage between rows of one group, or the future predicting the past).
    """
    from kagtools.cv import cross_validate
    from kagtools.folds import ensure_folds
    from kagtools.pipeline import build_training_set

    tset = build_training_set(spec, data)
    if model is None:
        model, params = ("lgbm", {"n_estimators": 200}) if len(spec.target_cols) == 1 else ("rf", {"n_estimators": 200})
    rows = []
    with tempfile.TemporaryDirectory(prefix="kagtools-compare-") as tmp:
        for name, scheme in schemes.items():
            s = replace(spec, cv=scheme)
            folds = ensure_folds(data.train, s, Path(tmp) / name)
            run = cross_validate(s, tset, folds, model, params or {}, root=Path(tmp) / name,
                                 n_jobs=n_jobs, save_models=False)
            sc = run.meta["scores"]
            rows.append({"scheme": name, "model": model, "splitter": scheme.splitter, "group": scheme.group or "-",
                         "time": scheme.time or "-", "cv": sc["cv"], "std": sc["cv_std"]})
    return rows
