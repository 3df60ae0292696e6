"""The one cross-validation loop every model goes through.

For each (repeat, fold) of the shared folds: clone the model, fit on the training rows, predict
the validation rows (out of fold) and the test rows. Features that use the target are fitted
inside the fold by ``fold_features`` (a scikit-learn transformer), never on validation rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone

from kagtools.errors import KagtoolsError
from kagtools.folds import Folds
from kagtools.metrics import get_metric
from kagtools.models import create_model
from kagtools.progress import progress
from kagtools.runs import Run, git_sha, make_run_id, pred_columns, versions, write_run
from kagtools.spec import CompetitionSpec

__all__ = ["TrainingSet", "encode_target", "cross_validate", "score_oof", "fit_fold", "fit_frames", "fold_frames", "fold_seed"]


@dataclass
class TrainingSet:
    """What every model of a competition is trained on: features, target and test features."""

    X: pd.DataFrame
    y: pd.Series | pd.DataFrame
    ids: pd.Series
    X_test: pd.DataFrame | None = None
    test_ids: pd.Series | None = None
    fold_features: Any = None  # a transformer fitted within each fold (target-based features)
    name: str = "features"
    _fold_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def fold_frames(self, key: tuple, y: np.ndarray, train_idx: np.ndarray, valid_idx: np.ndarray):
        """``(X_train, X_valid, X_test)`` of one fold, fold features fitted on its training rows.

        Fitted once per ``key`` (folds hash, repeat, fold) and reused by every model of the run
        set, since the fold features depend on the fold only, never on the model.
        """
        if self.fold_features is None:
            return fold_frames(None, self.X, y, self.X_test, train_idx, valid_idx)
        if key not in self._fold_cache:
            self._fold_cache[key] = fold_frames(self.fold_features, self.X, y, self.X_test, train_idx, valid_idx)
        return self._fold_cache[key]


def encode_target(spec: CompetitionSpec, y) -> tuple[np.ndarray, list | None]:
    """Classes to ``0..K-1`` for classification (sorted original labels); values otherwise."""
    if spec.task in ("binary", "multiclass"):
        classes = sorted(pd.unique(np.asarray(y).ravel()).tolist())
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[v] for v in np.asarray(y).ravel()]), classes
    return np.asarray(y, dtype=float), None


def score_oof(spec: CompetitionSpec, oof: pd.DataFrame, y_enc: np.ndarray, ids: pd.Series,
              pred_cols: list[str], *, threshold: float = 0.5) -> dict[str, Any]:
    """Per-fold, per-repeat and overall scores of an OOF table (long format with repeats)."""
    metric = get_metric(spec.metric)
    y_by_id = pd.Series(list(range(len(ids))), index=ids.values)
    fold_scores, repeat_scores = [], []
    for r, part in oof.groupby("repeat", sort=True):
        pos = y_by_id.loc[part["id"].values].to_numpy()
        preds = _squeeze(part[pred_cols].to_numpy(dtype=float))
        repeat_scores.append(metric(y_enc[pos], preds, threshold=threshold))
        for f, fpart in part.groupby("fold", sort=True):
            fpos = y_by_id.loc[fpart["id"].values].to_numpy()
            fold_scores.append({"repeat": int(r), "fold": int(f),
                                "score": metric(y_enc[fpos], _squeeze(fpart[pred_cols].to_numpy(dtype=float)),
                                                threshold=threshold)})
    fs = np.array([f["score"] for f in fold_scores])
    return {
        "metric": metric.name,
        "greater_is_better": metric.greater_is_better,
        "cv": float(np.mean(repeat_scores)),
        "cv_std": float(fs.std(ddof=1)) if len(fs) > 1 else 0.0,
        "repeat_std": float(np.std(repeat_scores, ddof=1)) if len(repeat_scores) > 1 else 0.0,
        "repeats": [float(s) for s in repeat_scores],
        "folds": fold_scores,
    }


def _squeeze(a: np.ndarray) -> np.ndarray:
    return a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a


def fold_frames(fold_features, X, y, X_test, train_idx, valid_idx):
    """``(X_train, X_valid, X_test)`` of one fold: fold features fitted on its training rows only."""
    X_tr, X_va = X.iloc[train_idx], X.iloc[valid_idx]
    if fold_features is None:
        return X_tr, X_va, X_test
    ff = clone(fold_features)
    X_tr = ff.fit_transform(X_tr, y[train_idx])
    return X_tr, ff.transform(X_va), ff.transform(X_test) if X_test is not None else None


def fit_frames(model, X_tr, y_tr, X_va, y_va, X_te):
    """Fit ``model`` on one fold's frames; returns ``(model, valid_pred, test_pred, seconds)``."""
    start = time.perf_counter()
    model.fit(X_tr, y_tr, X_valid=X_va, y_valid=y_va)
    valid_pred = np.asarray(model.predict_scores(X_va), dtype=float)
    test_pred = np.asarray(model.predict_scores(X_te), dtype=float) if X_te is not None else None
    return model, valid_pred, test_pred, time.perf_counter() - start


def fit_fold(model, fold_features, X, y, X_test, train_idx, valid_idx):
    """Fit one fold: fold features and model on the training rows; predict validation and test.

    Returns ``(model, valid_pred, test_pred, seconds)``.
    """
    start = time.perf_counter()
    X_tr, X_va, X_te = fold_frames(fold_features, X, y, X_test, train_idx, valid_idx)
    model, valid_pred, test_pred, _ = fit_frames(model, X_tr, y[train_idx], X_va, y[valid_idx], X_te)
    return model, valid_pred, test_pred, time.perf_counter() - start


def _fold_args(data: TrainingSet, key: tuple, y: np.ndarray, tr: np.ndarray, va: np.ndarray) -> tuple:
    X_tr, X_va, X_te = data.fold_frames(key, y, tr, va)
    return X_tr, y[tr], X_va, y[va], X_te


def _as_2d(a: np.ndarray) -> np.ndarray:
    return a.reshape(len(a), -1)


def cross_validate(spec: CompetitionSpec, data: TrainingSet, folds: Folds, model_name: str,
                   params: dict[str, Any] | None = None, *, root: Path, seed: int | None = None,
                   n_jobs: int = 1, save_models: bool = True, run_id: str | None = None,
                   kind: str = "cv", extra_meta: dict[str, Any] | None = None) -> Run:
    """Fit ``model_name`` on every fold, write the run (OOF + test + run.json) and return it."""
    params = dict(params or {})
    seed = spec.cv.seed if seed is None else seed
    y_enc, classes = encode_target(spec, data.y)
    cols = pred_columns(spec, classes)
    base = create_model(model_name, **params)
    fixed = {"task": spec.task} if "task" in base.get_params() else {}
    if "seed" in base.get_params():
        fixed["seed"] = seed
    base.set_params(**fixed)
    if not getattr(base, "parallel_folds", True):
        n_jobs = 1  # the model parallelises itself (torch threads, a GPU)
    splits = list(folds.splits(data.ids))
    if not splits:
        raise KagtoolsError("folds: no validation rows; check the CV scheme")
    run_id = run_id or make_run_id(model_name, params, seed, folds.hash, data.name)
    start = time.perf_counter()
    jobs = (joblib.delayed(fit_frames)(clone(base).set_params(**fold_seed(base, seed, r, f)),
                                        *_fold_args(data, (folds.hash, r, f), y_enc, tr, va))
            for r, f, tr, va in splits)
    results = []
    parallel = joblib.Parallel(n_jobs=n_jobs, return_as="generator")
    for res in progress(parallel(jobs), total=len(splits), desc=f"{model_name} folds"):
        results.append(res)
    oof_parts, test_preds, models, fold_times = [], [], [], []
    for (r, f, _, va), (model, valid_pred, test_pred, secs) in zip(splits, results, strict=True):
        part = pd.DataFrame(_as_2d(valid_pred), columns=cols)
        part.insert(0, "fold", f)
        part.insert(0, "repeat", r)
        part.insert(0, "id", data.ids.iloc[va].to_numpy())
        oof_parts.append(part)
        if test_pred is not None:
            test_preds.append(_as_2d(test_pred))
        models.append(model)
        fold_times.append(secs)
    oof = pd.concat(oof_parts, ignore_index=True)
    test = None
    if test_preds:
        test = pd.DataFrame(np.mean(test_preds, axis=0), columns=cols)
        test.insert(0, "id", data.test_ids.to_numpy())
    scores = score_oof(spec, oof, y_enc, data.ids, cols)
    meta = {
        "slug": spec.slug,
        "kind": kind,
        "model": model_name,
        "params": params,
        "seed": seed,
        "task": spec.task,
        "classes": classes,
        "pred_cols": cols,
        "features": data.name,
        "n_features": int(data.X.shape[1]) if hasattr(data.X, "shape") else None,
        "folds_hash": folds.hash,
        "cv_scheme": folds.scheme,
        "scores": scores,
        "fold_seconds": fold_times,
        "wall_seconds": time.perf_counter() - start,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": versions(),
        "git_sha": git_sha(),
        **(extra_meta or {}),
    }
    extra = {"models.joblib": lambda p: joblib.dump(models, p, compress=3)} if save_models else {}
    return write_run(root, run_id, oof=oof, test=test, meta=meta, extra_files=extra)


def fold_seed(model, seed: int, repeat: int, fold: int) -> dict[str, Any]:
    """The ``seed`` parameter of one fold's model (none for models without a seed)."""
    # Different seeds per repeat so repeats measure seed variance too; same command, same seeds.
    return {"seed": seed + 1000 * repeat + fold} if "seed" in model.get_params() else {}
