"""Presets: which models ``submit`` trains, how, and within what time (``--preset fast|medium|best``).

A preset is a model zoo in priority order (cheap, strong models first, as AutoGluon orders its
own), the runs that are bagged over seeds, the models refitted on every training row for the
test predictions, and the blends tried on top. ``medium`` is what a competition without a
pipeline module trains; a pipeline module's ``MODELS`` run unless ``--preset`` is given.

With a time budget (``--time-limit``), models run in priority order and each is abandoned, with
nothing written, as soon as its remaining folds cannot finish in time (:class:`Deadline`,
estimated from its first fold); bags run last, with as many seeds as the single run's measured
fold time leaves room for. Whatever finished is blended and submitted. A model whose package is
missing, or that does not support the competition's task, is skipped with one line.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from kagtools.core.engine import Deadline, OutOfTime
from kagtools.core.runs import Run, make_run_id
from kagtools.core.spec import CompetitionSpec
from kagtools.ensemble.blend import AUTO_METHODS
from kagtools.errors import KagtoolsError

__all__ = ["Preset", "PRESETS", "get_preset", "available_models", "plan_for", "RunPlan", "PlanResult",
           "run_plan", "BLEND_RESERVE", "QUICK_BLENDS"]

#: The share of a time budget kept for the blends and the submission after the models.
BLEND_RESERVE = 0.15
#: The blends made when the budget is spent before blending starts (each takes about a second).
QUICK_BLENDS = ("mean", "hill_climb")

ModelsDict = dict[str, tuple[str, dict[str, Any]]]
#: medium's blends: the LightGBM stacker was never chosen by medium on the nine sets of the
#: tabular benchmark, and cost 11 s of 70 on digits' 10 classes (``best`` keeps them).
MEDIUM_BLENDS = tuple(m for m in AUTO_METHODS if m != "stack_lgbm")


@dataclass(frozen=True)
class Preset:
    """A model zoo and how ``submit`` runs it.

    ``models``: ``{run name: (registered model, params)}`` in priority order. ``bags``: ``{run
    name: seeds}``, a bagged run of that entry made after every single run (it needs the single
    run's fold time to fit a budget). ``refit``: ``{registered model: tasks}``, the models whose
    test predictions come from a refit on every training row, on those tasks. ``blends``: the
    blend methods (``None``: every method :func:`kagtools.ensemble.blend.auto_blend` tries).
    """

    name: str
    description: str
    models: ModelsDict
    bags: dict[str, int] = field(default_factory=dict)
    refit: dict[str, tuple[str, ...]] = field(default_factory=dict)
    blends: tuple[str, ...] | None = None

    def refit_models(self, task: str) -> frozenset[str]:
        """The registered models this preset refits on every training row for ``task``."""
        return frozenset(m for m, tasks in self.refit.items() if task in tasks)


# LightGBM and XGBoost early-stopped on an inner 10% of each training fold (never the scored
# fold), capped at 500 rounds. Measured by CV against fixed rounds (LightGBM 400 at 0.03, XGBoost
# 500 at 0.05): LightGBM fair AUC 0.752 vs 0.738, happiness log loss 0.887 vs 0.897, diabetes
# RMSE 57.6 vs 60.0, behind on penguins' 258 rows (0.054 vs 0.040; the inner holdout is 26 rows);
# XGBoost happiness 0.894 vs 0.940, digits accuracy 0.958 vs 0.962. XGBoost's trees see half the
# columns: better by CV on 7 of the benchmark's 9 sets (digits 0.966 vs 0.958, happiness 0.888
# vs 0.894, diabetes 59.5 vs 62.6), behind on randhie (4.217 vs 4.174) and penguins (0.080 vs 0.069).
_LGBM = {"n_estimators": 500, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 10,
         "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0, "early_stopping_rounds": 30}
_XGBOOST = {"n_estimators": 500, "learning_rate": 0.1, "colsample_bytree": 0.5, "early_stopping_rounds": 30}
_LGBM_LARGE = {"n_estimators": 800, "learning_rate": 0.02, "num_leaves": 96, "min_child_samples": 5,
               "subsample": 0.8, "colsample_bytree": 0.6, "reg_lambda": 3.0}
_LGBM_SMALL = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 10,
               "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0}
# Forests of leaves of 5 rows or more: on fair (AUC 0.739 vs 0.685 and 0.724) and census2000
# (RMSE 0.688 vs 0.746 and 0.703) better than leaves of 1 (extra trees) and 2 (random forest),
# in a third to a half of the time; fully grown trees win on digits' clean pixels (`best` adds them).
_FOREST = {"n_estimators": 150, "min_samples_leaf": 5, "max_features": 0.5}

# No preset refits on every training row by default: on the nine sets of benchmarks/refit.py
# (BENCHMARKS.md, *Refit*) the mean of the fold models won or tied: refit lost beyond noise with
# XGBoost on 4 sets, LightGBM on 2 and the linear model on 1, and won only with CatBoost,
# on 2 sets of 9 (tied on the other 7): too thin a margin for its extra fit.

# CatBoost of depth 5 at 0.1, early-stopped: by CV as good as depth 6 at 0.08 (penguins log loss
# 0.079 vs 0.080, titanic 0.832 vs 0.827, digits 0.9743 vs 0.9765) in half the time on 10 classes.
# Each split looks at half the features (rsm): on multiclass sets, where CatBoost ran all 500
# rounds, it took 16 s against 22 s on digits and 15 s against 30 s on happiness. CV: better on 5
# of the benchmark's 9 sets (digits 0.9760 vs 0.9743, penguins 0.073 vs 0.079, diabetes 56.3 vs
# 56.8), within 0.001 on 2, behind on titanic (0.8288 vs 0.8318, fold std 0.03) and randhie
# (4.272 vs 4.255).
_CATBOOST = {"depth": 5, "learning_rate": 0.1, "border_count": 128, "rsm": 0.5, "early_stopping_rounds": 30}

_MEDIUM: ModelsDict = {
    "lgbm": ("lgbm", _LGBM),
    "logreg": ("logreg", {"C": 0.5}),
    "catboost": ("catboost", _CATBOOST),
    "xgboost": ("xgboost", _XGBOOST),
    "et": ("et", _FOREST),
    "rf": ("rf", _FOREST),
    "knn": ("knn", {"n_neighbors": 15, "weights": "distance"}),
}

PRESETS: dict[str, Preset] = {
    "fast": Preset(
        "fast", "a linear model and a small LightGBM, mean and hill-climbing blends: a first submission in seconds",
        {"lgbm": ("lgbm", _LGBM_SMALL), "logreg": ("logreg", {"C": 0.5})},
        blends=("mean", "hill_climb", "stack_linear")),
    "medium": Preset(
        "medium", "LightGBM, CatBoost, XGBoost, linear, random forest, extra trees and kNN, each in one cheap "
        "configuration, the blends that fit few weights (no LightGBM stackers): the default for a competition "
        "without a pipeline module",
        _MEDIUM, blends=MEDIUM_BLENDS),
    "best": Preset(
        "best", "medium plus a second configuration per booster, a tabular neural net and a second kNN; the "
        "boosters bagged over 3 seeds; every blend, the stacker fed the original features and hill climbing",
        {**_MEDIUM,
         "lgbm_large": ("lgbm", _LGBM_LARGE),
         "catboost_deep": ("catboost", {"depth": 8, "learning_rate": 0.03}),
         "xgboost_deep": ("xgboost", {"max_depth": 8, "learning_rate": 0.03, "min_child_weight": 3}),
         "et_deep": ("et", {"n_estimators": 300, "min_samples_leaf": 1, "max_features": 0.5}),
         "hgb": ("hgb", {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 31}),
         "tabular_nn": ("tabular_nn", {}),
         "knn_uniform": ("knn", {"n_neighbors": 30, "weights": "uniform"})},
        bags={"lgbm": 3, "catboost": 3, "xgboost": 3, "lgbm_large": 3}),
}


def get_preset(name: str) -> Preset:
    """The preset ``name``; one line naming the presets otherwise."""
    if name not in PRESETS:
        from kagtools.core.registry import did_you_mean

        raise KagtoolsError(f"unknown preset '{name}'{did_you_mean(name, list(PRESETS))} (presets: "
                            f"{', '.join(PRESETS)})")
    return PRESETS[name]


def _unavailable(spec: CompetitionSpec, model: str, params: dict[str, Any]) -> str | None:
    """Why ``model`` with ``params`` cannot run on ``spec`` here, or ``None`` when it can."""
    from kagtools.core.model_registry import get_model_class

    try:
        cls = get_model_class(model)
    except (KagtoolsError, ImportError) as exc:  # not registered, or its package is not installed
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if spec.task not in cls.tasks:
        return f"it does not support {spec.task} tasks (only {', '.join(cls.tasks)})"
    unknown = sorted(set(params) - set(cls().get_params(deep=False)))
    if unknown:
        return f"it has no parameter(s) {', '.join(unknown)}"
    return None


def available_models(spec: CompetitionSpec, models: ModelsDict, *, where: str = "preset") -> ModelsDict:
    """``models`` less those that cannot run here (missing package, other task), one line each."""
    kept = {}
    for name, (model, params) in models.items():
        why = _unavailable(spec, model, params)
        if why is None:
            kept[name] = (model, dict(params))
        else:
            print(f"  {where}: {name} ({model}) skipped: {why}", flush=True)
    if not kept:
        raise KagtoolsError(f"{where}: no model can run on '{spec.slug}' ({spec.task}); see the lines above")
    return kept


@dataclass
class RunPlan:
    """What ``submit`` runs: models in priority order, bags, refit policy and blends."""

    name: str  # the preset's name, or "pipeline" for a pipeline module's MODELS
    models: ModelsDict
    bags: dict[str, int] = field(default_factory=dict)
    refit: frozenset[str] | bool = frozenset()  # models refitted (True: every model)
    blends: tuple[str, ...] | None = None
    save_models: bool = True  # keep each run's fitted fold models (models.joblib)

    def refits(self, model: str) -> bool:
        return self.refit if isinstance(self.refit, bool) else model in self.refit


def plan_for(spec: CompetitionSpec, *, profile: str | None = None, preset: str | None = None,
             refit: bool | None = None, save_models: bool | None = None) -> RunPlan:
    """The plan ``submit`` follows: ``preset`` when given; else the pipeline module's ``MODELS``
    (or profile); else, without a pipeline module, the ``medium`` preset. ``refit`` overrides
    the preset's refit policy (``True``: refit every model; ``False``: none).

    A pipeline's runs keep their fitted fold models (``models.joblib``); a preset's do not unless
    ``save_models``: its zoo of forests over repeated folds pickles to hundreds of MB even on a
    few hundred rows, and writing them took a fifth of a small competition's submit."""
    from kagtools.workflow.pipeline import load_pipeline, pipeline_models

    if preset is None and load_pipeline(spec) is not None:
        plan = RunPlan("pipeline", pipeline_models(spec, profile))
    else:
        p = get_preset(preset or "medium")
        models = available_models(spec, p.models, where=f"preset {p.name}")
        plan = RunPlan(p.name, models, {k: n for k, n in p.bags.items() if k in models},
                       p.refit_models(spec.task), p.blends, save_models=False)
    if refit is not None:
        plan.refit = refit
    if save_models is not None:
        plan.save_models = save_models
    return plan


@dataclass
class PlanResult:
    """The runs a plan made and what its budget did: per run name, ``seconds`` and ``status``
    (``done``, ``reused``, ``abandoned``, ``skipped``, ``bagged N of M``)."""

    runs: list[Run]
    log: dict[str, dict[str, Any]]


def _tuned(ctx, plan: RunPlan) -> dict[str, dict[str, Any]]:
    """Tuned parameters per run name: every run of a pipeline's model; in a preset, the first
    configuration of each model only (the others are deliberate variants)."""
    from kagtools.tuning.tuned import tuned_params

    out, seen = {}, set()
    for name, (model, _) in plan.models.items():
        if plan.name == "pipeline" or model not in seen:
            out[name] = tuned_params(ctx.root, model)
        seen.add(model)
    return out


def _run_one(ctx, model: str, params: dict[str, Any], *, name_for_id: str, refit: bool, n_jobs: int,
             reuse: bool, deadline: float | None, seed: int, save_models: bool,
             details: dict[str, Any] | None = None) -> tuple[Run, bool]:
    """One cross-validated run through :func:`~kagtools.workflow.context.run_model` (reused when
    its inputs are unchanged); ``(run, reused)``. A refit run has its own id (``<model>-refit-...``)."""
    from kagtools.workflow.context import run_model

    tset = ctx.training_set
    refit = refit and tset.X_test is not None  # no test rows: nothing to refit for
    run_id = make_run_id(f"{name_for_id}-refit" if refit else name_for_id, params, seed, ctx.folds.hash, tset.name)
    path = ctx.root / run_id / "run.json"
    before = path.stat().st_mtime_ns if path.is_file() else None
    callbacks: list[Deadline] = []
    if deadline is not None:
        splits = list(ctx.folds.splits(tset.ids))
        extra = len(tset.ids) / (sum(len(tr) for *_, tr, _ in splits) / len(splits)) if refit else 0.0
        callbacks = [Deadline(deadline, extra_folds=extra)]
    run = run_model(ctx, model, params, n_jobs=n_jobs, seed=seed, run_id=run_id, reuse=reuse, save_models=save_models,
                    refit=refit, details=details, callbacks=callbacks)
    return run, before is not None and path.stat().st_mtime_ns == before


def run_plan(ctx, plan: RunPlan, *, n_jobs: int = 1, reuse: bool = False, time_limit: float | None = None,
             started: float | None = None) -> PlanResult:
    """Cross-validate the plan's models (then its bags) on the shared folds, within ``time_limit``.

    ``time_limit`` is seconds from ``started`` (a :func:`time.monotonic` time, default now) for
    the whole submit; the models get all but :data:`BLEND_RESERVE` of it. Without a limit every
    run is made in full and folds run in parallel (``n_jobs``); with one, folds run one after the
    other so that a run can stop between them.
    """
    started = time.monotonic() if started is None else started
    deadline = None if time_limit is None else started + time_limit * (1 - BLEND_RESERVE)
    seed = ctx.spec.cv.seed
    tuned = _tuned(ctx, plan)
    runs: dict[str, Run] = {}
    log: dict[str, dict[str, Any]] = {}

    def left() -> float:
        return math.inf if deadline is None else deadline - time.monotonic()

    def attempt(key: str, label: str, model: str, params: dict[str, Any], *, status: str | None = None,
                **kwargs) -> None:
        """One run within the deadline: recorded in ``runs`` and ``log``, or abandoned (nothing written)."""
        t0 = time.monotonic()
        try:
            run, reused = _run_one(ctx, model, params, n_jobs=n_jobs, reuse=reuse, deadline=deadline, seed=seed,
                                   save_models=plan.save_models, **kwargs)
        except OutOfTime as exc:
            secs = time.monotonic() - t0
            print(f"  {label} abandoned after {secs:.1f}s: {exc} (nothing written)", flush=True)
            log[key] = {"status": "abandoned", "seconds": round(secs, 3)}
            return
        runs[key] = run
        log[key] = {"status": status or ("reused" if reused else "done"), "seconds": round(time.monotonic() - t0, 3),
                    "run": run.run_id}

    for name, (model, params) in plan.models.items():
        params = {**params, **tuned.get(name, {})}
        refit = plan.refits(model)
        note = ", tuned params" if tuned.get(name) else ""
        if left() <= 0:
            print(f"  {name} ({model}) skipped: the time budget is spent", flush=True)
            log[name] = {"status": "skipped", "seconds": 0.0}
            continue
        print(f"  cv {name} ({model}{note}{', refit on all rows' if refit else ''})", flush=True)
        attempt(name, f"{name} ({model})", model, params, name_for_id=model, refit=refit)

    for name, n_bags in plan.bags.items():
        if name not in runs:
            continue  # its single run was skipped or abandoned: no fold time to plan a bag with
        model, params = plan.models[name]
        params = {**params, **tuned.get(name, {})}
        refit = plan.refits(model)
        single = runs[name].record
        # One seed's serial cost: every fold's own fit time (however they ran) and the refit.
        cost = sum(single.fold_seconds) + float(single.details.get("refit_seconds", 0.0))
        fits = n_bags if deadline is None else int(left() / max(cost, 1e-9))
        bags = min(n_bags, fits)
        key = f"{name}_bag{n_bags}"
        if bags < 2:
            print(f"  {key} skipped: the time left ({max(left(), 0):.0f}s) holds no bag of 2", flush=True)
            log[key] = {"status": "skipped", "seconds": 0.0}
            continue
        bag_params = {"model": model, "params": params, "n_bags": bags, "bootstrap": False}
        print(f"  cv {key} ({model} x{bags} seeds{'' if bags == n_bags else f', shrunk from {n_bags}'})", flush=True)
        attempt(key, key, "bag", bag_params, name_for_id=f"{model}-bag{bags}", refit=refit,
                details={"n_bags": bags, "bagged": model},
                status=None if bags == n_bags else f"bagged {bags} of {n_bags}")
    return PlanResult(runs=list(runs.values()), log=log)
