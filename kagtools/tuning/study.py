"""Tuning a model: a persistent, shareable Optuna study of its CV score, then its best run.

:func:`tune` takes the competition's context duck-typed and imports nothing of the workflow
above it: the pipeline's parameters for the model come in as ``base_params``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from kagtools.core.engine import cross_validate
from kagtools.core.io import write_json
from kagtools.core.metrics import get_metric
from kagtools.core.tracking import log_artifacts, log_trials
from kagtools.errors import KagtoolsError
from kagtools.tuning.objective import FoldObjective
from kagtools.tuning.pruners import make_pruner
from kagtools.tuning.reports import write_reports
from kagtools.tuning.space import ModelSpace, check_space, parse_space
from kagtools.tuning.storage import default_storage, redact_url
from kagtools.tuning.tuned import tuned_params_path
from kagtools.tuning.workers import Tuning, run_workers, trial_counts

__all__ = ["TuneResult", "tune", "summarize", "default_study_name"]


def default_study_name(ctx, model: str) -> str:
    """One study per model, features and folds: scores on other folds are not comparable."""
    return f"{ctx.spec.slug}-{model}-{ctx.training_set.name}-{ctx.folds.hash}"


@dataclass
class TuneResult:
    """The outcome of a tuning session, as saved in ``runs/<slug>/tuned/<model>.json``."""

    study_name: str
    storage: str
    best_value: float
    best_trial: int
    params: dict[str, Any]
    n_complete: int
    n_pruned: int
    n_failed: int
    seconds: float
    top: list[dict[str, Any]]

    def as_json(self, model: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"model": model, "params": self.params, "study": self.study_name,
                "storage": redact_url(self.storage), "best_value": self.best_value,
                "best_trial": self.best_trial, "n_trials": self.n_complete + self.n_pruned,
                "n_complete": self.n_complete, "n_pruned": self.n_pruned, "n_failed": self.n_failed,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **(extra or {})}


def summarize(study: optuna.Study, tuning: Tuning, seconds: float, *, top: int = 5) -> TuneResult:
    """Best trial, counts and the ``top`` trials of a study."""
    counts = trial_counts(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise KagtoolsError(f"study '{tuning.study_name}' has no complete trial yet "
                            f"({counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed)")
    best = study.best_trial
    ranked = sorted(complete, key=lambda t: t.value, reverse=tuning.direction == "maximize")[:top]
    return TuneResult(
        study_name=tuning.study_name, storage=tuning.storage, best_value=float(best.value),
        best_trial=best.number, params={**tuning.objective.fixed, **best.params},
        n_complete=counts[TrialState.COMPLETE], n_pruned=counts[TrialState.PRUNED],
        n_failed=sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                     if not t.user_attrs.get("surplus")),
        seconds=seconds,
        top=[{"trial": t.number, "value": t.value, "cv_std": t.user_attrs.get("cv_std"), **t.params}
             for t in ranked],
    )


def tune(ctx, model: str, *, n_trials: int = 50, timeout: float | None = None, storage: str | None = None,
         study_name: str | None = None, n_jobs: int = 1, scheduler: str | None = None,
         pruner: str = "median", seed: int | None = None, params: dict[str, Any] | None = None,
         base_params: dict[str, Any] | None = None, space: dict[str, Any] | None = None,
         run_best: bool = True, reports: bool = True, heartbeat_interval: int | None = 10,
         grace_period: int | None = 30):
    """Tune ``model`` on the competition of ``ctx``; save the best parameters, run them, plot.

    ``ctx`` (a workflow Context or alike) is read for ``spec``, ``training_set``, ``folds``,
    ``root`` (``runs/<slug>``: the default storage, the best run and ``tuned/``) and ``reports``.
    ``params`` are held fixed (they override ``base_params`` and leave the search space);
    ``base_params``, the pipeline's parameters for ``model``, are the starting point for every
    parameter not tuned; ``space`` replaces or adds to the model's search space
    (:func:`~kagtools.tuning.space.parse_space`). Returns ``(TuneResult, Run or None, report paths)``.
    """
    from kagtools.core.parallel import scheduler_context

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # kagtools prints its own summary
    user = dict(params or {})
    fixed = {**(base_params or {}), **user}
    space_fn = ModelSpace(model, parse_space(space), exclude=tuple(user))
    check_space(model, space_fn, fixed)
    if n_trials < 1:
        raise KagtoolsError(f"--trials must be at least 1, got {n_trials}")
    seed = ctx.spec.cv.seed if seed is None else seed
    metric = get_metric(ctx.spec.metric)
    tuning = Tuning(
        objective=FoldObjective(ctx.spec, ctx.training_set, ctx.folds, model, space_fn, fixed=fixed,
                                seed=seed, n_trials=n_trials, lgbm_pruning=pruner == "median"),
        storage=storage or default_storage(ctx.root), study_name=study_name or default_study_name(ctx, model),
        direction="maximize" if metric.greater_is_better else "minimize", n_trials=n_trials,
        timeout=timeout, pruner=pruner, seed=seed, heartbeat_interval=heartbeat_interval,
        grace_period=grace_period)
    make_pruner(pruner)
    study = tuning.open_study()  # one clear error for a bad storage before any worker starts
    start = time.perf_counter()
    run_workers(tuning, n_jobs=n_jobs, scheduler=scheduler)
    result = summarize(study, tuning, time.perf_counter() - start)
    log_trials(ctx.spec.slug, study.study_name, [  # finished trials into MLflow (those already there are skipped)
        {"number": t.number, "params": t.params, "value": t.value, "state": t.state.name,
         "cv_std": t.user_attrs.get("cv_std"), "intermediate": dict(t.intermediate_values),
         "start": t.datetime_start, "end": t.datetime_complete}
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))])
    info = {"study": tuning.study_name, "storage": redact_url(tuning.storage), "trial": result.best_trial,
            "value": result.best_value}
    run = None
    if run_best:
        with scheduler_context(scheduler):
            run = cross_validate(ctx.spec, ctx.training_set, ctx.folds, model, result.params, root=ctx.root,
                                 n_jobs=n_jobs, seed=seed, details={"tuning": info})
    write_json(tuned_params_path(ctx.root, model), result.as_json(model, {
        "metric": metric.name, "direction": tuning.direction, "folds_hash": ctx.folds.hash,
        "features": ctx.training_set.name, "run_id": run.run_id if run else None}))
    paths = write_reports(study, ctx.reports, model) if reports else []
    if run is not None:
        log_artifacts(paths, run_id=run.run_id)
    return result, run, paths
