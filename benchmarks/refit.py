"""Refit on every training row against the mean of the fold models (issue 20): where the presets refit.

Each data set of ``benchmarks/tabular.py`` is laid out as there (one 75/25 split, the 25%
hidden) and given ``kagtools init``'s spec. Each of the medium preset's boosters and its linear
model is cross-validated twice on the same folds: test predictions as the mean of the fold
models, and from one model refitted on every training row (an early-stopped model with the
folds' mean best round, scaled by all rows over a fold's). Both are scored on the hidden rows;
the std of their paired difference over bootstrap resamples of those rows says what is noise.
The CV is the same for both (the OOF predictions are the folds'), so only the hidden rows can
tell them apart.

    .venv/bin/python -m benchmarks.refit [--only NAME ...] [--models lgbm,logreg,...] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.record import record
from benchmarks.tabular import DATASETS, bootstrap_indices, kagtools_init, lay_out, truth_and_preds
from kagtools.core.engine import cross_validate
from kagtools.core.metrics import get_metric
from kagtools.core.submission import render_submission
from kagtools.workflow.context import open_context
from kagtools.workflow.presets import get_preset

MODELS = ("lgbm", "logreg", "xgboost", "catboost")


def run_set(name: str, models: tuple[str, ...], tmp: Path) -> list[dict]:
    """Folds-mean and refit test predictions of each model on one data set, scored on its hidden rows."""
    comp = lay_out(DATASETS[name](), tmp / "data")
    slug = f"bench-{comp.ds.name}"
    kagtools_init(comp, tmp / "work")
    ctx = open_context(slug, data_dir=comp.data_dir, workdir=tmp / "work")
    spec, metric = ctx.spec, get_metric(ctx.spec.metric)
    preset = get_preset("medium").models
    rows = []
    for model in models:
        registered, params = preset[model]
        scores, boots = {}, {}
        for refit in (False, True):
            run = cross_validate(spec, ctx.training_set, ctx.folds, registered, params, root=ctx.root, n_jobs=-1,
                                 refit=refit, save_models=False, run_id=f"{model}-{'refit' if refit else 'folds'}")
            y, p = truth_and_preds(comp, spec.task, render_submission(spec, run, ctx.data.sample_submission))
            key = "refit" if refit else "folds"
            scores[key] = float(metric(y, p))
            boots[key] = np.array([metric(y[i], p[i]) for i in bootstrap_indices(len(y), y, spec.task)])
        scores["refit_params"] = run.record.details.get("refit_params")  # the last run is the refit
        gain = (scores["refit"] - scores["folds"]) * metric.sign()
        sd = float(((boots["refit"] - boots["folds"]) * metric.sign()).std())
        verdict = "refit" if gain > 2 * sd else "folds" if gain < -2 * sd else "noise"
        rows.append({"set": name, "task": spec.task, "metric": metric.name, "model": model, **scores,
                     "gain": gain, "gain_sd": sd, "verdict": verdict, "scheme": ctx.folds.scheme})
        print(f"[{name}] {model}: folds {scores['folds']:.4f}, refit {scores['refit']:.4f} (gain {gain:+.4f} "
              f"+- {sd:.4f}: {verdict})", flush=True)
    return rows


def render(rows: list[dict]) -> str:
    lines = ["## Refit on all training rows vs the mean of the fold models (`benchmarks/refit.py`)", "",
             "Command: `.venv/bin/python -m benchmarks.refit`. The data sets and hidden 25% of "
             "`benchmarks/tabular.py`, `kagtools init`'s spec and folds; each model with the medium preset's "
             "parameters, cross-validated twice on the same folds (same CV): test predictions averaged over the "
             "fold models, and from one refit on every training row. *gain*: refit minus folds on the hidden "
             "rows, in the better-is-positive sense; *sd*: bootstrap std of that paired difference (300 "
             "resamples of the hidden rows). *verdict*: which wins by more than 2 sd, else noise.", "",
             "| set | task | metric | folds (CV scheme) | model | hidden: folds mean | hidden: refit | gain +- sd | "
             "verdict | refit rounds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sch = r["scheme"]
        rounds = ", ".join(f"{k} {v}" for k, v in (r.get("refit_params") or {}).items() if v is not None) or "same"
        lines.append(f"| {r['set']} | {r['task']} | {r['metric']} | {sch.get('n_splits')}x{sch.get('n_repeats', 1)} "
                     f"| {r['model']} | {r['folds']:.4f} | {r['refit']:.4f} | {r['gain']:+.4f} +- {r['gain_sd']:.4f} "
                     f"| {r['verdict']} | {rounds} |")
    lines += ["", "Tally per model and kind of task (refit wins / fold mean wins / noise):", ""]
    for model in dict.fromkeys(r["model"] for r in rows):
        for kind, tasks in (("classification", ("binary", "multiclass")), ("regression", ("regression",))):
            sub = [r for r in rows if r["model"] == model and r["task"] in tasks]
            if sub:
                lines.append(f"- {model}, {kind}: {sum(r['verdict'] == 'refit' for r in sub)} / "
                             f"{sum(r['verdict'] == 'folds' for r in sub)} / {sum(r['verdict'] == 'noise' for r in sub)}"
                             f"; mean gain over its sd {np.mean([r['gain'] / max(r['gain_sd'], 1e-12) for r in sub]):+.2f} "
                             f"over {len(sub)} sets")
    lines += ["", f"1-minute load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=list(DATASETS), help="data sets (default: all)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--no-record", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    models = tuple(args.models.split(","))
    if set(models) - set(MODELS):
        parser.error(f"unknown models {sorted(set(models) - set(MODELS))}; known: {', '.join(MODELS)}")
    os.environ.setdefault("KAGTOOLS_NO_TRACK", "1")
    os.environ.setdefault("KAGTOOLS_QUIET", "1")
    rows = []
    for name in args.only or list(DATASETS):
        with tempfile.TemporaryDirectory(prefix=f"kagtools-refit-{name}-") as tmp:
            rows += run_set(name, models, Path(tmp))
    text = render(rows)
    print(text)
    if not args.no_record:
        record("refit", text)


if __name__ == "__main__":
    main()
