"""Any tabular competition from its files alone: the default path against a default LightGBM.

For each dataset the benchmark lays out Kaggle-style files (train.csv, test.csv,
sample_submission.csv) in a temporary directory, runs ``kagtools init``'s inference (spec,
metric, advisor's split), then on the SAME folds:

- ``lgbm default``: LightGBM's own defaults (100 trees, learning rate 0.1) on the raw columns;
- every default model on :class:`~kagtools.features.auto.AutoFeatures` (fitted in each fold);
- the blends ``kagtools submit`` tries, scored nested (weights fitted within folds);
- ``default path``: the run ``kagtools submit`` chooses.

Datasets: Titanic (the real files, no spec, no pipeline) and scikit-learn's bundled datasets
(no download): breast_cancer, wine, diabetes, digits, iris; 80% of rows are train, 20% test.
``--only movielens`` (90k rows, minutes) records its own section.

    .venv/bin/python -m benchmarks.tabular [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets

from benchmarks.record import record
from kagtools.analysis.spec_inference import infer_spec, write_inferred_spec
from kagtools.core.engine import TrainingSet, cross_validate
from kagtools.core.metrics import get_metric
from kagtools.ensemble.blend import auto_blend
from kagtools.workflow.context import choose_best, open_context, run_pipeline_models

MIRROR = Path(os.environ.get("KAGTOOLS_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))

# The project's mirror data, used with no spec and no pipeline (the slug is prefixed "bench-").
SHIPPED = ("titanic", "movielens")

# name -> (loader, submission: "labels" | "probabilities" | "values")
SKLEARN = {
    "breast_cancer": (datasets.load_breast_cancer, "probabilities"),
    "wine": (datasets.load_wine, "probabilities"),
    "diabetes": (datasets.load_diabetes, "values"),
    "digits": (datasets.load_digits, "labels"),
    "iris": (datasets.load_iris, "labels"),
}


def sklearn_competition(name: str, root: Path) -> Path:
    """Kaggle-style files for one scikit-learn dataset (class names as labels, ids from 0)."""
    loader, kind = SKLEARN[name]
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    target = "target"
    if kind != "values":
        frame[target] = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
    frame.insert(0, "id", np.arange(len(frame)))
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    n_train = int(0.8 * len(frame))
    train, test = frame.iloc[:n_train], frame.iloc[n_train:].drop(columns=target)
    if kind == "probabilities" and frame[target].nunique() > 2:
        sample = pd.DataFrame({"id": test["id"], **{c: 1 / frame[target].nunique()
                                                      for c in sorted(frame[target].unique())}})
    elif kind == "probabilities":
        sample = pd.DataFrame({"id": test["id"], target: 0.5})
    elif kind == "labels":
        sample = pd.DataFrame({"id": test["id"], target: frame[target].iloc[:len(test)].to_numpy()})
    else:
        sample = pd.DataFrame({"id": test["id"], target: 0.0})
    path = root / name
    path.mkdir(parents=True)
    train.to_csv(path / "train.csv", index=False)
    test.to_csv(path / "test.csv", index=False)
    sample.to_csv(path / "sample_submission.csv", index=False)
    return path


def run_dataset(name: str, data_dir: Path, workdir: Path, *, n_jobs: int) -> dict:
    slug = f"bench-{name}"
    start = time.perf_counter()
    inf = infer_spec(slug, data_dir)
    write_inferred_spec(inf, workdir / "competitions" / f"{slug}.toml")
    ctx = open_context(slug, data_dir=data_dir, workdir=workdir)
    spec, folds = ctx.spec, ctx.folds
    metric = get_metric(spec.metric)
    # The baseline: LightGBM's defaults on the raw columns (its native categoricals), same folds.
    tset = ctx.training_set
    raw = TrainingSet(X=tset.X, y=tset.y, ids=tset.ids, X_test=tset.X_test, test_ids=tset.test_ids, name="raw")
    t0 = time.perf_counter()
    base = cross_validate(spec, raw, folds, "lgbm", {"n_estimators": 100, "learning_rate": 0.1},
                          root=ctx.root, n_jobs=n_jobs, save_models=False)
    base_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    singles = run_pipeline_models(ctx, n_jobs=n_jobs)
    blends = auto_blend(spec, singles, tset.y, tset.ids, root=ctx.root, features=tset)
    chosen = choose_best(ctx, singles + blends)
    path_seconds = time.perf_counter() - t0
    s = base.record.scores
    return {
        "name": name, "rows": len(tset.X), "task": spec.task, "metric": metric.name,
        "direction": "higher" if metric.greater_is_better else "lower",
        "split": f"{folds.scheme['splitter']} {folds.n_splits}x{folds.n_repeats}",
        "base": s["cv"], "base_std": s["cv_std"], "base_seconds": base_seconds,
        "singles": {r.record.model: r.record.scores["cv"] for r in singles},
        "chosen": chosen.score, "chosen_run": chosen.record.model,
        "chosen_std": chosen.record.scores.get("cv_std", 0.0), "path_seconds": path_seconds,
        "at_least_as_good": metric.better(chosen.score, s["cv"]) or chosen.score == s["cv"],
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="datasets to run (default: all)")
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("KAGTOOLS_QUIET", "1")
    names = args.only or ["titanic", *SKLEARN]
    section = "tabular" if not args.only else "tabular-" + "-".join(names)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kagtools-bench-") as tmp:
        tmp = Path(tmp)
        for name in names:
            data_dir = MIRROR / name if name in SHIPPED else sklearn_competition(name, tmp / "data")
            row = run_dataset(name, data_dir, tmp / "work", n_jobs=args.n_jobs)
            print(row, flush=True)
            rows.append(row)
    lines = [
        "Command: `.venv/bin/python -m benchmarks.tabular` (`benchmarks/tabular.py`). Each dataset is laid out as "
        "Kaggle files (80% train / 20% test for scikit-learn's bundled datasets; Titanic's real files with no "
        "spec and no pipeline); `kagtools init`'s inference picks the metric and the advisor the split; every "
        "column below is scored on the same folds. *lgbm default*: LightGBM's defaults (100 trees, learning "
        "rate 0.1) on the raw columns. *default path*: the run `kagtools submit` chooses among the default "
        "models on automatic features (fitted within folds) and their blends (blends scored nested: weights "
        "fitted within folds). The choice among runs is itself made on the OOF scores, so its score carries a "
        "small selection optimism; the single-model columns carry none.",
        "",
        "| dataset | rows | task | metric | split | lgbm default | " + " | ".join(rows[0]["singles"]) +
        " | default path (chosen run) | at least as good | seconds (lgbm / path) |",
        "|---|---|---|---|---|---|" + "---|" * len(rows[0]["singles"]) + "---|---|---|",
    ]
    for r in rows:
        singles = " | ".join(f"{v:.4f}" for v in r["singles"].values())
        lines.append(
            f"| {r['name']} | {r['rows']} | {r['task']} | {r['metric']} ({r['direction']}) | {r['split']} | "
            f"{r['base']:.4f} +- {r['base_std']:.4f} | {singles} | {r['chosen']:.4f} +- {r['chosen_std']:.4f} "
            f"({r['chosen_run']}) | {'yes' if r['at_least_as_good'] else 'no'} | "
            f"{r['base_seconds']:.0f} / {r['path_seconds']:.0f} |")
    lines += ["", "AutoGluon was not run side by side: autogluon.tabular 1.6.3 (the newest on PyPI when this was "
              "written) requires pandas < 2.4, and this project runs pandas 3, so installing it would downgrade "
              "the shared environment. *path* seconds include every default model and every blend; 1-minute "
              f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."]
    record(section, f"## {section.capitalize()}: any competition from its files (default path vs default LightGBM)\n\n"
           + "\n".join(lines))


if __name__ == "__main__":
    main()
