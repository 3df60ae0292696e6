"""U.S. Patent Phrase to Phrase Matching: anchor-grouped CV of the classical baseline, the
MiniLM cross-encoder and their blend; and what a random split would have claimed.

The cross-encoder is fine-tuned on CPU here, so by default only its first ``--ce-folds`` folds
are trained (each on the full training side of the fold, with the profile's row/epoch budget);
the blend is then scored on those folds' rows only, and the table says so.

    KAGTOOLS_DATA_DIR=/work/shared/data HF_HUB_OFFLINE=1 \
        .venv/bin/python -m benchmarks.patent [--ce-folds 1] [--profile cpu] [--threads 1]
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
from kagtools.folds import Folds, make_folds
from kagtools.spec import CVScheme

SLUG = "us-patent-phrase-to-phrase-matching"


def _pearson(y, p) -> float:
    return float(pearsonr(np.ravel(y), np.ravel(p))[0])


def _per_fold(y: np.ndarray, p: np.ndarray, fold: np.ndarray, folds) -> list[float]:
    return [_pearson(y[fold == f], p[fold == f]) for f in folds]


def main() -> None:
    import torch

    from kagtools.models import create_model
    from kagtools.pipeline import pipeline_models
    from kagtools.workflow import open_context, run_model
    from pipelines.us_patent_phrase_to_phrase_matching import anchor_overlap

    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--ce-folds", type=int, default=1, help="cross-encoder folds to train (all: the full run)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="kagtools-bench-patent-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = open_context(SLUG, workdir=workdir)
    models = pipeline_models(ctx.spec, args.profile)
    lines = ["## U.S. Patent Phrase to Phrase Matching (`benchmarks/patent.py`)", ""]

    overlap = anchor_overlap(ctx.data)
    start = time.perf_counter()
    cache = workdir / "training_set.joblib"  # rerunning on the same --workdir skips the features
    cached = cache.is_file()
    if cached:
        tset = joblib.load(cache)
    else:
        tset = ctx.training_set
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
        f"Metric: Pearson, mean of the per-fold scores +- their std unless noted.",
        "",
        f"Features (similarity measures + frozen MiniLM embeddings of {n_phrases} distinct "
        f"phrases, train and test together): {feat_s:.0f} s with {args.threads} torch thread(s)"
        f"{' (read from the cache of an earlier run)' if cached else ''}.",
        "",
        "| model | validation | Pearson | per fold | seconds |",
        "|---|---|---|---|---|",
    ]
    zero = _per_fold(y, tset.X["emb_cos"].to_numpy(), fold, range(n_splits))
    lines.append(f"| MiniLM cosine, zero-shot | anchor-grouped | {np.mean(zero):.4f} +- {np.std(zero, ddof=1):.4f} | "
                 f"{', '.join(f'{s:.3f}' for s in zero)} | - |")

    lgbm_name, lgbm_params = models["similarity_lgbm"]
    ctx.__dict__["training_set"] = tset  # the cached_property, filled from the cache
    lgbm_run = run_model(ctx, lgbm_name, lgbm_params, save_models=False)
    lgbm_oof = lgbm_run.oof.set_index("id").loc[tset.ids, "pred"].to_numpy()
    lgbm_folds = [f["score"] for f in lgbm_run.meta["scores"]["folds"]]
    lines.append(f"| similarity features -> LightGBM | anchor-grouped | {np.mean(lgbm_folds):.4f} +- "
                 f"{np.std(lgbm_folds, ddof=1):.4f} | {', '.join(f'{s:.3f}' for s in lgbm_folds)} | "
                 f"{lgbm_run.meta['wall_seconds']:.0f} (+ features) |")

    # The lesson: the same model on a random split, where validation anchors were trained on.
    random_spec = dataclasses.replace(ctx.spec, cv=CVScheme(splitter="KFold", n_splits=n_splits,
                                                            seed=ctx.spec.cv.seed))
    rtable = make_folds(ctx.data.train, random_spec)
    rfolds = Folds(table=rtable, scheme=random_spec.cv.as_dict(), hash="random-kfold")
    rfold = rfolds.assignments(tset.ids)
    rpred = np.zeros(len(y))
    for f in range(n_splits):
        m = create_model(lgbm_name, **lgbm_params).fit(tset.X[rfold != f], y[rfold != f])
        rpred[rfold == f] = m.predict_scores(tset.X[rfold == f])
    leaky = _per_fold(y, rpred, rfold, range(n_splits))
    lines.append(f"| similarity features -> LightGBM | random KFold (leaks anchors) | {np.mean(leaky):.4f} +- "
                 f"{np.std(leaky, ddof=1):.4f} | {', '.join(f'{s:.3f}' for s in leaky)} | - |")

    record("patent", "\n".join(lines + ["", "_Cross-encoder running..._"]))  # kept if it is cut short
    ce_name, ce_params = models["cross_encoder"]
    ce_folds = list(range(min(args.ce_folds, n_splits)))
    ce_pred = np.full(len(y), np.nan)
    ce_rows = []
    for f in ce_folds:
        tr, va = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        t0 = time.perf_counter()
        model = create_model(ce_name, **ce_params, seed=ctx.spec.cv.seed + f)
        model.fit(tset.X.iloc[tr], y[tr])
        fit_s = time.perf_counter() - t0
        ce_pred[va] = model.predict_scores(tset.X.iloc[va])
        steps = len(model.lr_trace_)
        ce_rows.append({"fold": f, "pearson": _pearson(y[va], ce_pred[va]), "fit_s": fit_s,
                        "total_s": time.perf_counter() - t0, "steps": steps, "max_length": model.max_length_})
        pd.DataFrame({"id": tset.ids.iloc[va], "pred": ce_pred[va]}).to_csv(workdir / f"ce_oof_fold{f}.csv", index=False)
        print(ce_rows[-1], flush=True)
    ce_scores = [r["pearson"] for r in ce_rows]
    done = np.isin(fold, ce_folds)
    scope = "anchor-grouped" if len(ce_folds) == n_splits else f"anchor-grouped, fold{'s' if len(ce_folds) > 1 else ''} {', '.join(map(str, ce_folds))} of {n_splits} only"
    spread = f" +- {np.std(ce_scores, ddof=1):.4f}" if len(ce_scores) > 1 else ""
    lines.append(f"| MiniLM cross-encoder (`{args.profile}` profile) | {scope} | {np.mean(ce_scores):.4f}{spread} | "
                 f"{', '.join(f'{s:.3f}' for s in ce_scores)} | {np.mean([r['total_s'] for r in ce_rows]):.0f} per fold |")
    lgbm_same = _per_fold(y, lgbm_oof, fold, ce_folds)
    blend_scores = _per_fold(y, (lgbm_oof + ce_pred) / 2, fold, ce_folds) if done.any() else []
    lines.append(f"| mean of LightGBM and cross-encoder | {scope} | {np.mean(blend_scores):.4f} | "
                 f"{', '.join(f'{s:.3f}' for s in blend_scores)} (LightGBM alone on the same rows: "
                 f"{', '.join(f'{s:.3f}' for s in lgbm_same)}) | - |")
    lines += [
        "",
        f"Cross-encoder `{args.profile}` profile: `{ce_params}`; per fold: " + "; ".join(
            f"fold {r['fold']}: {r['steps']} optimiser steps, max length {r['max_length']} tokens, fit {r['fit_s']:.0f} s, "
            f"fit + predict {r['total_s']:.0f} s" for r in ce_rows) + f", {args.threads} torch thread(s).",
        "The blend is a plain mean (no weights fitted on the scored rows).",
        f"Timings with a 1-minute load average of {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end "
        "(other work shared the CPUs during the run).",
    ]
    print("\n".join(lines))
    record("patent", "\n".join(lines))


if __name__ == "__main__":
    main()
