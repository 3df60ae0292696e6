"""Boosting at the ensemble level: a second model fitted to a first run's OOF residuals.

One gradient-boosting stage (Friedman) with any registered model as the learner, on top of any
run: in each fold of the shared folds, the learner (a regressor) is fitted on the training
rows to the negative gradient of the loss at the base run's OOF predictions (the residual
``y - F`` for regression, per target for several targets with one step for all; ``y - p``
per class on the logit / log-probability scale for classification), the step is
line-searched on those training rows, shrunk by ``learning_rate``, and added to the base
predictions of the validation and test rows. The result is its own run (``kind = "boost"``).

The base run's OOF predictions on the training rows came from fold models that saw the
validation rows (as in any stacking on OOF), the usual, small leak of level-2 models. With
time-ordered folds (``TimeSeriesSplit``) each fold learns only from the earlier folds' OOF
rows, and the earliest validated fold, with none before it, keeps the base predictions (its
test predictions are left out of the average).
"""

from __future__ import annotations

import time
from typing import Any

import joblib
import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, logit, softmax
from sklearn.base import clone

from kagtools.cv import TrainingSet, encode_target, fold_frames, score_oof
from kagtools.cv import _squeeze as _sq
from kagtools.errors import KagtoolsError
from kagtools.folds import Folds
from kagtools.models import create_model
from kagtools.runs import Run, git_sha, make_run_id, versions, write_run
from kagtools.spec import CompetitionSpec

__all__ = ["boost_run"]

_EPS = 1e-6


def _to_margin(p: np.ndarray, task: str) -> np.ndarray:
    if task == "binary":
        return logit(np.clip(p, _EPS, 1 - _EPS))
    return np.log(np.clip(p, _EPS, 1.0)) if task == "multiclass" else p


def _from_margin(F: np.ndarray, task: str) -> np.ndarray:
    if task == "binary":
        return expit(F)
    return softmax(F, axis=1) if task == "multiclass" else F


def _loss(F: np.ndarray, Y: np.ndarray, task: str) -> float:
    if task in ("regression", "multitarget"):
        return float(np.mean((Y - F) ** 2))
    if task == "binary":
        return float(np.mean(np.logaddexp(0, F) - Y * F))
    return float(-np.mean(np.sum(Y * log_softmax(F, axis=1), axis=1)))


def _targets(y_enc: np.ndarray, task: str, k: int) -> np.ndarray:
    if task == "multiclass":
        return np.eye(k)[y_enc]
    return np.asarray(y_enc, dtype=float).reshape(len(y_enc), -1)  # one column per target


def _fit_fold(learner, fold_features, X, y_enc, Y, F, X_test, F_test, tr, va, task, learning_rate):
    tr = tr[np.isfinite(F[tr].reshape(len(tr), -1)).all(axis=1)]  # rows with a base OOF prediction
    if len(tr) == 0:  # the earliest time-ordered fold: no earlier OOF to learn from, left as it was
        return _sq(F[va].reshape(len(va), -1)), None, 0.0
    X_tr, X_va, X_te = fold_frames(fold_features, X, y_enc, X_test, tr, va)  # as the CV loop fits them
    resid = Y[tr] - _from_margin(F[tr], task).reshape(len(tr), -1)
    h_tr, h_va, h_te = [], [], []
    for c in range(Y.shape[1]):  # one regressor per class column
        model = clone(learner).fit(X_tr, resid[:, c])
        h_tr.append(model.predict_scores(X_tr))
        h_va.append(model.predict_scores(X_va))
        h_te.append(model.predict_scores(X_te) if X_te is not None else np.zeros(0))
    h_tr, h_va, h_te = (np.column_stack(h) for h in (h_tr, h_va, h_te))
    Ftr = F[tr].reshape(len(tr), -1)
    step = minimize_scalar(lambda s: _loss(_sq(Ftr + s * h_tr), _sq(Y[tr]), task), bounds=(0, 20),
                           method="bounded").x * learning_rate
    valid = _sq(F[va].reshape(len(va), -1) + step * h_va)
    test = _sq(F_test + step * h_te) if X_te is not None else None
    return valid, test, float(step)


def boost_run(spec: CompetitionSpec, data: TrainingSet, folds: Folds, base: Run, *, root, model: str = "lgbm",
              params: dict[str, Any] | None = None, learning_rate: float = 0.5, seed: int | None = None,
              n_jobs: int = 1) -> Run:
    """Fit ``model`` on ``base``'s OOF residuals within the shared folds; write the boosted run.

    Parameters
    ----------
    spec, data, folds
        The competition, its training set and the shared folds (``base`` must use them).
    base
        The run to correct.
    model, params
        The registered learner, fitted as a regressor.
    learning_rate
        Shrinkage of the line-searched step.
    """
    if base.meta.get("folds_hash") != folds.hash:
        raise KagtoolsError(f"run {base.run_id} was made on other folds ({base.meta.get('folds_hash')} vs "
                            f"{folds.hash}); rerun it on the current folds")
    start = time.perf_counter()
    task, cols = spec.task, base.pred_cols
    params = dict(params or {})
    seed = spec.cv.seed if seed is None else seed
    y_enc, _ = encode_target(spec, data.y)
    Y = _targets(y_enc, task, len(cols))
    learner = create_model(model, **params)
    names = learner.get_params()
    learner.set_params(**{k: v for k, v in (("task", "regression"), ("seed", seed)) if k in names})
    F_test = None
    if data.X_test is not None and (base.path / "test.parquet").is_file():
        t = base.test.set_index("id").loc[data.test_ids.to_numpy(), cols].to_numpy(float)
        F_test = _to_margin(t, task).reshape(len(t), -1)
    splits = list(folds.splits(data.ids))
    oofs = {r: base.oof_matrix(r, data.ids) for r in sorted({s[0] for s in splits})}
    margins = {r: _to_margin(_sq(o), task) for r, o in oofs.items()}
    jobs = (joblib.delayed(_fit_fold)(learner, data.fold_features, data.X, y_enc, Y, margins[r], data.X_test, F_test,
                                      tr, va, task, learning_rate) for r, f, tr, va in splits)
    n_jobs = n_jobs if getattr(learner, "parallel_folds", True) else 1
    results = joblib.Parallel(n_jobs=n_jobs)(jobs)
    parts, tests, steps = [], [], []
    for (r, f, _, va), (valid, test, step) in zip(splits, results, strict=True):
        part = pd.DataFrame(_from_margin(valid, task).reshape(len(va), -1), columns=cols)
        part.insert(0, "fold", f)
        part.insert(0, "repeat", r)
        part.insert(0, "id", data.ids.iloc[va].to_numpy())
        parts.append(part)
        steps.append(step)
        if test is not None:
            tests.append(test)
    oof = pd.concat(parts, ignore_index=True)
    test = None
    if tests:  # average on the margin scale, like the folds of one boosted model
        test = pd.DataFrame(_from_margin(np.mean(tests, axis=0), task).reshape(len(F_test), -1), columns=cols)
        test.insert(0, "id", data.test_ids.to_numpy())
    scores = score_oof(spec, oof, y_enc, data.ids, cols, threshold=float(base.meta.get("threshold", 0.5)))
    meta = {
        "slug": spec.slug, "kind": "boost", "model": f"boost:{model}", "base_run": base.run_id,
        "params": params, "learning_rate": learning_rate, "steps": steps, "seed": seed, "task": task,
        "classes": base.meta.get("classes"), "pred_cols": cols, "features": data.name, "folds_hash": folds.hash,
        "cv_scheme": folds.scheme, "scores": scores, "base_cv": base.meta["scores"]["cv"],
        "wall_seconds": time.perf_counter() - start, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": versions(), "git_sha": git_sha(),
    }
    if "threshold" in base.meta:
        meta["threshold"] = base.meta["threshold"]
    run_id = make_run_id(f"boost-{model}", {"base": base.run_id, "p": params, "lr": learning_rate}, seed, folds.hash)
    return write_run(root, run_id, oof=oof, test=test, meta=meta)
