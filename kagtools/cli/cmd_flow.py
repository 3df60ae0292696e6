"""The main flow's verbs: ``eda``, ``cv``, ``runs``, ``submit`` and ``models``."""

from __future__ import annotations

from kagtools.cli.options import add_common, command, json_object_arg, open_ctx, options, print_runs

__all__ = ["cmd_eda", "cmd_cv", "cmd_runs", "cmd_submit", "cmd_models"]


@command("eda", "write reports/<slug>/eda.html and print a summary")
@options(add_common)
def cmd_eda(args) -> None:
    from kagtools.analysis.eda import write_eda

    ctx = open_ctx(args)
    path, res = write_eda(ctx.spec, ctx.data, ctx.reports, notes=ctx.eda_notes())
    print("\n".join(res.summary))
    print(f"report: {path}")


def _cv_options(p):
    add_common(p)
    p.add_argument("--model", required=True, help="registered model name (see `kagtools models`)")
    p.add_argument("--params", help="model parameters as a JSON object")
    p.add_argument("--seed", type=int)
    p.add_argument("--n-jobs", type=int, default=-1, help="parallel fold fits (joblib)")
    p.add_argument("--bag", type=int, default=1, help="repeat the run over N seeds and average (bagging)")
    p.add_argument("--bootstrap", action="store_true", help="with --bag: fit each bag on a bootstrap sample")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://HOST:PORT) to run folds on")


@command("cv", "cross-validate one model on the shared folds and write its run")
@options(_cv_options)
def cmd_cv(args) -> None:
    from kagtools.core.parallel import scheduler_context
    from kagtools.tuning.tuned import tuned_params
    from kagtools.workflow.context import run_model

    ctx = open_ctx(args)
    params = {**tuned_params(ctx.root, args.model), **json_object_arg(args.params)}
    with scheduler_context(args.scheduler):
        if args.bag > 1:
            from kagtools.ensemble.bagging import bagged_cv

            run = bagged_cv(ctx.spec, ctx.training_set, ctx.folds, args.model, params, root=ctx.root,
                            n_bags=args.bag, bootstrap=args.bootstrap, n_jobs=args.n_jobs, seed=args.seed)
        else:
            run = run_model(ctx, args.model, params, n_jobs=args.n_jobs, seed=args.seed)
    print_runs(ctx, [run])
    print(f"run: {run.path}")


@command("runs", "the leaderboard of runs on the current folds")
@options(add_common)
def cmd_runs(args) -> None:
    print_runs(open_ctx(args))


def _submit_options(p):
    add_common(p)
    p.add_argument("--run", help="submit this run (default: train the pipeline's models, blend, choose the best)")
    p.add_argument("--profile", help="pipeline profile (e.g. smoke, cpu, gpu)")
    p.add_argument("--no-eda", action="store_true", help="skip the EDA report")
    p.add_argument("--n-jobs", type=int, default=-1)
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://HOST:PORT) to run folds on")
    p.add_argument("--to-kaggle", action="store_true", help="upload the validated file to Kaggle")
    p.add_argument("-m", "--message", default="kagtools", help="submission message on Kaggle")


@command("submit", "EDA, folds, every pipeline model, blend, choose, write a validated submission")
@options(_submit_options)
def cmd_submit(args) -> None:
    from kagtools.workflow.submit import submit

    ctx = open_ctx(args)
    res = submit(ctx, run_id=args.run, profile=args.profile, eda=not args.no_eda, n_jobs=args.n_jobs,
                 scheduler=args.scheduler)
    print_runs(ctx, res.runs, highlight=res.best.run_id)
    if res.path is None:
        print(f"\nno test set in {ctx.data.data_dir}: CV runs only (best {res.best.run_id}); no submission written")
        return
    s = res.best.record.scores
    if res.selection:
        sel = res.selection
        print(f"\nselection-aware CV {ctx.spec.metric} {sel['estimate']:.4f} +- {sel['std']:.4f} (the choice made "
              f"on inner folds, scored on the fold left out, {sel['n_folds']} folds); naive best CV "
              f"{sel['naive']:.4f}")
    print(f"submission: {res.path}  (run {res.best.run_id}, CV {ctx.spec.metric} {s['cv']:.4f} +- "
          f"{s.get('cv_std', 0):.4f}; {res.seconds:.1f}s)")
    if args.to_kaggle:
        from kagtools.kaggle.api import submit_file

        print(submit_file(ctx.spec.slug, res.path, message=args.message))


def _models_options(p):
    p.add_argument("pattern", nargs="?", default="*")


@command("models", "list registered models")
@options(_models_options)
def cmd_models(args) -> None:
    from kagtools.models import list_models

    print("\n".join(list_models(args.pattern)))
