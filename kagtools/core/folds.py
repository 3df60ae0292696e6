"""Folds: made once from scikit-learn splitters, written to ``runs/<slug>/folds.csv``, shared.

``folds.csv`` has one row per (training row, repeat): ``id, repeat, fold``. Beside it,
``folds.json`` records the scheme, a fingerprint of the data it was made from and the folds'
own hash. Pointed at other data or another scheme, the folds are rebuilt, never reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import model_selection

from kagtools.core.io import read_json, write_csv, write_json, write_parquet
from kagtools.core.registry import Registry
from kagtools.core.spec import CompetitionSpec, CVScheme
from kagtools.errors import KagtoolsError

__all__ = ["Folds", "Splitter", "SPLITTERS", "make_folds", "ensure_folds", "recorded_folds", "TARGETS_FILE", "data_fingerprint", "changed_files", "time_ordered", "inner_holdout"]


@dataclass(frozen=True)
class Splitter:
    """A scikit-learn splitter class, and whether it takes ``y`` (stratification) and groups."""

    cls: type
    wants_y: bool = False
    wants_groups: bool = False


SPLITTERS: Registry[Splitter] = Registry("cv.splitter")
for _cls, _y, _g in ((model_selection.KFold, False, False), (model_selection.StratifiedKFold, True, False),
                     (model_selection.GroupKFold, False, True), (model_selection.StratifiedGroupKFold, True, True),
                     (model_selection.TimeSeriesSplit, False, False)):
    SPLITTERS.add(_cls.__name__, Splitter(_cls, _y, _g))


def inner_holdout(n: int, *, frac: float = 0.1, seed: int = 0,
                  stratify: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (train, holdout) positions, for early stopping inside a fold.

    The holdout is carved from the *training* fold so the fold that is scored is never used to
    choose an epoch (or a booster's rounds).
    """
    idx = np.arange(n)
    try:
        tr, ho = model_selection.train_test_split(idx, test_size=frac, random_state=seed, stratify=stratify)
    except ValueError:  # a class too small to stratify: fall back to a plain random split
        tr, ho = model_selection.train_test_split(idx, test_size=frac, random_state=seed)
    return np.sort(tr), np.sort(ho)


def time_ordered(scheme: dict | None) -> bool:
    """Whether folds made with ``scheme`` (a ``CVScheme.as_dict()``) follow time: each fold is
    validated after the folds before it and may learn only from them."""
    return (scheme or {}).get("splitter") == "TimeSeriesSplit"


@dataclass(frozen=True)
class Folds:
    """Fold assignments: ``table`` has columns ``id, repeat, fold`` (fold -1: never validated)."""

    table: pd.DataFrame
    scheme: dict
    hash: str
    fingerprint: str | None = None  # of the data the folds were made from

    @property
    def n_repeats(self) -> int:
        return int(self.table["repeat"].max()) + 1

    @property
    def n_splits(self) -> int:
        return int(self.table["fold"].max()) + 1

    def assignments(self, ids: pd.Series, repeat: int = 0) -> np.ndarray:
        """The fold of each id in ``ids`` (same order), for one repeat."""
        t = self.table[self.table["repeat"] == repeat].set_index("id")["fold"]
        key = ids.astype(t.index.dtype) if t.index.dtype != ids.dtype else ids
        folds = t.reindex(key.values)
        if folds.isna().any():
            missing = key[folds.isna().values].iloc[0]
            raise KagtoolsError(f"folds: id {missing!r} has no fold; rebuild with `kagtools folds`")
        return folds.to_numpy(dtype=int)

    def splits(self, ids: pd.Series):
        """Yield ``(repeat, fold, train_idx, valid_idx)`` positional indices into ``ids``.

        Time-ordered folds (``TimeSeriesSplit``) train on every earlier row, the first block
        that is never validated (fold -1) included; other schemes on every other fold.
        """
        ordered = time_ordered(self.scheme)
        for r in range(self.n_repeats):
            assign = self.assignments(ids, r)
            for f in range(self.n_splits):
                valid = np.flatnonzero(assign == f)
                if len(valid) == 0:
                    continue
                train = np.flatnonzero(assign < f) if ordered else np.flatnonzero((assign != f) & (assign >= 0))
                yield r, f, train, valid


def data_fingerprint(train: pd.DataFrame, spec: CompetitionSpec, files: dict[str, str] | None = None) -> str:
    """A hash of the training table's ids, targets and columns (not of its path) and, when
    given, of the data files' content (``CompetitionData.fingerprints``): runs made on data
    whose content has changed since are stale even where the folds are the same."""
    h = hashlib.sha256()
    h.update(",".join(map(str, train.columns)).encode())
    h.update(pd.util.hash_pandas_object(train[[spec.id_col, *spec.target_cols]], index=False).values.tobytes())
    if files:
        h.update(json.dumps(files, sort_keys=True).encode())
    return h.hexdigest()[:16]


#: ``runs/<slug>/data.json``: each data fingerprint seen, with its files' hashes, so a stale run
#: can be told apart by what changed.
DATA_LEDGER = "data.json"


def changed_files(run_root: Path, old: str | None, new: dict[str, str]) -> list[str]:
    """The data files whose content differs between fingerprint ``old`` (from the ledger) and the
    current files ``new``; every current file when ``old`` was never recorded."""
    path = run_root / DATA_LEDGER
    seen = read_json(path).get(old or "", {}) if path.is_file() else {}
    return sorted(name for name in {*seen, *new} if seen.get(name) != new.get(name)) if seen else sorted(new)


def _stratify_labels(train: pd.DataFrame, cv: CVScheme) -> np.ndarray | None:
    col = cv.stratify
    if col is None:
        return None
    if col not in train.columns:
        raise KagtoolsError(f"cv.stratify: column '{col}' is not in train.csv")
    y = train[col]
    if pd.api.types.is_float_dtype(y) and y.nunique() > cv.stratify_bins:
        y = pd.qcut(y.rank(method="first"), cv.stratify_bins, labels=False)
    return pd.factorize(y)[0]


def make_folds(train: pd.DataFrame, spec: CompetitionSpec) -> pd.DataFrame:
    """Assign every training row a fold in each repeat, with the spec's splitter."""
    cv = spec.cv
    kind = SPLITTERS.get(cv.splitter)
    cls = kind.cls
    y = _stratify_labels(train, cv)
    if kind.wants_y and y is None:
        raise KagtoolsError(f"cv.splitter {cv.splitter} needs cv.stratify (a column to stratify on)")
    groups = None
    if kind.wants_groups:
        if not cv.group or cv.group not in train.columns:
            raise KagtoolsError(f"cv.splitter {cv.splitter} needs cv.group naming a column of train.csv")
        groups = train[cv.group].astype(str).to_numpy()
    order = np.arange(len(train))
    if cv.time:
        if cv.time not in train.columns:
            raise KagtoolsError(f"cv.time: column '{cv.time}' is not in train.csv")
        order = np.argsort(train[cv.time].to_numpy(), kind="stable")
    X = np.zeros((len(train), 1))
    split_y = y[order] if y is not None else None
    split_g = groups[order] if groups is not None else None
    frames = []
    for r in range(cv.n_repeats):
        seed = cv.seed + r
        if cls is model_selection.TimeSeriesSplit:
            splitter = cls(n_splits=cv.n_splits)
        elif cls is model_selection.GroupKFold:
            try:  # scikit-learn >= 1.6 shuffles groups when asked
                splitter = cls(n_splits=cv.n_splits, shuffle=True, random_state=seed)
            except TypeError:
                splitter = cls(n_splits=cv.n_splits)
        else:
            splitter = cls(n_splits=cv.n_splits, shuffle=True, random_state=seed)
        fold = np.full(len(train), -1, dtype=int)
        try:
            for f, (_, valid) in enumerate(splitter.split(X, split_y, split_g)):
                fold[order[valid]] = f
        except ValueError as exc:  # e.g. more folds than rows, groups or members of every class
            raise KagtoolsError(f"cv: {cv.splitter} with n_splits = {cv.n_splits} cannot split these "
                                f"{len(train)} rows ({str(exc).strip().splitlines()[0]}); set fewer folds in "
                                f"the spec's [cv]") from None
        frames.append(pd.DataFrame({"id": train[spec.id_col].to_numpy(), "repeat": r, "fold": fold}))
    return pd.concat(frames, ignore_index=True)


def _hash_table(table: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(table, index=False).values.tobytes()).hexdigest()[:12]


#: ``runs/<slug>/targets.parquet``: the training rows' ids and targets, written with the folds.
TARGETS_FILE = "targets.parquet"


def recorded_folds(run_root: Path, scheme: dict, fingerprint: str | None = None) -> Folds | None:
    """The folds last written to ``run_root`` if they were made with ``scheme`` (a
    ``CVScheme.as_dict()``) and, if given, from data with ``fingerprint``; else None."""
    path, meta_path = run_root / "folds.csv", run_root / "folds.json"
    if not (path.is_file() and meta_path.is_file()):
        return None
    meta = read_json(meta_path)
    if meta.get("scheme") != scheme or fingerprint is not None and meta.get("data") != fingerprint:
        return None
    return Folds(table=pd.read_csv(path), scheme=scheme, hash=meta.get("hash"), fingerprint=meta.get("data"))


def ensure_folds(train: pd.DataFrame, spec: CompetitionSpec, run_root: Path, *, rebuild: bool = False,
                 files: dict[str, str] | None = None) -> Folds:
    """Load ``folds.csv`` if it was made from this data and scheme; otherwise (re)build it.

    ``files`` (the data files' content hashes) go into the fingerprint every run records."""
    path, meta_path = run_root / "folds.csv", run_root / "folds.json"
    scheme = spec.cv.as_dict()
    fingerprint = data_fingerprint(train, spec, files)
    if files:
        ledger = read_json(run_root / DATA_LEDGER) if (run_root / DATA_LEDGER).is_file() else {}
        if ledger.get(fingerprint) != files:
            write_json(run_root / DATA_LEDGER, {**ledger, fingerprint: files})
    folds = None if rebuild else recorded_folds(run_root, scheme, fingerprint)
    targets = run_root / TARGETS_FILE  # what blending recorded runs needs without the data folder
    if not targets.is_file() or folds is None:
        write_parquet(targets, train[[spec.id_col, *spec.target_cols]])
    if folds is not None and _hash_table(folds.table) == folds.hash:
        return folds
    write_csv(path, make_folds(train, spec))
    # Re-read so the hash is of what every later reader sees (CSV round-trip of the ids).
    table = pd.read_csv(path)
    digest = _hash_table(table)
    write_json(meta_path, {"scheme": scheme, "data": fingerprint, "hash": digest, "rows": len(train)})
    return Folds(table=table, scheme=scheme, hash=digest, fingerprint=fingerprint)
