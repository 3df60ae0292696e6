"""The validation-split advisor: a CV scheme designed from the data, with its reasons.

It looks for what makes a random K-fold lie:

- **groups**: a column whose values repeat over many rows (a user, a patient, an anchor
  phrase). Rows of one entity let a model memorise entity-specific patterns, which a random
  split rewards and a grouped split does not. The rule (:func:`advise`):

  1. the test holds *new* entities (under half its rows share a train value): group
     (``GroupKFold``), whatever its size;
  2. the test is large enough to stand for the real one (at least 200 rows and 2% of train;
     :data:`MIN_TEST_ROWS`, :data:`MIN_TEST_SHARE`) and shares the entities: a random split
     draws validation rows the way the test was drawn (MovieLens: a random 10% of ratings);
  3. otherwise the visible test cannot tell (Kaggle often shows a few public rows and scores
     a hidden test of unseen entities, e.g. 36 rows in U.S. Patent's test.csv), so a quick
     leak probe decides (:func:`leak_probe`): a linear model on one-hot values and character
     n-grams of every column, scored (R²) under a shuffled and a grouped K-fold. When the
     shuffled split scores :data:`MIN_LEAK` or more above the grouped one, memorising
     entities inflates a random split's score: group.

  Limits: a large test that shares entities only by accident still gets a random split; the
  probe is a linear model, so a leak that only a non-linear model exploits can be missed
  (then ``--group COL`` forces the grouping);
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

from kagtools.core.spec import CompetitionSpec, CVScheme
from kagtools.errors import KagtoolsError
from kagtools.features.auto import _parse_dates, column_kinds, target_matrix

__all__ = ["Advice", "GroupCandidate", "advise", "adversarial_auc", "leak_probe", "naive_scheme", "compare_schemes",
           "MIN_LEAK", "MIN_TEST_ROWS", "MIN_TEST_SHARE"]

# A visible test stands for the real one when it has this many rows and this share of train's.
MIN_TEST_ROWS, MIN_TEST_SHARE = 200, 0.02
# Probe R² a shuffled split must gain over a grouped one to call the grouping a leak.
MIN_LEAK = 0.02
_PROBE_CANDIDATES = 3

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
    leak: float | None = None  # probe R² under a shuffled split minus under a split grouped by it
    probe: tuple[float, float] | None = None  # (shuffled, grouped) probe R²

    def describe(self) -> str:
        seen = "" if self.test_overlap is None else f"; {self.test_overlap:.0%} of test rows share a train value"
        return (f"'{self.column}': {self.n_values} values, {self.rows_per_value:.1f} rows each, "
                f"target similarity within a value r={self.target_similarity:.2f}{seen}")

    def describe_probe(self) -> str:
        naive, grouped = self.probe
        return (f"a quick model (ridge on one-hot values and character n-grams) scores R² {naive:.3f} under a "
                f"shuffled split and {grouped:.3f} grouped by '{self.column}' (leak {self.leak:+.3f})")


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


def _probe_features(train: pd.DataFrame, cols: list[str], entity_cols: list[str]):
    """Sparse features a linear model can memorise entities with: one-hot values of every
    non-numeric (or entity) column, character n-grams of its text, standardised numbers."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import OneHotEncoder

    blocks = []
    for col in cols:
        s = train[col]
        if pd.api.types.is_numeric_dtype(s) and col not in entity_cols:
            x = s.astype(float)
            x = (x.fillna(x.median()) - x.mean()) / (x.std() or 1.0)
            blocks.append(sparse.csr_matrix(x.fillna(0.0).to_numpy()[:, None]))
            continue
        text = s.astype(str).fillna("")
        blocks.append(OneHotEncoder(handle_unknown="ignore", min_frequency=2, max_categories=2000,
                                    dtype=np.float32).fit_transform(text.to_frame()))
        if text.str.len().mean() > 3:  # words: shared character n-grams tie related phrases together
            tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=3, max_features=5000,
                                    sublinear_tf=True, dtype=np.float32)
            blocks.append(tfidf.fit_transform(text))
    return sparse.hstack(blocks).tocsr()


def leak_probe(train: pd.DataFrame, *, id_col: str, target_cols: list[str], task: str, groups: list[str],
               n_splits: int = 3, max_rows: int = 12_000, seed: int = 0) -> dict[str | None, tuple[float, float]]:
    """R² (mean, std) of a quick linear model under a shuffled K-fold (key ``None``) and under
    K-folds grouped by each column of ``groups`` (keyed by column).

    The model (ridge on :func:`_probe_features`; classes as one-hot targets) is fast (seconds on
    36k rows) and able to memorise entities: when it scores clearly better under the shuffled
    split, rows of one entity in both training and validation are what it scores on.
    Vectorisers see all sampled rows (no targets). At most ``max_rows`` rows, drawn at random.
    """
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GroupKFold, KFold

    if len(train) > max_rows:
        train = train.sample(max_rows, random_state=seed)
    train = train.reset_index(drop=True)
    Y = _target_vector(train, target_cols, task)
    Y = Y[:, :-1] if Y.shape[1] > 2 and task == "multiclass" else Y  # K-1 one-hot columns say it all
    cols = [c for c in train.columns if c != id_col and c not in target_cols]
    X = _probe_features(train, cols, groups)

    def score(splits) -> tuple[float, float]:
        r2 = []
        for tr, va in splits:
            model = Ridge(alpha=3.0, random_state=seed).fit(X[tr], Y[tr])
            r2.append(r2_score(Y[va], model.predict(X[va]).reshape(len(va), -1)))
        return float(np.mean(r2)), float(np.std(r2))

    out = {None: score(KFold(n_splits, shuffle=True, random_state=seed).split(X))}
    for col in groups:
        out[col] = score(GroupKFold(n_splits, shuffle=True, random_state=seed).split(X, groups=train[col].astype(str)))
    return out


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
        after = float((t_test.dropna() >= t_train.quantile(0.95)).mean())
        if after >= 0.9:
            return col, True, (f"'{col}' is a time and {after:.0%} of test rows come after 95% of train rows: "
                               f"validate on later rows than the model trains on (TimeSeriesSplit)")
        return col, False, (f"'{col}' is a time but test rows fall inside the training period "
                            f"({after:.0%} after it): a random split matches how the test was drawn")
    return None, None, None


def adversarial_auc(train: pd.DataFrame, test: pd.DataFrame, *, id_col: str, target_cols: list[str],
                    max_rows: int = 5000, seed: int = 0) -> tuple[float, pd.Series]:
    """Adversarial validation: how well a LightGBM tells test rows from train rows (the drift
    figure of both the EDA report and the split advisor).

    Returns the out-of-fold ROC AUC (about 0.5: the test looks like train; well above it, drift
    that CV will not see) and each column's share of the model's gain, largest first (empty,
    with AUC 0.5, when no column or too few rows are left). At most ``max_rows`` rows of each.
    """
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    cols = [c for c in test.columns if c in train.columns and c != id_col and c not in target_cols]
    a = train[cols].sample(min(len(train), max_rows), random_state=seed)
    b = test[cols].sample(min(len(test), max_rows), random_state=seed)
    X = pd.concat([a, b], ignore_index=True)
    # Row ids and free text tell train from test by construction, not by drift: left out.
    kinds = column_kinds(X)
    cols = [c for c in cols if kinds[c] not in ("id", "text", "constant")]
    if not cols or min(len(a), len(b)) < 10:
        return 0.5, pd.Series(dtype=float)
    X = X[cols].copy()
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c]):
            # Frequencies, not codes: codes in order of appearance would tell train from test.
            X[c] = X[c].astype(str).map(X[c].astype(str).value_counts(normalize=True))
    X = X.astype(float).replace([np.inf, -np.inf], np.nan)  # infinities read as missing (the EDA's reading)
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    pred = np.zeros(len(y))
    gain = pd.Series(0.0, index=cols)
    for tr, va in StratifiedKFold(3, shuffle=True, random_state=seed).split(X, y):
        model = lgb.LGBMClassifier(n_estimators=60, learning_rate=0.15, num_leaves=15, colsample_bytree=0.3,
                                   n_jobs=1, random_state=seed, verbose=-1, importance_type="gain")
        model.fit(X.iloc[tr], y[tr])
        pred[va] = model.predict_proba(X.iloc[va])[:, 1]
        gain += model.feature_importances_
    share = gain / (gain.sum() or 1.0)
    return float(roc_auc_score(y, pred)), share.sort_values(ascending=False, kind="stable")


def advise(train: pd.DataFrame, test: pd.DataFrame | None, *, id_col: str, target_cols: list[str], task: str,
           n_splits: int = 5, seed: int = 42, group: str | None = None, drift: bool = True,
           probe: bool | None = None) -> Advice:
    """Propose a CV scheme for this data, with the reasons (see the module's rule for groups).

    ``group`` forces a group column. ``probe``: ``None`` runs the leak probe only on group
    candidates the test cannot settle, ``True`` also on those the test shares (to report how
    much a random split gains from memorising them), ``False`` never.
    """
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
    group_col = group
    test_speaks = test is not None and len(test) >= max(MIN_TEST_ROWS, MIN_TEST_SHARE * n)
    new_entities = [g for g in groups if g.test_overlap is not None and g.test_overlap < 0.5]
    shared = [g for g in groups if test_speaks and g.test_overlap is not None and g.test_overlap >= 0.5]
    undecided = [g for g in groups if g not in new_entities and g not in shared]
    to_probe = undecided + (shared if probe else [])
    if group_col is None and not new_entities and probe is not False and to_probe:
        to_probe = to_probe[:_PROBE_CANDIDATES]
        scores = leak_probe(train, id_col=id_col, target_cols=target_cols, task=task, seed=seed,
                            groups=[g.column for g in to_probe])
        naive = scores[None][0]
        probed = {g.column: replace(g, probe=(naive, scores[g.column][0]), leak=naive - scores[g.column][0])
                  for g in to_probe}
        groups = [probed.get(g.column, g) for g in groups]
        undecided = [probed.get(g.column, g) for g in undecided]
        shared = [probed.get(g.column, g) for g in shared]
    advice.groups = groups
    for g in new_entities:
        if group_col is None:
            group_col = g.column
            reasons.append(f"group {g.describe()}: the test holds new entities, so rows of one value stay "
                           f"in one fold")
    for g in shared:
        memo = (f"; {g.describe_probe()}: a random split rewards memorising these entities, which the test "
                f"rewards too" if g.leak is not None else "")
        reasons.append(f"group candidate {g.describe()}: the test ({len(test)} rows) shares these entities, so a "
                       f"random split matches it{memo} (pass --group {g.column} to keep them apart anyway)")
    leaks = sorted((g for g in undecided if g.leak is not None), key=lambda g: -g.leak)
    for g in leaks:
        if group_col is None and g.leak >= MIN_LEAK:
            group_col = g.column
            why = ("the test has no such column" if g.test_overlap is None else
                   f"the visible test ({len(test)} rows) is too small to show whether the scored test holds "
                   f"new entities")
            reasons.append(f"group {g.describe()}; {why}, "
                           f"and {g.describe_probe()}: a random split lets a model memorise entities and "
                           f"overstates the score, so rows of one value stay in one fold")
        else:
            reasons.append(f"group candidate {g.describe()}: {g.describe_probe()}, "
                           + ("no leak worth grouping for" if g.leak < MIN_LEAK else f"less than '{group_col}'")
                           + f" (pass --group {g.column} to group anyway)")
    for g in undecided:
        if g.leak is None and g.column != group_col:
            reasons.append(f"group candidate {g.describe()}: not probed (pass --group {g.column} to group by it)")
    if group and not any(g.column == group for g in groups):
        reasons.append(f"group '{group}' (given)")

    time_col, after, why = find_time(train, test, id_col=id_col, target_cols=target_cols)
    advice.time_col, advice.test_after_train = time_col, after
    if why:
        reasons.append(why)

    if after:
        scheme = CVScheme(splitter="TimeSeriesSplit", n_splits=n_splits, n_repeats=1, seed=seed, time=time_col)
    elif group_col:
        if stratify is None and len(target_cols) == 1:
            # Groups differ in size and level: stratifying on the target's quantile bins keeps
            # the folds' target distributions alike (one target column only).
            stratify = target
            reasons.append(f"groups make folds uneven: they are stratified on '{target}' "
                           f"(its values, or quantile bins when it has many)")
        splitter = "StratifiedGroupKFold" if stratify else "GroupKFold"
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
        # The EDA report's call (same function, same seed): both print one figure, to 3 decimals.
        auc, gain = adversarial_auc(train, test, id_col=id_col, target_cols=target_cols, seed=seed)
        top = [str(c) for c in gain[gain > 0].index[:3]]
        if not len(gain):
            reasons.append("drift: not measured (train or test has fewer than 10 rows, or no shared column)")
        else:
            advice.drift_auc = auc
            reasons.append(f"drift: adversarial validation tells test from train with AUC {auc:.3f} (most by "
                           f"{', '.join(top)}): the test differs, expect the leaderboard to differ from CV"
                           if auc >= 0.7 else f"drift: adversarial validation AUC {auc:.3f}: train and test look alike")
    advice.reasons = reasons
    return advice


def naive_scheme(spec: CompetitionSpec) -> CVScheme:
    """Shuffled K-fold (stratified for classes) with the spec's folds, seed and repeats."""
    if spec.task.has_classes:
        return replace(spec.cv, splitter="StratifiedKFold", stratify=spec.target, group=None, time=None)
    return replace(spec.cv, splitter="KFold", stratify=None, group=None, time=None)


def compare_schemes(spec: CompetitionSpec, data, tset, schemes: dict[str, CVScheme], *, model: str | None = None,
                    params: dict[str, Any] | None = None, n_jobs: int = 1) -> list[dict[str, Any]]:
    """CV of one model under each scheme (same features ``tset``), for the split report: a scheme
    scoring much better than the proposed one is the optimism the proposed split removes.

    ``model`` defaults to LightGBM (200 trees), or a random forest for several targets.
    """
    from kagtools.core.engine import cross_validate
    from kagtools.core.folds import ensure_folds
    if model is None:
        model, params = ("lgbm", {"n_estimators": 200}) if len(spec.target_cols) == 1 else ("rf", {"n_estimators": 200})
    rows = []
    with tempfile.TemporaryDirectory(prefix="kagtools-compare-") as tmp:
        for name, scheme in schemes.items():
            s = replace(spec, cv=scheme)
            folds = ensure_folds(data.train, s, Path(tmp) / name)
            run = cross_validate(s, tset, folds, model, params or {}, root=Path(tmp) / name,
                                 n_jobs=n_jobs, save_models=False)
            sc = run.record.scores
            rows.append({"scheme": name, "model": model, "splitter": scheme.splitter, "group": scheme.group or "-",
                         "time": scheme.time or "-", "cv": sc["cv"], "std": sc["cv_std"]})
    return rows
