"""Level-1 predictions of several runs, aligned; blenders fitted within folds (nested).

For each repeat of the shared folds and each fold ``f``, a fresh blender is fitted on the OOF
predictions of the other folds and predicts fold ``f``: the blend's *nested* OOF, never scored
on the rows that fitted it. A blender fitted on all rows of the repeat gives the optimistic
*in-sample* score (reported beside it, never used to choose) and the test predictions
(averaged over repeats). For label metrics of binary tasks the decision threshold is chosen
the same way: on the fitting rows, applied to the held-out fold.

Folds in time order (``TimeSeriesSplit``) are blended walking forward: each fold's blender is
fitted on the earlier folds only, never on the future, and the earliest fold, with nothing
before it, gets the plain mean of the runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from kagtools.core.runs import Run
from kagtools.ensemble.blenders import Blender
from kagtools.ensemble.scoring import best_threshold
from kagtools.errors import KagtoolsError

__all__ = ["Level1", "NestedBlend", "load_level1", "nested_blend"]


@dataclass
class Level1:
    """Aligned level-1 predictions of ``m`` runs.

    ``keys`` is the OOF row frame (``id, repeat, fold``) every run shares, ``P`` the OOF
    predictions (``m x len(keys) x k``) in that order, ``test_ids``/``T`` the test ones.
    """

    run_ids: list[str]
    pred_cols: list[str]
    keys: pd.DataFrame
    P: np.ndarray
    test_ids: pd.Series | None = None
    T: np.ndarray | None = None

    def repeats(self) -> list[int]:
        return sorted(self.keys["repeat"].unique().tolist())


def _values(df: pd.DataFrame, base: pd.DataFrame, keys: list[str], cols: list[str], run_id: str) -> np.ndarray:
    # Runs made by the CV loop on the same folds store rows in the same order: no merge needed.
    if len(df) == len(base) and all(np.array_equal(df[k].to_numpy(), base[k].to_numpy()) for k in keys):
        return df[cols].to_numpy(dtype=float)
    merged = base[keys].merge(df[keys + cols], on=keys, how="left", validate="one_to_one")
    if merged[cols].isna().any().any():
        raise KagtoolsError(f"run {run_id} does not predict the same rows as the other runs")
    return merged[cols].to_numpy(dtype=float)


def load_level1(runs: list[Run]) -> Level1:
    """Align the OOF (and, when every run has them, test) predictions of ``runs``."""
    cols = runs[0].pred_cols
    base = runs[0].oof[["id", "repeat", "fold"]].reset_index(drop=True)
    P = np.stack([_values(r.oof, base, ["id", "repeat"], cols, r.run_id) for r in runs])
    test_ids, T = None, None
    if all(r.has_test for r in runs):
        tbase = runs[0].test[["id"]].reset_index(drop=True)
        T = np.stack([_values(r.test, tbase, ["id"], cols, r.run_id) for r in runs])
        test_ids = tbase["id"]
    return Level1([r.run_id for r in runs], cols, base, P, test_ids, T)


@dataclass
class NestedBlend:
    """What :func:`nested_blend` returns, rows in ``Level1.keys`` order."""

    nested: np.ndarray  # (rows x k) predictions of blenders fitted without each row's fold
    in_sample: np.ndarray  # (rows x k) predictions of the blender fitted on the whole repeat
    nested_threshold: np.ndarray | None  # per row: the threshold chosen without its fold
    in_sample_threshold: np.ndarray | None  # per row: the threshold chosen on its whole repeat
    test: np.ndarray | None  # (test rows x k), averaged over repeats
    weights: np.ndarray  # (m,) mean over repeats of the whole-repeat blenders' weights
    threshold: float | None  # for the test predictions
    features_share: float = 0.0


def nested_blend(blender: Blender, level1: Level1, y_enc: np.ndarray, ids: pd.Series, *,
                 metric: str, threshold: bool = False, X: pd.DataFrame | None = None,
                 X_test: pd.DataFrame | None = None, ordered: bool = False) -> NestedBlend:
    """Fit ``blender`` within folds and on each whole repeat (see the module docstring).

    ``y_enc`` and ``X`` are in the order of ``ids`` (the training set), ``X_test`` in that of
    ``level1.test_ids``. ``ordered``: the folds are in time order (walk-forward fitting).
    """
    # Level-2 problems are small: BLAS threads only add contention (10-30x slower when loaded).
    with threadpool_limits(limits=1, user_api="blas"):
        return _nested_blend(blender, level1, y_enc, ids, metric=metric, threshold=threshold, X=X, X_test=X_test,
                             ordered=ordered)


def _nested_blend(blender, level1, y_enc, ids, *, metric, threshold, X, X_test, ordered) -> NestedBlend:
    keys = level1.keys
    pos_all = pd.Index(ids).get_indexer(keys["id"])
    if (pos_all < 0).any():
        raise KagtoolsError(f"OOF id {keys['id'].iloc[int(np.flatnonzero(pos_all < 0)[0])]!r} is not in the training set")
    n, k = len(keys), level1.P.shape[2]
    nested, in_sample = np.empty((n, k)), np.empty((n, k))
    thr_nested = np.full(n, 0.5) if threshold else None
    thr_in = np.full(n, 0.5) if threshold else None
    tests, weights, shares, pooled = [], [], [], ([], [])
    for r in level1.repeats():
        rows = np.flatnonzero(keys["repeat"].to_numpy() == r)
        pos, fold = pos_all[rows], keys["fold"].to_numpy()[rows]
        P, y = level1.P[:, rows], y_enc[pos]
        Xr = X.iloc[pos].reset_index(drop=True) if X is not None else None
        for f in np.unique(fold):
            tr, va = (fold < f) if ordered else (fold != f), fold == f
            if not tr.any():
                if not ordered:
                    raise KagtoolsError("a blend needs at least two folds to fit within folds")
                nested[rows[va]] = P[:, va].mean(axis=0)  # the earliest fold in time: the plain mean
                continue
            b = clone(blender).fit(P[:, tr], y[tr], _take(Xr, tr))
            nested[rows[va]] = b.predict(P[:, va], _take(Xr, va))
            if threshold:
                thr_nested[rows[va]] = best_threshold(metric, y[tr], b.predict(P[:, tr], _take(Xr, tr)))
        full = clone(blender).fit(P, y, Xr)
        in_sample[rows] = full.predict(P, Xr)
        if threshold:
            thr_in[rows] = best_threshold(metric, y, in_sample[rows])
            pooled[0].append(y)
            pooled[1].append(in_sample[rows, 0])
        weights.append(full.weights_)
        shares.append(getattr(full, "features_share_", 0.0))
        if level1.T is not None:
            tests.append(full.predict(level1.T, X_test))
    test_thr = best_threshold(metric, np.concatenate(pooled[0]), np.concatenate(pooled[1])) if threshold else None
    return NestedBlend(nested, in_sample, thr_nested, thr_in, np.mean(tests, axis=0) if tests else None,
                       np.mean(weights, axis=0), test_thr, float(np.mean(shares)))


def _take(X: pd.DataFrame | None, mask: np.ndarray) -> pd.DataFrame | None:
    return None if X is None else X.loc[mask].reset_index(drop=True)
