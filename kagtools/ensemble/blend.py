"""Blends: a function of run artifacts only; the result is itself a run (OOF + test + score).

The methods are :mod:`kagtools.ensemble.blenders`, fitted within the shared folds
(:mod:`kagtools.ensemble.nested`): a blend's ``cv`` (also stored as ``nested``) is scored on OOF
rows its blender never saw; ``in_sample``, the optimistic score of the blender fitted on all
rows, is kept to show how much fitting on the scored rows would have flattered it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kagtools.core.engine import TrainingSet, encode_target, score_oof
from kagtools.core.folds import time_ordered
from kagtools.core.io import atomic_path
from kagtools.core.metrics import get_metric
from kagtools.core.runs import (
    Run,
    RunRecord,
    inputs_hash,
    load_run,
    make_run_id,
    provenance,
    write_run,
)
from kagtools.core.spec import CompetitionSpec
from kagtools.ensemble.blenders import BLENDERS, make_blender
from kagtools.ensemble.nested import Level1, load_level1, nested_blend
from kagtools.ensemble.scoring import needs_threshold
from kagtools.errors import KagtoolsError

__all__ = ["METHODS", "AUTO_METHODS", "check_compatible", "blend", "auto_blend", "plot_blends"]

METHODS = tuple(BLENDERS)
# What ``kagtools submit`` tries; the AutoGluon-style stack joins when features are given.
AUTO_METHODS = ("mean", "rank_mean", "geo_mean", "hill_climb", "optimize", "stack_linear", "stack_lgbm")
TASKS = ("binary", "multiclass", "regression", "multitarget")  # the tasks blends support


def check_compatible(runs: list[Run]) -> None:
    """Refuse runs that were not made on the same folds or do not predict the same columns."""
    task = runs[0].record.task if runs else None
    if task is not None and task not in TASKS:
        raise KagtoolsError(f"blends support {', '.join(TASKS)} runs, not {task} (run {runs[0].run_id})")
    if len(runs) < 2:
        raise KagtoolsError("a blend needs at least two runs")
    first = runs[0]
    for run in runs[1:]:
        if run.record.folds_hash != first.record.folds_hash:
            raise KagtoolsError(f"runs {first.run_id} and {run.run_id} were made on different folds "
                                f"({first.record.folds_hash} vs {run.record.folds_hash}); rerun one on the "
                                "current folds")
        if run.pred_cols != first.pred_cols:
            raise KagtoolsError(f"runs {first.run_id} and {run.run_id} predict different columns")
        if run.record.classes != first.record.classes:
            raise KagtoolsError(f"runs {first.run_id} and {run.run_id} encode different classes")


def _scores(spec: CompetitionSpec, level1: Level1, preds: np.ndarray, thresholds: np.ndarray | None,
            y_enc: np.ndarray, ids: pd.Series) -> dict[str, Any]:
    cols = level1.pred_cols
    if thresholds is not None:  # per-row thresholds: score the labels they give
        preds = (preds[:, :1] >= thresholds[:, None]).astype(float)
    frame = pd.concat([level1.keys, pd.DataFrame(preds, columns=cols)], axis=1)
    return score_oof(spec, frame, y_enc, ids, cols)


def blend(spec: CompetitionSpec, runs: list[Run], y: pd.Series, ids: pd.Series, *, root: Path,
          method: str = "hill_climb", features: TrainingSet | None = None, seed: int = 0,
          level1: Level1 | None = None, threshold: bool | None = None, reuse: bool = False) -> Run:
    """Blend ``runs`` (same folds) with ``method``, fitted within folds, and write the blend as a run.

    ``features`` (the training set) is used only by ``stack_lgbm_features``; ``level1`` is the
    already aligned predictions of ``runs`` (saves re-reading them across methods).
    ``threshold``, for label metrics of binary tasks: ``True`` tunes the decision threshold
    within folds, ``False`` keeps 0.5, ``None`` (default) tunes it and keeps it only where the
    nested score says it helps. The kept threshold is stored in run.json and used by submissions.
    With ``reuse``, a recorded blend of members made from the same inputs is returned as it is.
    """
    runs = sorted(runs, key=lambda r: r.run_id)  # the same runs give the same blend, in any order
    check_compatible(runs)
    run_id = make_run_id(f"blend-{method}", {"runs": sorted(r.run_id for r in runs)}, seed, runs[0].record.folds_hash)
    members = [r.record.inputs for r in runs]
    inputs = None if None in members else inputs_hash(
        {"method": method, "members": members, "threshold": threshold, "seed": seed,
         "features": features.name if features is not None else None})
    if reuse and inputs and (root / run_id / "run.json").is_file():
        old = load_run(root, run_id)
        if old.record.inputs == inputs:
            return old
    start = time.perf_counter()
    level1 = level1 or load_level1(runs)
    if level1.run_ids != [r.run_id for r in runs]:
        raise KagtoolsError("level1 was not loaded from these runs")
    y_enc, _ = encode_target(spec, y)
    blender = make_blender(method, task=spec.task, metric=spec.metric, seed=seed,
                           fold_features=features.fold_features if features is not None else None)
    X = X_test = None
    if getattr(blender, "features", False):
        if features is None:
            raise KagtoolsError(f"blend method {method} needs the training set's features")
        X = features.X
        if level1.T is not None and features.X_test is not None:
            order = pd.Index(features.test_ids).get_indexer(level1.test_ids)
            if (order < 0).any():
                raise KagtoolsError("run test ids are not the training set's test ids")
            X_test = features.X_test.iloc[order].reset_index(drop=True)
    tune = needs_threshold(spec.metric, spec.task) if threshold is None else threshold
    res = nested_blend(blender, level1, y_enc, ids, metric=spec.metric, threshold=tune, X=X, X_test=X_test,
                       ordered=time_ordered(runs[0].record.cv_scheme))
    nested = _scores(spec, level1, res.nested, None, y_enc, ids)
    in_sample = _scores(spec, level1, res.in_sample, None, y_enc, ids)
    extra: dict[str, Any] = {}
    if tune:
        # The threshold is chosen within folds; it is kept only where that beats 0.5 on the
        # nested score (with None asked: an explicit True always keeps it).
        tuned = _scores(spec, level1, res.nested, res.nested_threshold, y_enc, ids)
        extra = {"nested_threshold_0.5": nested["cv"], "nested_threshold_tuned": tuned["cv"]}
        if threshold or get_metric(spec.metric).better(tuned["cv"], nested["cv"]):
            nested = tuned
            in_sample = _scores(spec, level1, res.in_sample, res.in_sample_threshold, y_enc, ids)
        else:
            res.threshold = None
    scores = {**nested, "nested": nested["cv"], "in_sample": in_sample["cv"],
              "in_sample_repeats": in_sample["repeats"], **extra}
    cols = level1.pred_cols
    oof = pd.concat([level1.keys, pd.DataFrame(res.nested, columns=cols)], axis=1)
    test = None if res.test is None else pd.concat([level1.test_ids.reset_index(drop=True).to_frame("id"),
                                                     pd.DataFrame(res.test, columns=cols)], axis=1)
    first = runs[0].record
    record = RunRecord(
        run_id=run_id, inputs=inputs, slug=spec.slug, kind="blend", model=f"blend:{method}", method=method,
        params=blender.get_params() if method != "stack_lgbm_features" else {"features": True},
        runs=level1.run_ids, weights={r: round(float(w), 6) for r, w in zip(level1.run_ids, res.weights, strict=True)},
        seed=seed, task=spec.task, classes=first.classes, pred_cols=cols, folds_hash=first.folds_hash,
        cv_scheme=first.cv_scheme, threshold=res.threshold, scores=scores,
        features=features.name if method == "stack_lgbm_features" else None,
        wall_seconds=time.perf_counter() - start,
        details={"features_share": res.features_share} if method == "stack_lgbm_features" else {},
        provenance=provenance(data_fingerprint=first.provenance.get("data_fingerprint")))
    return write_run(root, record, oof=oof, test=test)


def auto_blend(spec: CompetitionSpec, runs: list[Run], y: pd.Series, ids: pd.Series, *, root: Path,
               reports: Path | None = None, features: TrainingSet | None = None,
               methods: tuple[str, ...] | None = None, reuse: bool = False) -> list[Run]:
    """The blends ``kagtools submit`` tries over its freshly trained runs, one run per method.

    A method that cannot apply (e.g. ``geo_mean`` of negative regression values) is skipped
    with a note. With ``reports``, writes ``reports/<slug>/blend.png`` (scores and weights).
    """
    if methods is None:
        methods = AUTO_METHODS + (("stack_lgbm_features",) if features is not None else ())
    runs = sorted(runs, key=lambda r: r.run_id)
    if spec.task not in TASKS:
        print(f"  blends skipped: {spec.task} tasks are not blended (only {', '.join(TASKS)})", flush=True)
        return []
    check_compatible(runs)
    level1 = load_level1(runs)
    blends = []
    for method in methods:
        try:
            blends.append(blend(spec, runs, y, ids, root=root, method=method, features=features, level1=level1,
                                reuse=reuse))
        except KagtoolsError as exc:
            print(f"  blend {method} skipped: {exc}", flush=True)
    if reports is not None and blends:
        plot_blends(spec, runs, blends, Path(reports) / "blend.png")
    return blends


def plot_blends(spec: CompetitionSpec, runs: list[Run], blends: list[Run], path: Path) -> Path:
    """A PNG: nested vs in-sample OOF score per method beside the single runs, and the
    weight each blend gives each run."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = get_metric(spec.metric)
    run_ids = [r.run_id for r in runs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.45 * (len(runs) + len(blends)) + 2.5),
                                   gridspec_kw={"width_ratios": [1, 1.3]})
    labels = run_ids + [b.record.method for b in blends]
    nested = [r.score for r in runs] + [b.score for b in blends]
    ax1.barh(labels, nested, color=["#9aa5b1"] * len(runs) + ["#2b6cb0"] * len(blends), label="OOF (nested for blends)")
    in_sample = [b.record.scores["in_sample"] for b in blends]
    ax1.scatter(in_sample, labels[len(runs):], color="#e53e3e", zorder=3, label="in-sample (optimistic)")
    every = nested + in_sample
    pad = (max(every) - min(every)) * 0.15 + 1e-3
    ax1.set_xlim(min(every) - pad, max(every) + pad)
    ax1.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
    ax1.invert_yaxis()
    ax1.set_xlabel(f"{metric.name} ({'higher' if metric.greater_is_better else 'lower'} is better)")
    ax1.legend(loc="lower right", fontsize=8)
    W = np.array([[b.record.weights.get(r, 0.0) for r in run_ids] for b in blends])
    ax2.imshow(W, cmap="Blues", vmin=0, vmax=max(W.max(), 1e-9), aspect="auto")
    ax2.set_xticks(range(len(run_ids)), run_ids, rotation=45, ha="right", fontsize=8)
    ax2.set_yticks(range(len(blends)), [b.record.method for b in blends])
    for (i, j), w in np.ndenumerate(W):
        ax2.text(j, i, f"{w:.2f}", ha="center", va="center", fontsize=7,
                 color="white" if w > 0.6 * W.max() else "black")
    ax2.set_title("weight of each run in each blend")
    fig.suptitle(f"{spec.slug}: blends fitted within folds")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    from kagtools.core.tracking import log_artifacts

    for b in blends:  # the chart beside each blend's MLflow run (a no-op when tracking is off)
        log_artifacts([path], run_id=b.run_id)
    return path
