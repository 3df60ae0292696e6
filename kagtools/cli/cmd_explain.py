"""``explain``: permutation and gain importance, partial dependence, per-row contributions and
redundant features of one run, in ``reports/<slug>/explain.html``."""

from __future__ import annotations

from kagtools.cli.options import add_common, command, open_ctx

__all__ = ["cmd_explain"]


def _explain_options(p):
    add_common(p)
    p.add_argument("--run", help="the run to explain (default: the best run, as `submit` would choose it)")
    p.add_argument("--folds", type=int, help="refit on the first N folds of the first repeat (default: all)")
    p.add_argument("--max-rows", type=int, default=2000, help="out-of-fold rows permuted per fold")
    p.add_argument("--top", type=int, default=4, help="partial dependence plots for the top N features")


@command("explain", "feature importance, partial dependence and contributions of a run: reports/<slug>/explain.html",
         example="kagtools explain titanic --top 6", options=_explain_options)
def cmd_explain(args) -> None:
    import time

    from kagtools.analysis.explain import explained_run, write_explain
    from kagtools.core.table import format_table
    from kagtools.workflow.context import choose_best

    start = time.perf_counter()
    ctx = open_ctx(args)
    run = ctx.run(args.run) if args.run else choose_best(ctx, ctx.runs())
    target, notes = explained_run(ctx.root, run, ctx.spec.metric)
    print(f"explaining {target.run_id}" + (f" (for {run.run_id})" if target is not run else ""), flush=True)
    path, ex = write_explain(ctx.spec, ctx.training_set, ctx.folds, target, ctx.reports, notes=notes,
                             n_folds=args.folds, max_rows=args.max_rows, top=args.top)
    rows = [{"feature": f, "permutation": f"{r.perm:+.4f} +- {r.perm_std:.4f}",
             "gain share": "-" if r.gain != r.gain else f"{r.gain:.3f}", "group": r.group}
            for f, r in ex.importance.head(15).iterrows()]
    print("\n".join(ex.notes))
    print(format_table(rows, ["feature", "permutation", "gain share", "group"]))
    for i, g in enumerate(ex.groups, 1):
        print(f"G{i} (redundant, |Spearman rho| high): {', '.join(g)}")
    print(f"report: {path}  ({time.perf_counter() - start:.1f}s)")
