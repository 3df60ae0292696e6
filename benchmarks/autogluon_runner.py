"""AutoGluon on one Kaggle-style competition, run by ``benchmarks/tabular.py`` with the python of
its own venv (``benchmarks/.venv-autogluon``: AutoGluon 1.6.3 pins pandas < 2.4, so it never
shares kagtools' environment). This file imports nothing from kagtools.

    python benchmarks/autogluon_runner.py --train train.csv --test test.csv --id id --label y \
        --problem-type binary --eval-metric roc_auc --presets medium_quality --time-limit 300 \
        --out predictions.csv --info info.json --path /tmp/ag-models

``predictions.csv``: the id, ``label`` (the predicted class or value) and, for classification,
one ``proba::<class>`` column per class. ``info.json``: fit and predict seconds, the models
AutoGluon trained, the best one and its validation score (sign as the metric's: lower is better
for RMSE and log loss).
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--id", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--problem-type", required=True, choices=["binary", "multiclass", "regression"])
    p.add_argument("--eval-metric", required=True)
    p.add_argument("--presets", required=True)
    p.add_argument("--time-limit", type=float)
    p.add_argument("--path", required=True, help="AutoGluon's model folder")
    p.add_argument("--out", required=True)
    p.add_argument("--info", required=True)
    args = p.parse_args()

    from autogluon.tabular import TabularPredictor

    train = pd.read_csv(args.train)
    test = pd.read_csv(args.test)
    ids = test[args.id]
    train, test = train.drop(columns=[args.id]), test.drop(columns=[args.id])
    start = time.perf_counter()
    predictor = TabularPredictor(label=args.label, problem_type=args.problem_type, eval_metric=args.eval_metric,
                                 path=args.path, verbosity=1)
    predictor.fit(train, presets=args.presets, time_limit=args.time_limit)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    out = pd.DataFrame({args.id: ids.to_numpy(), "label": predictor.predict(test).to_numpy()})
    if args.problem_type != "regression":
        proba = predictor.predict_proba(test)
        for c in proba.columns:
            out[f"proba::{c}"] = proba[c].to_numpy()
    predict_seconds = time.perf_counter() - start
    out.to_csv(args.out, index=False)
    board = predictor.leaderboard(silent=True)
    best = predictor.model_best
    # AutoGluon reports every score as higher-is-better (minus the log loss); back to the metric's own.
    score_val = float(predictor.eval_metric.convert_score_to_original(
        board.set_index("model").loc[best, "score_val"]))
    info = {"fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "best_model": best,
            "score_val": score_val, "models": board["model"].tolist(), "presets": args.presets,
            "time_limit": args.time_limit}
    with open(args.info, "w") as fh:
        json.dump(info, fh, indent=1)


if __name__ == "__main__":
    main()
