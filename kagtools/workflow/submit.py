"""The one ``submit`` workflow, used by ``kagtools submit`` and by the bundled Kaggle kernel.

EDA, folds, every model of the pipeline on the shared folds, the blends (the stacker fed the
original features included), the choice of the run to submit (the paired rule of
:mod:`kagtools.ensemble.selection`), the selection-aware estimate of that whole procedure, and
a submission validated against the sample before it is written.

The models are a pipeline module's ``MODELS`` or a preset's, run within ``time_limit`` by
:mod:`kagtools.workflow.presets`; the time spent and the budget are recorded in the
submission's sidecar (``info.budget``) and in :class:`SubmitResult`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from kagtools.core.runs import Run
from kagtools.errors import KagtoolsError
from kagtools.workflow.context import Context, choose_best, make_submission

__all__ = ["SubmitResult", "submit"]


@dataclass
class SubmitResult:
    """What a submit produced: the chosen run, every run it weighed, the file (None without a
    test set) and the time it took."""

    best: Run
    runs: list[Run]
    path: Path | None
    seconds: float
    selection: dict | None = None  # the selection-aware estimate (ensemble.selection)
    time_limit: float | None = None  # the budget asked for (seconds), None without one
    budget: dict | None = None  # per run name: seconds and status (done, reused, abandoned, skipped)


def submit(ctx: Context, *, run_id: str | None = None, profile: str | None = None, eda: bool = True,
           n_jobs: int = -1, scheduler: str | None = None, reuse: bool = True, preset: str | None = None,
           time_limit: float | None = None, refit: bool | None = None,
           save_models: bool | None = None) -> SubmitResult:
    """Train, blend, choose and write a validated submission (or submit the recorded run ``run_id``).

    ``reuse`` keeps recorded runs whose inputs are unchanged (``kagtools submit --force`` retrains);
    ``scheduler`` is a Dask scheduler address to run the folds on. ``preset`` (fast, medium,
    best) replaces the pipeline's models; ``time_limit`` is the budget in seconds for the whole
    submit; ``refit`` (True/False) overrides the preset's refit-on-all-rows policy; ``save_models``
    keeps the fitted fold models of every run (default: a pipeline's, not a preset's zoo)."""
    from kagtools.core.parallel import scheduler_context
    from kagtools.ensemble.blend import auto_blend
    from kagtools.workflow.presets import BLEND_RESERVE, QUICK_BLENDS, plan_for, run_plan

    if time_limit is not None and time_limit <= 0:
        raise KagtoolsError(f"--time-limit must be a positive number of seconds, got {time_limit:g}")
    started = time.monotonic()
    plan = log = None
    if run_id:
        best = ctx.run(run_id)
        runs = [best]
    else:
        plan = plan_for(ctx.spec, profile=profile, preset=preset, refit=refit, save_models=save_models)
        if eda:
            from kagtools.analysis.eda import write_eda

            path, res = write_eda(ctx.spec, ctx.data, ctx.reports, notes=ctx.eda_notes())
            print("\n".join(res.summary) + f"\nEDA report: {path}")
        print(f"folds: {ctx.root / 'folds.csv'} (hash {ctx.folds.hash})", flush=True)
        if plan.name != "pipeline" or time_limit is not None:
            budget = f"; time limit {time_limit:g}s" if time_limit is not None else ""
            print(f"preset {plan.name}: {', '.join(plan.models)}{budget}", flush=True)
        with scheduler_context(scheduler):
            planned = run_plan(ctx, plan, n_jobs=n_jobs, reuse=reuse, time_limit=time_limit, started=started)
        runs, log = planned.runs, planned.log
        if not runs and time_limit is not None:
            raise KagtoolsError(f"no model finished within the {time_limit:g}s budget (spent "
                                f"{time.monotonic() - started:.1f}s); raise --time-limit or try --preset fast")
        if len(runs) > 1:
            tset = ctx.training_set
            methods = plan.blends
            if time_limit is not None and time.monotonic() - started > time_limit * (1 - BLEND_RESERVE / 2):
                methods = QUICK_BLENDS  # the budget is (nearly) spent: the blends that take a second
                print(f"  blends: only {', '.join(methods)} (the budget is spent)", flush=True)
            runs.extend(auto_blend(ctx.spec, runs, tset.y, tset.ids, root=ctx.root, reports=ctx.reports,
                                   features=tset, methods=methods, reuse=reuse))
        best = choose_best(ctx, runs)
    selection = None
    if len(runs) > 1:
        from kagtools.ensemble.selection import selection_estimate

        selection = selection_estimate(runs, ctx.spec.metric)
    info: dict = {"selection": selection} if selection else {}
    if plan is not None and (plan.name != "pipeline" or time_limit is not None):
        spent = time.monotonic() - started
        info["budget"] = {"preset": plan.name, "time_limit": time_limit, "seconds": round(spent, 3), "runs": log}
        limit = f" of a {time_limit:g}s budget" if time_limit is not None else ""
        print(f"time spent: {spent:.1f}s{limit} (models and blends)", flush=True)
    path = make_submission(ctx, best, info=info or None) if ctx.data.test is not None else None
    return SubmitResult(best=best, runs=runs, path=path, seconds=time.monotonic() - started, selection=selection,
                        time_limit=time_limit, budget=log)
