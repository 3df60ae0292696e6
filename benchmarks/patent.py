"""U.S. Patent Phrase to Phrase Matching: anchor-grouped CV of the pipeline's models (the
classical baseline and the cross-encoder of a profile), their blends and the submission; the
zero-shot MiniLM cosine; and what a random split would have claimed.

This is ``kagtools submit us-patent-phrase-to-phrase-matching --profile <profile>`` with timings:
every model of the profile over all folds, the blends scored nested, the best run written as a
validated submission. Runs are kept in ``--workdir``: rerunning there reuses finished runs.

    KAGTOOLS_DATA_DIR=/work/shared/data HF_HUB_OFFLINE=1 \
        .venv/bin/python -m benchmarks.patent [--profile cpu] [--workdir DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from scipy.stats import pearsonr

from benchmarks.record import record
from kagtools.core.folds import Folds, make_folds
from kagtools.core.spec import CVScheme

SLUG = "us-patent-phrase-to-phrase-matching"


def _pearson(y, p) -> float:
    return float(pearsonr(np.ravel(y), np.ravel(p))[0])


def _row(name: str, validation: str, folds: list[float], seconds: str) -> str:
    return (f"| {name} | {validation} | {np.mean(folds):.4f} +- {np.std(folds, ddof=1):.4f} | "
            f"{', '.join(f'{s:.3f}' for s in folds)} | {seconds} |")


def main() -> None:
    import torch

    from kagtools.core.runs import make_run_id
    from kagtools.ensemble.blend import auto_blend
    from kagtools.errors import KagtoolsError
    from kagtools.models import create_model
    from kagtools.workflow.context import choose_best, make_submission, open_context, run_model
    from kagtools.workflow.pipeline import pipeline_models
    from pipelines.us_patent_phrase_to_phrase_matching import anchor_overlap

    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="kagtools-bench-patent-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = open_context(SLUG, workdir=workdir)
    models = pipeline_models(ctx.spec, args.profile)
    lines = ["## U.S. Patent Phrase to Phrase Matching (`benchmarks/patent.py`)", ""]
    wall = time.perf_counter()

    overlap = anchor_overlap(ctx.data)
    start = time.perf_counter()
    cache = workdir / "training_set.joblib"  # rerunning on the same --workdir skips the features
    cached = cache.is_file()
    if cached:
        ctx.__dict__["training_set"] = joblib.load(cache)  # the cached_property, filled from the cache
    tset = ctx.training_set
    if not cached:
        joblib.dump(tset, cache)
    feat_s = time.perf_counter() - start
    folds = ctx.folds
    both = pd.concat([tset.X, tset.X_test])
    n_phrases = pd.concat([both["anchor"], both["target"]]).nunique()
    y = tset.y.to_numpy(dtype=float)
    fold = folds.assignments(tset.ids)
    n_splits = folds.n_splits
    lines += [
        f"{len(y)} training rows, {overlap['train_anchors']:.0f} anchors ({overlap['rows_per_anchor']:.0f} rows each); "
        f"{overlap['test_anchors_in_train']:.0%} of test anchors are in train. Split: StratifiedGroupKFold, "
        f"{n_splits} folds grouped by anchor, stratified on the 5 score values, seed {ctx.spec.cv.seed}. "
        f"Metric: Pearson, mean of the {n_splits} per-fold scores +- their std (blends: nested, their weights "
        "fitted inside the folds).",
        "",
        f"Features (similarity measures + frozen MiniLM embeddings of {n_phrases} distinct "
        f"phrases, train and test together): {feat_s:.0f} s"
        f"{' (read from the cache of an earlier run)' if cached else ''}.",
        "",
        "| model | validation | Pearson | per fold | seconds |",
        "|---|---|---|---|---|",
    ]
    zero = [_pearson(y[fold == f], tset.X["emb_cos"].to_numpy()[fold == f]) for f in range(n_splits)]
    lines.append(_row("MiniLM cosine, zero-shot", "anchor-grouped", zero, "-"))

    runs = []
    for name, (model, params) in models.items():
        run_id = make_run_id(model, params, ctx.spec.cv.seed, folds.hash, tset.name)
        try:
            run = ctx.run(run_id)
            print(f"{name}: reusing run {run_id}", flush=True)
        except KagtoolsError:
            print(f"{name}: cv {model} {params}", flush=True)
            run = run_model(ctx, model, params)
        runs.append(run)
        per_fold = [f["score"] for f in run.record.scores["folds"]]
        secs = run.record.fold_seconds
        lines.append(_row(f"{name} (`{model}`)", "anchor-grouped", per_fold,
                          f"{sum(secs):.0f} ({np.mean(secs):.0f} per fold)"))
        if model == "similarity_lgbm":
            # The lesson: the same model on a random split, where validation anchors were trained on.
            random_spec = dataclasses.replace(ctx.spec, cv=CVScheme(splitter="KFold", n_splits=n_splits,
                                                                    seed=ctx.spec.cv.seed))
            rfolds = Folds(table=make_folds(ctx.data.train, random_spec), scheme=random_spec.cv.as_dict(),
                           hash="random-kfold")
            rfold = rfolds.assignments(tset.ids)
            rpred = np.zeros(len(y))
            for f in range(n_splits):
                m = create_model(model, **params).fit(tset.X[rfold != f], y[rfold != f])
                rpred[rfold == f] = m.predict_scores(tset.X[rfold == f])
            leaky = [_pearson(y[rfold == f], rpred[rfold == f]) for f in range(n_splits)]
            lines.append(_row(f"{name} (`{model}`)", "random KFold (leaks anchors)", leaky, "-"))
        record("patent", "\n".join(lines + ["", "_Running..._"]))  # kept if the run is cut short

    blends = auto_blend(ctx.spec, runs, tset.y, tset.ids, root=ctx.root, reports=ctx.reports, features=tset)
    for b in blends:
        per_fold = [f["score"] for f in b.record.scores["folds"]]
        lines.append(_row(f"blend `{b.record.method}`", "anchor-grouped, nested", per_fold, "-"))
    best = choose_best(ctx, runs + blends)
    path = make_submission(ctx, best)
    sub = pd.read_csv(path)
    lines += [
        "",
        f"Profile `{args.profile}`: " + "; ".join(f"`{n}` = `{m}` `{p}`" for n, (m, p) in models.items()) + ".",
        f"Chosen: `{best.run_id}` (CV {best.score:.4f}: Pearson of all OOF rows pooled, not the mean of the "
        f"fold scores); submission {len(sub)} rows `id,score`, scores in "
        f"[{sub['score'].min():.3f}, {sub['score'].max():.3f}], validated against the sample.",
        f"Whole run {time.perf_counter() - wall:.0f} s (without reused runs' time) with {args.threads} torch "
        f"thread(s); 1-minute load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end.",
    ]
    print("\n".join(lines))
    record("patent", "\n".join(lines))


if __name__ == "__main__":
    main()
