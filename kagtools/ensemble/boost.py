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

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.base import clone

from kagtools.core.engine import (
    Fold,
    FoldOutput,
    TrainingSet,
    encode_target,
    fold_frames,
    run_folds,
    score_oof,
    squeeze,
)
from kagtools.core.folds import Folds
from kagtools.core.model_registry import make_model
from kagtools.core.runs import Run, RunRecord, make_run_id, provenance, write_run
from kagtools.core.spec import CompetitionSpec
from kagtools.ensemble.blenders import _from_margin, _margin
from kagtools.errors import KagtoolsError

__all__ = ["boost_run"]


def _loss(F: np.ndarray, Y: np.ndarray, task: str) -> float:
    if task in ("regression", "multitarget"):
        return float(np.mean((Y - F) ** 2))
    if task == "binary":
        return float(np.mean(np.logaddexp(0, F) - Y * F))
    return float(-np.mean(np.sum(Y * log_softmax(F, axis=1), axis=1)))


def _fit_fold(learner, fold: Fold, frames, *, data: TrainingSet, y_enc, Y, margins, F_test, task,
              learning_rate) -> FoldOutput:
    """One boosting stage on one fold: a regressor per column fitted to the negative gradient at
    the base run's OOF margins of the training rows; ``test`` is returned on the margin scale."""
    F = margins[fold.repeat]
    va = fold.valid_idx
    tr = fold.train_idx[np.isfinite(F[fold.train_idx].reshape(len(fold.train_idx), -1)).all(axis=1)]
    if len(tr) == 0:  # the earliest time-ordered fold: no earlier OOF to learn from, left as it was
        return FoldOutput(valid=_from_margin(squeeze(F[va].reshape(len(va), -1)), task), info=0.0)
    # Only rows with a base OOF prediction train; fold features fitted on them, as the CV loop fits them.
    X_tr, X_va, X_te = fold_frames(data.fold_features, data.X, y_enc, data.X_test, tr, va)
    resid = Y[tr] - _from_margin(F[tr], task).reshape(len(tr), -1)
    h_tr, h_va, h_te = [], [], []
    for c in range(Y.shape[1]):  # one regressor per class column
        model = clone(learner).fit(X_tr, resid[:, c])
        h_tr.append(model.predict_scores(X_tr))
        h_va.append(model.predict_scores(X_va))
        h_te.append(model.predict_scores(X_te) if X_te is not None else np.zeros(0))
    h_tr, h_va, h_te = (np.column_stack(h) for h in (h_tr, h_va, h_te))
    Ftr = F[tr].reshape(len(tr), -1)
    step = minimize_scalar(lambda s: _loss(squeeze(Ftr + s * h_tr), squeeze(Y[tr]), task), bounds=(0, 20),
                           method="bounded").x * learning_rate
    valid = squeeze(F[va].reshape(len(va), -1) + step * h_va)
    test = squeeze(F_test + step * h_te) if X_te is not None else None
    return FoldOutput(valid=_from_margin(valid, task), test=test, info=float(step))


def boost_run(spec: CompetitionSpec, data: TrainingSet, folds: Folds, base: Run, *, root, model: str = "lgbm",
              params: dict[str, Any] | None = None, learning_rate: float = 0.5, seed: int | None = None,
              n_jobs: int = 1) -> Run:
    """Fit ``model`` (with ``params``, as a regressor) on the OOF residuals of ``base`` (made on
    ``folds``) within the shared folds; write the boosted run. ``learning_rate`` shrinks the
    line-searched step."""
    if base.record.folds_hash != folds.hash:
        raise KagtoolsError(f"run {base.run_id} was made on other folds ({base.record.folds_hash} vs "
                            f"{folds.hash}); rerun it on the current folds")
    task, cols = spec.task, base.pred_cols
    params = dict(params or {})
    seed = spec.cv.seed if seed is None else seed
    y_enc, _ = encode_target(spec, data.y)
    # One column per class (multiclass) or per target.
    Y = np.eye(len(cols))[y_enc] if task == "multiclass" else np.asarray(y_enc, dtype=float).reshape(len(y_enc), -1)
    learner = make_model(model, params, task="regression", seed=seed)
    F_test = None
    if data.X_test is not None and base.has_test:
        t = base.test.set_index("id").loc[data.test_ids.to_numpy(), cols].to_numpy(float)
        F_test = _margin(t, task).reshape(len(t), -1)
    margins = {r: _margin(squeeze(base.oof_matrix(r, data.ids)), task) for r in range(folds.n_repeats)}
    fit = partial(_fit_fold, data=data, y_enc=y_enc, Y=Y, margins=margins, F_test=F_test, task=task,
                  learning_rate=learning_rate)
    res = run_folds(spec, data, folds, learner, seed=seed, n_jobs=n_jobs, fit_fold=fit, frames=False,
                    predict_test=F_test is not None, desc=f"boost {model} folds")
    test = res.test
    if test is not None:  # averaged on the margin scale, like the folds of one boosted model
        test = pd.concat([test[["id"]], pd.DataFrame(_from_margin(squeeze(test[cols].to_numpy(float)), task)
                                                    .reshape(len(test), -1), columns=cols)], axis=1)
    record = RunRecord(
        run_id=make_run_id(f"boost-{model}", {"base": base.run_id, "p": params, "lr": learning_rate}, seed,
                           folds.hash),
        slug=spec.slug, kind="boost", model=f"boost:{model}", params=params, seed=seed, task=task,
        classes=base.record.classes, pred_cols=cols, features=data.name, folds_hash=folds.hash,
        cv_scheme=folds.scheme, runs=[base.run_id], threshold=base.record.threshold,
        scores=score_oof(spec, res.oof, y_enc, data.ids, cols, threshold=base.record.threshold or 0.5),
        fold_seconds=res.fold_seconds, wall_seconds=res.wall_seconds,
        details={"learning_rate": learning_rate, "steps": [o.info for o in res.outputs],
                 "base_cv": base.record.scores["cv"]},
        provenance=provenance(data_fingerprint=folds.fingerprint))
    return write_run(root, record, oof=res.oof, test=test)
