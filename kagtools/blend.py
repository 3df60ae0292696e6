"""Blends: a function of run artifacts only; the result is itself a run (OOF + test + score)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from kagtools.cv import encode_target, score_oof
from kagtools.errors import KagtoolsError
from kagtools.runs import Run, git_sha, make_run_id, versions, write_run
from kagtools.spec import CompetitionSpec

__all__ = ["check_compatible", "blend_mean", "auto_blend"]


def check_compatible(runs: list[Run]) -> None:
    """Refuse runs that were not made on the same folds or do not predict the same columns."""
    if len(runs) < 2:
        raise KagtoolsError("a blend needs at least two runs")
    first = runs[0]
    for run in runs[1:]:
        if run.meta.get("folds_hash") != first.meta.get("folds_hash"):
            raise KagtoolsError(
                f"runs {first.run_id} and {run.run_id} were made on different folds "
                f"({first.meta.get('folds_hash')} vs {run.meta.get('folds_hash')}); rerun one on the current folds"
            )
        if run.pred_cols != first.pred_cols:
            raise KagtoolsError(f"runs {first.run_id} and {run.run_id} predict different columns")


def blend_mean(spec: CompetitionSpec, runs: list[Run], y: pd.Series, ids: pd.Series, *, root: Path) -> Run:
    """The plain mean of the runs' predictions (probabilities or values), as a new run."""
    check_compatible(runs)
    start = time.perf_counter()
    cols = runs[0].pred_cols
    base = runs[0].oof[["id", "repeat", "fold"]].reset_index(drop=True)
    oof_vals = np.mean([_aligned(r.oof, base, cols) for r in runs], axis=0)
    oof = pd.concat([base, pd.DataFrame(oof_vals, columns=cols)], axis=1)
    test = None
    if all((r.path / "test.parquet").is_file() for r in runs):
        tbase = runs[0].test[["id"]].reset_index(drop=True)
        test = pd.concat([tbase, pd.DataFrame(np.mean([_aligned(r.test, tbase, cols, keys=["id"]) for r in runs],
                                                      axis=0), columns=cols)], axis=1)
    y_enc, _ = encode_target(spec, y)
    scores = score_oof(spec, oof, y_enc, ids, cols)
    run_ids = [r.run_id for r in runs]
    meta = {
        "slug": spec.slug, "kind": "blend", "model": "blend:mean", "method": "mean",
        "params": {}, "runs": run_ids, "weights": {r: 1 / len(runs) for r in run_ids},
        "seed": runs[0].meta.get("seed"), "task": spec.task, "classes": runs[0].meta.get("classes"),
        "pred_cols": cols, "folds_hash": runs[0].meta["folds_hash"], "cv_scheme": runs[0].meta.get("cv_scheme"),
        "scores": scores, "wall_seconds": time.perf_counter() - start,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "versions": versions(), "git_sha": git_sha(),
    }
    run_id = make_run_id("blend-mean", {"runs": sorted(run_ids)}, 0, runs[0].meta["folds_hash"])
    return write_run(root, run_id, oof=oof, test=test, meta=meta)


def _aligned(df: pd.DataFrame, base: pd.DataFrame, cols: list[str], keys=("id", "repeat")) -> np.ndarray:
    keys = list(keys)
    merged = base[keys].merge(df[keys + cols], on=keys, how="left", validate="one_to_one")
    if merged[cols].isna().any().any():
        raise KagtoolsError("runs to blend do not cover the same rows")
    return merged[cols].to_numpy(dtype=float)


def auto_blend(spec: CompetitionSpec, runs: list[Run], y: pd.Series, ids: pd.Series, *, root: Path,
               reports: Path | None = None) -> list[Run]:
    """The blends ``kagtools submit`` tries over its freshly trained runs."""
    return [blend_mean(spec, runs, y, ids, root=root)]
