"""``kagtools tune <slug> --model NAME``: an Optuna study of the model's CV score on the shared folds."""

from __future__ import annotations

from kagtools.cli.options import (
    add_common,
    command,
    int_at_least,
    json_object_arg,
    n_jobs_arg,
    open_ctx,
    print_runs,
)
from kagtools.core.table import format_table
from kagtools.errors import KagtoolsError

__all__ = ["cmd_tune"]


def _tune_options(p) -> None:
    add_common(p)
    p.add_argument("--model", help="registered model name (default: the pipeline's lgbm, else its first "
                                   "model with a search space)")
    p.add_argument("--trials", type=int_at_least(1), default=50,
                   help="finished trials the study should have (a rerun continues up to it; default 50)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--storage", help="Optuna storage: a SQLAlchemy URL (postgresql://user:pw@host/db) or "
                                     "journal:PATH (default: sqlite under runs/<slug>/optuna.db)")
    p.add_argument("--study", help="study name (default: <slug>-<model>-<features>-<folds hash>)")
    p.add_argument("--n-jobs", type=n_jobs_arg, default=1, help="workers running trials side by side (processes)")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://HOST:PORT): run the workers there")
    p.add_argument("--pruner", default="median",
                   help="prune on per-fold scores: median (default), halving or none")
    p.add_argument("--seed", type=int, help="sampler and model seed (default: the CV seed)")
    p.add_argument("--params", help="parameters held fixed, as a JSON object")
    p.add_argument("--space", help='search-space entries as JSON, e.g. \'{"num_leaves": {"low": 4, "high": 64, '
                                   '"log": true}, "max_depth": {"choices": [-1, 4, 8]}}\'')
    p.add_argument("--no-run", action="store_true", help="do not write a run for the best parameters")


def _default_model(ctx) -> str:
    from kagtools.core.model_registry import get_model_class
    from kagtools.workflow.pipeline import pipeline_models

    models = [model for model, _ in pipeline_models(ctx.spec).values()]
    if "lgbm" in models:
        return "lgbm"
    for model in models:
        if hasattr(get_model_class(model), "search_space"):
            return model
    raise KagtoolsError(f"the pipeline of '{ctx.spec.slug}' has no model with a search space; pass --model")


@command("tune", "tune a model's hyper-parameters with Optuna on the shared folds (resumable study)",
         example="kagtools tune titanic --model lgbm --trials 30", options=_tune_options)
def cmd_tune(args) -> None:
    from kagtools.tuning.storage import redact_url
    from kagtools.tuning.study import tune
    from kagtools.tuning.tuned import tuned_params_path
    from kagtools.workflow.pipeline import pipeline_models

    if args.model:  # a misspelt model or a bad fixed value fails now, not after the data is read
        from kagtools.core.model_registry import check_params

        check_params(args.model, json_object_arg(args.params))
    ctx = open_ctx(args)
    args.model = args.model or _default_model(ctx)
    print(f"tuning {args.model} on {ctx.spec.slug}", flush=True)
    # The pipeline's fixed parameters for the model are the tuning's starting point.
    base = next((dict(p) for m, p in pipeline_models(ctx.spec).values() if m == args.model), {})
    result, run, paths = tune(
        ctx, args.model, n_trials=args.trials, timeout=args.timeout, storage=args.storage,
        study_name=args.study, n_jobs=args.n_jobs, scheduler=args.scheduler, pruner=args.pruner,
        seed=args.seed, params=json_object_arg(args.params), base_params=base,
        space=json_object_arg(args.space, "--space", '{"num_leaves": {"low": 4, "high": 64}}'),
        run_best=not args.no_run)
    rows = [{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()} for row in result.top]
    print(f"\nstudy {result.study_name}: {result.n_complete} complete, {result.n_pruned} pruned, "
          f"{result.n_failed} failed; this session {result.seconds:.1f}s")
    print(format_table(rows, list(rows[0])))
    if run is not None:
        print_runs(ctx, [run])
        print(f"run: {run.path}")
    print(f"best params: {tuned_params_path(ctx.root, args.model)} (used by `kagtools cv/submit` unless --params)")
    if paths:
        print(f"report: {paths[0]}")
    journal = result.storage.startswith("journal:")
    where = result.storage.removeprefix("journal:") if journal else redact_url(result.storage)
    print(f"dashboard: pip install optuna-dashboard && optuna-dashboard {where}")
