"""The one ``submit`` workflow, used by ``kagtools submit`` and by the bundled Kaggle kernel.

EDA, folds, every model of the pipeline on the shared folds, the blends (the stacker fed the
original features included), the choice of the run to submit (the paired rule of
:mod:`kagtools.ensemble.selection`), the selection-aware estimate of that whole procedure, and
a submission validated against the sample before it is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from kagtools.core.runs import Run
from kagtools.workflow.context import Context, choose_best, make_submission, run_pipeline_models

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


def submit(ctx: Context, *, run_id: str | None = None, profile: str | None = None, eda: bool = True,
           n_jobs: int = -1, scheduler: str | None = None, reuse: bool = True) -> SubmitResult:
    """Train, blend, choose and write a validated submission (or submit the recorded run ``run_id``).

    ``reuse`` keeps recorded runs whose inputs are unchanged (``kagtools submit --force`` retrains);
    ``scheduler`` is a Dask scheduler address to run the folds on."""
    from kagtools.core.parallel import scheduler_context
    from kagtools.ensemble.blend import auto_blend

    start = time.perf_counter()
    if run_id:
        best = ctx.run(run_id)
        runs = [best]
    else:
        if eda:
            from kagtools.analysis.eda import write_eda

            path, res = write_eda(ctx.spec, ctx.data, ctx.reports, notes=ctx.eda_notes())
            print("\n".join(res.summary) + f"\nEDA report: {path}")
        print(f"folds: {ctx.root / 'folds.csv'} (hash {ctx.folds.hash})", flush=True)
        with scheduler_context(scheduler):
            runs = run_pipeline_models(ctx, profile=profile, n_jobs=n_jobs, reuse=reuse)
        if len(runs) > 1:
            tset = ctx.training_set
            runs.extend(auto_blend(ctx.spec, runs, tset.y, tset.ids, root=ctx.root, reports=ctx.reports,
                                   features=tset, reuse=reuse))
        best = choose_best(ctx, runs)
    selection = None
    if len(runs) > 1:
        from kagtools.ensemble.selection import selection_estimate

        selection = selection_estimate(runs, ctx.spec.metric)
    info = {"selection": selection} if selection else None
    path = make_submission(ctx, best, info=info) if ctx.data.test is not None else None
    return SubmitResult(best=best, runs=runs, path=path, seconds=time.perf_counter() - start, selection=selection)
