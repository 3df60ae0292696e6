"""Bagging: one model cross-validated over several seeds (optionally bootstrap samples), averaged.

``kagtools cv --model M --bag N [--bootstrap]`` runs :func:`bagged_cv`: N runs of the CV loop on
the shared folds, in parallel with joblib (or on Dask when a scheduler is given), each with its
own seed; with ``bootstrap`` every fold model is fitted on a bootstrap sample of its training
rows (validation rows are never touched). The bagged run's OOF and test predictions are the
mean of the bags'; run.json records every bag's score beside the bagged one.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from kagtools.cv import cross_validate, encode_target, score_oof
from kagtools.errors import KagtoolsError
from kagtools.models import get_model_class
from kagtools.models.bootstrap import Bootstrap
from kagtools.runs import Run, make_run_id, write_run

__all__ = ["Bootstrap", "bagged_cv"]

_BAG_SEED_STRIDE = 100_003  # bag seeds far apart from the CV loop's per-fold offsets


def _one_bag(spec, data, folds, model, params, root, seed, n_jobs):
    return cross_validate(spec, data, folds, model, params, root=root, seed=seed, n_jobs=n_jobs,
                          save_models=False, run_id=f"bag-{seed}")


def bagged_cv(ctx, model: str, params: dict[str, Any] | None, *, n_bags: int, bootstrap: bool = False,
              n_jobs: int = -1, seed: int | None = None) -> Run:
    """Cross-validate ``model`` over ``n_bags`` seeds and write the averaged run.

    Parameters
    ----------
    ctx : kagtools.workflow.Context
        The competition (spec, training set, folds, run root).
    model, params
        The registered model and its parameters.
    n_bags
        Number of bags (seeds), at least 2.
    bootstrap
        Fit every fold model on a bootstrap sample of its training rows.
    n_jobs
        Bags fitted in parallel (joblib); models that parallelise themselves
        (``parallel_folds = False``, e.g. torch on a GPU) run their bags one after another.
    seed
        The first bag's seed (default: the spec's CV seed); bag ``i`` uses a seed derived from it.
    """
    if n_bags < 2:
        raise KagtoolsError(f"--bag must be at least 2, got {n_bags}")
    spec, data, folds = ctx.spec, ctx.training_set, ctx.folds
    params = dict(params or {})
    seed = spec.cv.seed if seed is None else seed
    name, bag_params = (("bootstrap", {"model": model, "params": params}) if bootstrap else (model, params))
    if not getattr(get_model_class(model), "parallel_folds", True):
        n_jobs = 1
    seeds = [seed + _BAG_SEED_STRIDE * i for i in range(n_bags)]
    start = time.perf_counter()
    ctx.root.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".bags-", dir=ctx.root)  # dot-named: never listed as runs
    try:
        bags = joblib.Parallel(n_jobs=n_jobs)(
            joblib.delayed(_one_bag)(spec, data, folds, name, bag_params, Path(tmp), s, 1) for s in seeds)
        oof, test = _average(bags)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    first = bags[0].meta
    y_enc, _ = encode_target(spec, data.y)
    scores = score_oof(spec, oof, y_enc, data.ids, first["pred_cols"])
    meta = {
        **{k: first[k] for k in ("slug", "task", "classes", "pred_cols", "features", "n_features", "folds_hash",
                                 "cv_scheme", "versions", "git_sha")},
        "kind": "bag", "model": f"{model} x{n_bags}" + (" bootstrap" if bootstrap else ""),
        "params": params, "seed": seed, "bag_seeds": seeds, "n_bags": n_bags, "bootstrap": bootstrap,
        "bag_scores": [b.meta["scores"]["cv"] for b in bags], "scores": scores,
        "wall_seconds": time.perf_counter() - start, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    run_id = make_run_id(f"{model}-bag{n_bags}{'b' if bootstrap else ''}", params, seed, folds.hash, data.name)
    return write_run(ctx.root, run_id, oof=oof, test=test, meta=meta)


def _average(bags: list[Run]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    cols = bags[0].pred_cols
    keys = bags[0].oof[["id", "repeat", "fold"]].reset_index(drop=True)
    for b in bags[1:]:  # same folds, same loop: the same rows in the same order
        if not keys.equals(b.oof[["id", "repeat", "fold"]].reset_index(drop=True)):
            raise KagtoolsError(f"bag {b.run_id} predicted other OOF rows than bag {bags[0].run_id}")
    oof = pd.concat([keys, pd.DataFrame(np.mean([b.oof[cols].to_numpy(float) for b in bags], axis=0),
                                        columns=cols)], axis=1)
    test = None
    if all((b.path / "test.parquet").is_file() for b in bags):
        test = pd.concat([bags[0].test[["id"]].reset_index(drop=True),
                          pd.DataFrame(np.mean([b.test[cols].to_numpy(float) for b in bags], axis=0), columns=cols)],
                         axis=1)
    return oof, test
