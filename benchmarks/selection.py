"""Benchmark: the winner's curse. The naive best CV, the selection-aware estimate of the whole
``submit`` procedure (the choice included), and what each choice rule picks.

For each competition, every run ``kagtools submit`` makes (models and blends) is scored; then
two choice rules are compared, each by nested selection (chosen on the other folds of a repeat,
scored on the fold left out: :func:`kagtools.ensemble.selection.selection_estimate`):

- ``max``: the run with the best mean CV (what most tools do);
- ``one_se``: kagtools' rule, the most robust run within the paired noise of the leader.

scikit-learn's bundled sets are split 80/20 as in ``benchmarks/tabular.py``; their held-out
20% is scored here too, so the estimate can be checked against a hidden score. The shipped
competitions' hidden labels are kept by the maintainers (Kaggle's leaderboard), so there the
table shows the estimates only.

Run: ``.venv/bin/python -m benchmarks.selection [--only titanic iris ...]
[--runs digit-recognizer=/path/to/workdir ...]`` (``--runs`` reuses the runs of an earlier
``kagtools submit --workdir``, for competitions too slow to retrain here).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.record import record
from benchmarks.tabular import MIRROR, SKLEARN, sklearn_competition
from kagtools.analysis.spec_inference import infer_spec, write_inferred_spec
from kagtools.core.metrics import get_metric
from kagtools.ensemble.blend import auto_blend
from kagtools.ensemble.selection import choose, selection_estimate
from kagtools.workflow.context import open_context, run_pipeline_models

SHIPPED = ("titanic", "movielens")


def _hidden_score(run, spec, truth: pd.DataFrame) -> float:
    """The chosen run's test predictions scored on the held-out labels."""
    test = run.test.set_index("id").loc[truth[spec.id_col]]
    preds = test[run.pred_cols].to_numpy(dtype=float)
    preds = preds[:, 0] if preds.shape[1] == 1 else preds
    y = truth[spec.target].to_numpy()
    if run.record.classes is not None:
        index = {c: i for i, c in enumerate(run.record.classes)}
        y = np.array([index[v] for v in y])
    return get_metric(spec.metric)(y, preds)


def _row(name: str, ctx, runs, hidden_of: Callable | None = None) -> dict:
    """Both rules on ``runs``; ``hidden_of(run)`` scores a run on held-out labels, where known."""
    metric = ctx.spec.metric
    by_max = selection_estimate(runs, metric, rule="max")
    by_rule = selection_estimate(runs, metric)
    chosen = choose(runs, metric)
    best = max(runs, key=lambda r: r.score * get_metric(metric).sign())
    folds = ctx.folds
    return {"name": name, "metric": metric, "split": f"{folds.scheme['splitter']} {folds.n_splits}x{folds.n_repeats}",
            "n_runs": len(runs), "naive": by_max["naive"], "naive_run": best.run_id,
            "max": by_max, "rule": by_rule, "chosen": chosen.run_id, "chosen_cv": chosen.score,
            "hidden": hidden_of(chosen) if hidden_of else None, "hidden_max": hidden_of(best) if hidden_of else None}


def shipped(slug: str, workdir: Path | None, tmp: Path) -> dict:
    """``kagtools submit <slug>`` (or its earlier runs in ``workdir``), then both rules."""
    name = slug if workdir is None else f"{slug} (runs of {workdir.name})"
    if workdir is None:
        workdir = tmp / slug
        env = {**os.environ, "KAGTOOLS_QUIET": "1", "PYTHONHASHSEED": "0"}
        subprocess.run([str(Path(sys.executable).parent / "kagtools"), "submit", slug, "--workdir", str(workdir),
                        "--no-eda"], env=env, check=True, stdout=subprocess.DEVNULL)
    ctx = open_context(slug, workdir=workdir)
    return _row(name, ctx, ctx.runs())


def sklearn_set(name: str, tmp: Path) -> dict:
    """A scikit-learn set as a new competition with no spec: the default path, then both rules."""
    data_dir = sklearn_competition(name, tmp / "data")
    loader, kind = SKLEARN[name]
    slug = f"bench-{name}"
    write_inferred_spec(infer_spec(slug, data_dir), tmp / "work" / "competitions" / f"{slug}.toml")
    ctx = open_context(slug, data_dir=data_dir, workdir=tmp / "work")
    tset = ctx.training_set
    runs = run_pipeline_models(ctx, n_jobs=2)
    runs += auto_blend(ctx.spec, runs, tset.y, tset.ids, root=ctx.root, features=tset)
    # The held-out 20%: the same rows sklearn_competition left out of train.csv, with their labels.
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    if kind != "values":
        frame["target"] = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
    frame.insert(0, "id", np.arange(len(frame)))
    test_ids = pd.read_csv(data_dir / "test.csv")["id"]
    truth = frame.set_index("id").loc[test_ids].reset_index()
    return _row(name, ctx, runs, hidden_of=lambda run: _hidden_score(run, ctx.spec, truth))


def _fmt(est: dict) -> str:
    return f"{est['estimate']:.4f} +- {est['std']:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="competitions and sets to run (default: all)")
    parser.add_argument("--runs", nargs="*", default=[], metavar="SLUG=WORKDIR",
                        help="use the runs of an earlier `kagtools submit --workdir WORKDIR` for SLUG")
    args = parser.parse_args()
    os.environ.setdefault("KAGTOOLS_QUIET", "1")
    os.environ.setdefault("KAGTOOLS_DATA_DIR", str(MIRROR))
    reuse = dict(item.split("=", 1) for item in args.runs)
    names = args.only or [*SHIPPED, *reuse, *SKLEARN]
    rows = []
    with tempfile.TemporaryDirectory(prefix="kagtools-selection-") as tmp:
        for name in names:
            tmp_one = Path(tmp) / name
            tmp_one.mkdir()
            if name in SKLEARN:
                row = sklearn_set(name, tmp_one)
            else:
                row = shipped(name, Path(reuse[name]) if name in reuse else None, tmp_one)
            print({k: v for k, v in row.items() if k not in ("max", "rule")}, flush=True)
            rows.append(row)
    # ``--only`` adds rows beside the full table (its own section), under a short heading.
    head = [f"### Selection, more rows (`benchmarks/selection.py --only {' '.join(names)}`): columns as in "
            "*Selection* above", ""] if args.only else [
        "## Selection: the naive best CV vs the selection-aware estimate (`benchmarks/selection.py`)",
        "",
        "Every run `kagtools submit` makes (models and blends), then two choice rules: *max*, the best mean "
        "CV; *one-SE*, kagtools' rule (the most robust run within the paired noise of the leader, "
        "`docs/ensembles.md`). Each rule's *selection-aware* estimate is nested: the choice is made on the "
        "other folds of a repeat and scored on the fold left out (mean +- std over folds). *naive*: the best "
        "mean CV, what picking the maximum claims. *hidden*: scikit-learn sets only (their held-out 20%, as "
        "in `benchmarks/tabular.py`); the shipped competitions' hidden labels are scored by the maintainers.",
        "",
    ]
    lines = head + [
        "| competition | metric | split | runs | naive best CV (run) | max: selection-aware | one-SE: "
        "selection-aware | one-SE chooses | hidden: one-SE choice / max choice |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        hidden = (f"{r['hidden']:.4f} / {r['hidden_max']:.4f}" if r["hidden"] is not None else "maintainers")
        lines.append(f"| {r['name']} | {r['metric']} | {r['split']} | {r['n_runs']} | {r['naive']:.4f} "
                     f"({r['naive_run']}) | {_fmt(r['max'])} | {_fmt(r['rule'])} | {r['chosen']} "
                     f"(CV {r['chosen_cv']:.4f}) | {hidden} |")
    lines += ["", f"1-minute load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."]
    section = "selection" if not args.only else "selection-" + "-".join(names)
    record(section, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
