"""Bagging: one model cross-validated as a :class:`~kagtools.models.bag.Bag` of several seeds
(optionally bootstrap samples), through the fold engine like any other model
(``kagtools cv --model M --bag N [--bootstrap]``). The run records every member's own CV score
beside the bag's, and says so when the members agree exactly (the model ignores its seed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kagtools.core.engine import Fold, FoldOutput, TrainingSet, fit_model_fold, run_folds, score_oof
from kagtools.core.folds import Folds
from kagtools.core.model_registry import make_model
from kagtools.core.runs import Run, RunRecord, make_run_id, provenance, write_run
from kagtools.core.spec import CompetitionSpec
from kagtools.errors import KagtoolsError
from kagtools.models.bag import BAG_SEED_STRIDE

__all__ = ["bagged_cv"]


def _fit_bag_fold(bag, fold: Fold, frames: tuple) -> FoldOutput:
    out = fit_model_fold(bag, fold, frames)
    out.info = bag.member_scores(frames[2])  # each member's validation predictions
    return out


def bagged_cv(spec: CompetitionSpec, data: TrainingSet, folds: Folds, model: str,
              params: dict[str, Any] | None, *, root, n_bags: int, bootstrap: bool = False,
              n_jobs: int = -1, seed: int | None = None) -> Run:
    """Cross-validate a bag of ``n_bags`` (at least 2) seeds of ``model`` and write the run.

    With ``bootstrap`` every member fits a bootstrap sample of its fold's training rows. Member
    ``i`` of fold ``(r, f)`` is seeded ``seed + 1000 r + f + BAG_SEED_STRIDE i``, as a single run
    with seed ``seed + BAG_SEED_STRIDE i`` would seed that fold (``seed``: the spec's CV seed).
    """
    if n_bags < 2:
        raise KagtoolsError(f"--bag must be at least 2, got {n_bags}")
    params = dict(params or {})
    seed = spec.cv.seed if seed is None else seed
    bag = make_model("bag", {"model": model, "params": params, "n_bags": n_bags, "bootstrap": bootstrap},
                     task=spec.task, seed=seed)
    res = run_folds(spec, data, folds, bag, seed=seed, n_jobs=n_jobs, fit_fold=_fit_bag_fold,
                    desc=f"{model} x{n_bags} folds")
    keys = res.oof[["id", "repeat", "fold"]]
    member_scores = []
    for i in range(n_bags):
        preds = np.concatenate([np.asarray(o.info[i]).reshape(len(o.info[i]), -1) for o in res.outputs])
        oof = pd.concat([keys, pd.DataFrame(preds, columns=res.pred_cols)], axis=1)
        member_scores.append(score_oof(spec, oof, res.y_enc, data.ids, res.pred_cols)["cv"])
    identical = all(np.array_equal(o.info[0], m) for o in res.outputs for m in o.info[1:])
    if identical:
        hint = "" if bootstrap else ("; give it seeded randomness, e.g. --params '{\"subsample\": 0.8, "
                                     "\"colsample_bytree\": 0.8}' for lgbm, or fit bootstrap samples with --bootstrap")
        print(f"  warning: the {n_bags} members of the bag of {model} predict exactly the same: the model ignores "
              f"its seed with these parameters, so the bag is one model{hint}", flush=True)
    record = RunRecord(
        run_id=make_run_id(f"{model}-bag{n_bags}{'b' if bootstrap else ''}", params, seed, folds.hash, data.name),
        slug=spec.slug, kind="bag", model=f"{model} x{n_bags}" + (" bootstrap" if bootstrap else ""), params=params,
        seed=seed, task=spec.task, classes=res.classes, pred_cols=res.pred_cols, features=data.name,
        n_features=int(data.X.shape[1]) if hasattr(data.X, "shape") else None, folds_hash=folds.hash,
        cv_scheme=folds.scheme, scores=score_oof(spec, res.oof, res.y_enc, data.ids, res.pred_cols),
        fold_seconds=res.fold_seconds, wall_seconds=res.wall_seconds,
        details={"n_bags": n_bags, "bootstrap": bootstrap,
                 "bag_seeds": [seed + BAG_SEED_STRIDE * i for i in range(n_bags)], "bag_scores": member_scores,
                 "members_identical": identical},
        provenance=provenance(data_fingerprint=folds.fingerprint))
    return write_run(root, record, oof=res.oof, test=res.test)
