"""``kagtools blend`` and ``kagtools boost``: ensembles of recorded runs, written as runs."""

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
from kagtools.errors import KagtoolsError

__all__ = ["cmd_blend", "cmd_boost"]


def _blend_options(p) -> None:
    add_common(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--runs", nargs="+", metavar="ID", help="the runs to blend (default: every single-model run)")
    which.add_argument("--top", type=int_at_least(1), metavar="K", help="blend the K best single-model runs")
    p.add_argument("--method", nargs="+", default=["auto"], metavar="METHOD",
                   help="blend method(s) (see docs/ensembles.md; an unknown one is named with the known ones); "
                        "auto tries them all and draws reports/<slug>/blend.png")


def _select(ctx, ids: list[str] | None, top: int | None):
    from kagtools.core.metrics import get_metric

    if ids:
        return [ctx.run(i) for i in ids]  # unknown ids and other folds are refused downstream
    runs = [r for r in ctx.runs() if r.record.kind != "blend"]
    runs.sort(key=lambda r: -get_metric(ctx.spec.metric).sign() * r.score)
    return runs[:top] if top else runs


@command("blend", "blend recorded runs (fitted within folds) into new runs; the best by nested score is marked",
         example="kagtools blend titanic --top 4 --method hill_climb stack_linear", options=_blend_options)
def cmd_blend(args) -> None:
    from kagtools.ensemble.blend import auto_blend, blend, plot_blends
    from kagtools.ensemble.blenders import BLENDERS
    from kagtools.workflow.context import choose_best

    for method in args.method:  # a misspelt method fails before any data is read
        if method != "auto":
            BLENDERS.get(method)
    ctx = open_ctx(args)
    ctx.from_artifacts = True  # the recorded folds, targets and runs are enough, but for stack_lgbm_features
    runs = _select(ctx, args.runs, args.top)
    if len(runs) < 2:
        raise KagtoolsError(f"'{ctx.spec.slug}' has {len(runs)} run(s) on the current folds; a blend needs two")
    y, ids = ctx.targets()
    try:
        tset = ctx.training_set
    except KagtoolsError:
        tset = None
        print("no data folder: blending from the recorded runs and targets (stack_lgbm_features needs the data)")
    if args.method == ["auto"]:
        blends = auto_blend(ctx.spec, runs, y, ids, root=ctx.root, reports=ctx.reports, features=tset)
    else:
        blends = [blend(ctx.spec, runs, y, ids, root=ctx.root, method=m, features=tset)
                  for m in args.method if m != "auto"]
        plot_blends(ctx.spec, runs, blends, ctx.reports / "blend.png")
    best = choose_best(ctx, runs + blends)
    print_runs(ctx, runs + blends, highlight=best.run_id)
    print(f"\nbest by nested OOF score: {best.run_id}; weights and scores: {ctx.reports / 'blend.png'}")


def _boost_options(p) -> None:
    add_common(p)
    p.add_argument("--base", required=True, metavar="ID", help="the run whose OOF residuals are fitted")
    p.add_argument("--model", default="lgbm", help="registered learner, fitted as a regressor")
    p.add_argument("--params", help="learner parameters as a JSON object")
    p.add_argument("--learning-rate", type=float, default=0.5, help="shrinkage of the line-searched step")
    p.add_argument("--seed", type=int)
    p.add_argument("--n-jobs", type=n_jobs_arg, default=-1)


@command("boost", "fit a second model on a run's OOF residuals within folds (ensemble-level boosting)",
         example="kagtools boost titanic --base logreg-ea8d8500 --model lgbm", options=_boost_options)
def cmd_boost(args) -> None:
    from kagtools.core.model_registry import check_params
    from kagtools.ensemble.boost import boost_run

    check_params(args.model, json_object_arg(args.params), task="regression")
    ctx = open_ctx(args)
    base = ctx.run(args.base)
    run = boost_run(ctx.spec, ctx.training_set, ctx.folds, base, root=ctx.root, model=args.model,
                    params=json_object_arg(args.params), learning_rate=args.learning_rate, seed=args.seed,
                    n_jobs=args.n_jobs)
    print_runs(ctx, [base, run], highlight=run.run_id)
    print(f"run: {run.path}")
