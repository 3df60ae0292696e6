"""Optuna tuning: a model's CV score over the shared folds, in a persistent, shareable study.

The objective fits the model on the competition's saved folds exactly as
:func:`kagtools.cv.cross_validate` does (same clones, per-fold seeds and in-fold features), so
the best trial's value is the CV score its run later records. Folds run one after the other
inside a trial so that the running mean of the fold scores can be reported after each fold and
a poor trial pruned early; LightGBM also reports its validation loss inside the first fold
through optuna-integration's ``LightGBMPruningCallback`` (pruning only, never early stopping).

Studies live in a storage: a SQLite file under ``runs/<slug>/`` by default, any SQLAlchemy URL
(``postgresql://...``) for workers on several machines, or ``journal:PATH`` for Optuna's
file journal. ``n_trials`` is the study's target of finished (complete + pruned) trials, so
rerunning the same command continues an interrupted study and several workers together stop
at exactly that total. Workers are local processes (joblib) or Dask tasks (``scheduler``).
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from sklearn.base import clone

from kagtools.cv import TrainingSet, encode_target, fit_fold, fold_seed, score_oof
from kagtools.errors import KagtoolsError
from kagtools.folds import Folds
from kagtools.io import write_json
from kagtools.metrics import get_metric
from kagtools.models import create_model, get_model_class
from kagtools.progress import progress
from kagtools.runs import pred_columns
from kagtools.spec import CompetitionSpec

__all__ = [
    "Tuning",
    "ModelSpace",
    "TuneResult",
    "open_storage",
    "redact_url",
    "parse_space",
    "check_space",
    "make_pruner",
    "OnLatestValue",
    "FoldObjective",
    "run_workers",
    "summarize",
    "write_reports",
    "fail_dead_trials",
    "default_storage",
    "default_study_name",
    "tune",
    "PRUNERS",
]

PRUNERS = ("median", "halving", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Inside-fold LightGBM reports take steps 0..n_estimators-1; fold reports come after them.
FOLD_STEP_OFFSET = 1_000_000
LGBM_REPORT_INTERVAL = 25  # each report is a storage write


# ---------------------------------------------------------------------------------------- storage
def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and saved files)."""
    if "://" not in url or "@" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is reported by open_storage
        return url.split("://", 1)[0] + "://***"


def _postgres_driver(url: str) -> str:
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; use psycopg2 where only it is there.
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres") or not sep:
        return url
    import importlib.util

    driver = "psycopg" if importlib.util.find_spec("psycopg") or not importlib.util.find_spec("psycopg2") \
        else "psycopg2"
    return f"postgresql+{driver}://{rest}"


def open_storage(url: str, *, heartbeat_interval: int | None = 10,
                 grace_period: int | None = 30) -> optuna.storages.BaseStorage:
    """Open an Optuna storage, or raise one clear :class:`KagtoolsError` line.

    Parameters
    ----------
    url : str
        A SQLAlchemy URL (``sqlite:///path.db``, ``postgresql://user:pw@host/db``) or
        ``journal:PATH`` for Optuna's file journal (several processes on one file system).
    heartbeat_interval, grace_period : int or None
        RDB storages record a heartbeat of every running trial; a trial whose heartbeat is
        older than ``grace_period`` seconds (its worker died) is marked failed by the next
        worker that starts a trial. ``None`` turns the heartbeat off.
    """
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url.removeprefix("journal:").removeprefix("//"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise KagtoolsError(f"cannot open the Optuna journal {path}: {exc.strerror or exc}") from None
    import sqlalchemy.exc

    given, url = url, _postgres_driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}  # several local workers share one file
    elif url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}  # fail fast on a dead host
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=heartbeat_interval,
                                                  grace_period=grace_period)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as exc:
            # Workers starting together on a new database race to create Optuna's tables.
            if attempt == 2:
                error: Exception = exc
                break
            time.sleep(0.5 * (attempt + 1))
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
            error = exc
            break
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    raise KagtoolsError(f"cannot open the Optuna storage {redact_url(given)}: {reason}") from None


# ------------------------------------------------------------------------------------ search space
SpaceFn = Callable[[optuna.trial.BaseTrial], dict[str, Any]]


def parse_space(spec: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Check a user search space: ``{"name": {"low": 1, "high": 9, "log": false, "step": 1}}``
    (int when ``low``/``high`` are ints, else float) or ``{"name": {"choices": [...]}}``."""
    out = {}
    for name, dist in (spec or {}).items():
        if not isinstance(dist, dict) or not ({"choices"} <= set(dist) or {"low", "high"} <= set(dist)):
            raise KagtoolsError(f"search space: '{name}' needs {{\"low\": .., \"high\": ..}} or "
                                f"{{\"choices\": [..]}}, got {dist!r}")
        unknown = set(dist) - {"choices", "low", "high", "log", "step"}
        if unknown:
            raise KagtoolsError(f"search space: '{name}' has unknown key(s) {', '.join(sorted(unknown))}")
        out[name] = dict(dist)
    return out


def _suggest(trial: optuna.trial.BaseTrial, name: str, dist: dict[str, Any]) -> Any:
    if "choices" in dist:
        return trial.suggest_categorical(name, list(dist["choices"]))
    low, high = dist["low"], dist["high"]
    if isinstance(low, int) and isinstance(high, int) and not isinstance(dist.get("step", 1), float):
        return trial.suggest_int(name, low, high, step=dist.get("step", 1), log=dist.get("log", False))
    return trial.suggest_float(name, float(low), float(high), step=dist.get("step"), log=dist.get("log", False))


class _Skipping:
    """A trial that does not sample the names in ``skip`` (replaced or held fixed), so the
    declared space never registers a distribution the study will not use."""

    def __init__(self, trial: optuna.trial.BaseTrial, skip: set[str]):
        self._trial, self._skip = trial, skip

    def __getattr__(self, attr: str):
        method = getattr(self._trial, attr)
        if not attr.startswith("suggest_"):
            return method
        return lambda name, *args, **kwargs: None if name in self._skip else method(name, *args, **kwargs)


@dataclass(frozen=True)
class ModelSpace:
    """A model's declared ``search_space`` with user entries replacing or adding to it and the
    names held fixed left out (picklable, so workers in other processes can sample it)."""

    model: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()

    def __call__(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        declared = getattr(get_model_class(self.model), "search_space", None)
        if declared is None and not self.overrides:
            raise KagtoolsError(f"model '{self.model}' declares no search space; pass one with --space")
        skip = {*self.overrides, *self.exclude}
        params = {k: v for k, v in (declared(_Skipping(trial, skip)) if declared else {}).items()
                  if k not in skip}
        params.update({name: _suggest(trial, name, dist) for name, dist in self.overrides.items()
                       if name not in self.exclude})
        return params


def check_space(model: str, space: SpaceFn, fixed: dict[str, Any]) -> list[str]:
    """Sample ``space`` once on a throw-away study and check every name is a model parameter.

    Returns the tuned parameter names; raises :class:`KagtoolsError` before any trial runs.
    """
    valid = set(get_model_class(model)().get_params(deep=False)) - {"task", "seed", "callbacks"}
    try:
        names = sorted(space(optuna.create_study().ask()))
    except (ValueError, TypeError) as exc:
        raise KagtoolsError(f"search space of '{model}': {exc}") from None
    for name in [*names, *fixed]:
        if name not in valid:
            raise KagtoolsError(f"search space of '{model}' names unknown parameter '{name}' "
                                f"(has: {', '.join(sorted(valid))})")
    return names


class OnLatestValue(optuna.pruners.BasePruner):
    """Let ``pruner`` judge a trial by its latest report rather than its best one so far.

    Optuna's percentile pruners compare a trial's *best* intermediate value with the others'
    values at the same step; for a running mean over folds that keeps a trial with one lucky
    first fold alive however far behind it falls afterwards.
    """

    def __init__(self, pruner: optuna.pruners.BasePruner):
        self._pruner = pruner

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        latest = copy.copy(trial)
        latest.intermediate_values = {step: trial.intermediate_values[step]}
        return self._pruner.prune(study, latest)


def make_pruner(name: str, *, in_fold: bool = False) -> optuna.pruners.BasePruner:
    """``median``: prune below the median of earlier trials at the same step (after 5 trials);
    ``halving``: asynchronous successive halving over folds; ``none``: never prune.

    With ``in_fold`` (LightGBM reporting inside the first fold) the median pruner waits for
    the first reports of a fold before it prunes on them.
    """
    if name == "median":
        warmup = 2 * LGBM_REPORT_INTERVAL if in_fold else 0
        return OnLatestValue(optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup))
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise KagtoolsError(f"unknown pruner '{name}' (known: {', '.join(PRUNERS)})")


# -------------------------------------------------------------------------------------- objective
class _MinimisingView:
    """What ``LightGBMPruningCallback`` sees of a trial: a minimising study.

    LightGBM's default validation metric (log-loss, l2) is lower-is-better; a study that
    maximises (accuracy, AUC) receives it negated so that the pruner compares like with like.
    """

    def __init__(self, trial: optuna.Trial, maximize: bool):
        self._trial = trial
        self._sign = -1.0 if maximize else 1.0
        self.study = type("StudyView", (), {"direction": optuna.study.StudyDirection.MINIMIZE})()

    def report(self, value: float, step: int) -> None:
        self._trial.report(self._sign * value, step)

    def should_prune(self) -> bool:
        return self._trial.should_prune()


def _lgbm_metric(task: str) -> str | None:
    return {"binary": "binary_logloss", "multiclass": "multi_logloss", "regression": "l2"}.get(task)


class _SurplusTrial(Exception):
    """A trial started after the study already had its target number of trials."""


def worker_id() -> str:
    """``host:pid:start-time`` of this process: tells a dead worker from a reused pid."""
    import psutil

    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.0f}"


@dataclass
class FoldObjective:
    """The Optuna objective: the CV score of ``model`` with sampled parameters on ``folds``.

    After fold ``k`` the running mean of the fold scores is reported at step
    ``offset + k + 1`` and the trial is pruned if the pruner says so; the value returned is
    the score :func:`kagtools.cv.score_oof` gives the OOF predictions (mean over repeats).
    """

    spec: CompetitionSpec
    data: TrainingSet
    folds: Folds
    model: str
    space: SpaceFn
    fixed: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    n_trials: int | None = None
    lgbm_pruning: bool = True

    @property
    def in_fold(self) -> bool:
        """Whether LightGBM reports its validation loss inside the first fold."""
        from kagtools.models.tabular import LightGBM

        return bool(self.lgbm_pruning and _lgbm_metric(self.spec.task)
                    and issubclass(get_model_class(self.model), LightGBM))

    def params(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        return {**self.fixed, **self.space(trial)}

    def __call__(self, trial: optuna.Trial) -> float:
        self._check_surplus(trial)
        trial.set_user_attr("worker", worker_id())
        params = self.params(trial)
        seed = self.spec.cv.seed if self.seed is None else self.seed
        metric = get_metric(self.spec.metric)
        y_enc, classes = encode_target(self.spec, self.data.y)
        base = create_model(self.model, **params)
        fixed = {"task": self.spec.task} if "task" in base.get_params() else {}
        if "seed" in base.get_params():
            fixed["seed"] = seed
        base.set_params(**fixed)
        in_fold = self.in_fold
        offset = FOLD_STEP_OFFSET if in_fold else 0
        splits = list(self.folds.splits(self.data.ids))
        parts, fold_scores = [], []
        cols = pred_columns(self.spec, classes)
        for k, (r, f, tr, va) in enumerate(splits):
            model = clone(base).set_params(**fold_seed(base, seed, r, f))
            if in_fold and k == 0:
                from optuna_integration import LightGBMPruningCallback

                view = _MinimisingView(trial, metric.greater_is_better)
                model.set_params(callbacks=[LightGBMPruningCallback(
                    view, _lgbm_metric(self.spec.task), report_interval=LGBM_REPORT_INTERVAL)])
            with warnings.catch_warnings():
                # LightGBM >= 4.7 prefers eval_X/eval_y to the eval_set the model passes.
                warnings.filterwarnings("ignore", message=".*'eval_set' is deprecated")
                _, pred, _, _ = fit_fold(model, self.data.fold_features, self.data.X, y_enc, None, tr, va)
            fold_scores.append(metric(y_enc[va], pred))
            part = pd.DataFrame(pred.reshape(len(pred), -1), columns=cols)
            part.insert(0, "fold", f)
            part.insert(0, "repeat", r)
            part.insert(0, "id", self.data.ids.iloc[va].to_numpy())
            parts.append(part)
            trial.report(float(np.mean(fold_scores)), offset + k + 1)
            if k + 1 < len(splits) and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {k + 1} of {len(splits)}")
        scores = score_oof(self.spec, pd.concat(parts, ignore_index=True), y_enc, self.data.ids, cols)
        trial.set_user_attr("cv_std", scores["cv_std"])
        return scores["cv"]

    def _check_surplus(self, trial: optuna.Trial) -> None:
        # Trial numbers are unique across workers: a trial is surplus when the finished trials
        # plus the running ones numbered before it already make the target.
        if self.n_trials is None:
            return
        trials = trial.study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        ahead = sum(1 for t in trials if t.state != TrialState.RUNNING or t.number < trial.number)
        if ahead >= self.n_trials:
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise _SurplusTrial(f"the study already has {self.n_trials} trials")


# ---------------------------------------------------------------------------------------- workers
@dataclass
class Tuning:
    """Everything a worker needs to join a study (picklable: it travels to processes and Dask)."""

    objective: FoldObjective
    storage: str
    study_name: str
    direction: str
    n_trials: int
    timeout: float | None = None
    pruner: str = "median"
    seed: int = 0
    heartbeat_interval: int | None = 10
    grace_period: int | None = 30

    def open_study(self, *, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
        storage = open_storage(self.storage, heartbeat_interval=self.heartbeat_interval,
                               grace_period=self.grace_period)
        return optuna.create_study(storage=storage, study_name=self.study_name, direction=self.direction,
                                   sampler=sampler, load_if_exists=True,
                                   pruner=make_pruner(self.pruner, in_fold=self.objective.in_fold))


def _counts(study: optuna.Study) -> dict[TrialState, int]:
    out = dict.fromkeys(TrialState, 0)
    for t in study.get_trials(deepcopy=False):
        out[t.state] += 1
    return out


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark failed the RUNNING trials of dead workers: stale heartbeats (RDB storages, any
    host) and trials started on this host by a process that no longer exists (any storage)."""
    import psutil

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker", "")
        w_host, _, rest = worker.partition(":")
        if w_host != host or not rest:
            continue
        pid, _, started = rest.partition(":")
        try:
            alive = f"{psutil.Process(int(pid)).create_time():.0f}" == started
        except (psutil.NoSuchProcess, ValueError):
            alive = False
        if not alive:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
                failed.append(t.number)
    return failed


def _worker(tuning: Tuning, index: int, show_progress: bool = False) -> int:
    """One worker: run trials on the study until it has ``n_trials`` finished or time is up."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = tuning.open_study()
    fail_dead_trials(study)
    n_before = sum(_counts(study)[s] for s in FINISHED)
    # Seeds differ per worker and per resume, so a resumed study does not replay its first trials.
    sampler = optuna.samplers.TPESampler(seed=tuning.seed + 1000 * index + n_before, multivariate=True,
                                         constant_liar=True, n_startup_trials=10)
    study = tuning.open_study(sampler=sampler)
    deadline = time.monotonic() + tuning.timeout if tuning.timeout else None
    ran = 0
    bar = progress(range(max(tuning.n_trials - n_before, 0)), desc=f"{tuning.study_name} trials") \
        if show_progress else None
    while deadline is None or time.monotonic() < deadline:
        counts = _counts(study)
        if sum(counts[s] for s in FINISHED) + counts[TrialState.RUNNING] >= tuning.n_trials:
            break
        study.optimize(tuning.objective, n_trials=1, catch=(_SurplusTrial,), gc_after_trial=False)
        ran += 1
        if bar is not None:
            next(bar, None)
    return ran


def run_workers(tuning: Tuning, *, n_jobs: int = 1, scheduler: str | None = None) -> int:
    """Run ``n_jobs`` workers on the study: in this process (1), local processes (joblib), or
    Dask tasks on the cluster at ``scheduler``. Returns how many trials they started."""
    from kagtools.scale import scheduler_context

    if n_jobs == 1 and not scheduler:
        return _worker(tuning, 0, show_progress=True)
    n_jobs = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
    with scheduler_context(scheduler):
        ran = joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(_worker)(tuning, i) for i in range(n_jobs))
    return int(sum(ran))


# --------------------------------------------------------------------------------------- results
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
    counts = _counts(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise KagtoolsError(f"study '{tuning.study_name}' has no complete trial yet "
                            f"({counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed)")
    best = study.best_trial
    reverse = tuning.direction == "maximize"
    ranked = sorted(complete, key=lambda t: t.value, reverse=reverse)[:top]
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


def write_reports(study: optuna.Study, reports: Path, model: str, *, max_contour: int = 3) -> list[Path]:
    """Optimization history, parameter importances, slice and contour plots (PNG) and an HTML
    page that shows them, in ``reports``; a plot that cannot be drawn yet is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    reports.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = sorted({p for t in complete for p in t.params})
    importances: dict[str, float] = {}
    if len(complete) >= 2 and names:
        with contextlib.suppress(ValueError, RuntimeError):
            importances = optuna.importance.get_param_importances(study)
    top = list(importances)[:max_contour] or names[:max_contour]
    plots = {
        "history": lambda: ovm.plot_optimization_history(study),
        "importances": (lambda: ovm.plot_param_importances(study)) if importances else None,
        "slice": (lambda: ovm.plot_slice(study, params=names)) if names else None,
        "contour": (lambda: ovm.plot_contour(study, params=top)) if len(top) >= 2 and len(complete) >= 2 else None,
    }
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib backend experimental
        for kind, draw in plots.items():
            if draw is None or not complete:
                continue
            try:
                ax = draw()
            except (ValueError, RuntimeError):
                continue
            fig = np.asarray(ax).ravel()[0].figure
            if kind in ("slice", "contour"):
                fig.set_size_inches(max(6.0, 3.2 * min(len(names), 7)), 4.5 if kind == "slice" else 3.2 * len(top))
            path = reports / f"tune-{model}-{kind}.png"
            fig.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(fig)
            written.append(path)
    html = reports / f"tune-{model}.html"
    rows = "".join(f"<tr><td>{k}</td><td>{v:.3f}</td></tr>" for k, v in importances.items())
    imgs = "".join(f'<h2>{p.stem.rsplit("-", 1)[-1]}</h2><img src="{p.name}" style="max-width:100%">'
                   for p in written)
    best = f"<p>best trial {study.best_trial.number}: {study.best_value:.5f}</p>" if complete else ""
    html.write_text(f"<!doctype html><meta charset='utf-8'><title>{study.study_name}</title>"
                    f"<h1>Study {study.study_name}</h1>{best}<table>{rows}</table>{imgs}\n")
    return [html, *written]


# ------------------------------------------------------------------------------------ the flow
def default_storage(ctx) -> str:
    """The embedded default: a SQLite file beside the competition's runs."""
    ctx.root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(ctx.root / 'optuna.db').resolve()}"


def default_study_name(ctx, model: str) -> str:
    """One study per model, features and folds: scores on other folds are not comparable."""
    return f"{ctx.spec.slug}-{model}-{ctx.training_set.name}-{ctx.folds.hash}"


def _pipeline_params(ctx, model: str) -> dict[str, Any]:
    from kagtools.pipeline import pipeline_models

    for registered, params in pipeline_models(ctx.spec).values():
        if registered == model:
            return dict(params)
    return {}


def tune(ctx, model: str, *, n_trials: int = 50, timeout: float | None = None, storage: str | None = None,
         study_name: str | None = None, n_jobs: int = 1, scheduler: str | None = None,
         pruner: str = "median", seed: int | None = None, params: dict[str, Any] | None = None,
         space: dict[str, Any] | None = None, run_best: bool = True, reports: bool = True,
         heartbeat_interval: int | None = 10, grace_period: int | None = 30):
    """Tune ``model`` on the competition of ``ctx``; save the best parameters, run them, plot.

    Parameters
    ----------
    ctx : kagtools.workflow.Context
    model : str
        A registered model with a ``search_space`` (or ``space`` given).
    n_trials : int
        The study's target of finished trials; a rerun continues up to it.
    params : dict, optional
        Parameters held fixed (they override the pipeline's and leave the search space).
    space : dict, optional
        Search-space entries replacing or adding to the model's (see :func:`parse_space`).

    Returns
    -------
    (TuneResult, Run or None, list of report paths)
    """
    from kagtools.scale import scheduler_context
    from kagtools.workflow import run_model, tuned_params_path

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # kagtools prints its own summary
    user = dict(params or {})
    fixed = {**_pipeline_params(ctx, model), **user}
    space_fn = ModelSpace(model, parse_space(space), exclude=tuple(user))
    check_space(model, space_fn, fixed)
    if n_trials < 1:
        raise KagtoolsError(f"--trials must be at least 1, got {n_trials}")
    seed = ctx.spec.cv.seed if seed is None else seed
    metric = get_metric(ctx.spec.metric)
    tuning = Tuning(
        objective=FoldObjective(ctx.spec, ctx.training_set, ctx.folds, model, space_fn, fixed=fixed,
                                seed=seed, n_trials=n_trials, lgbm_pruning=pruner == "median"),
        storage=storage or default_storage(ctx), study_name=study_name or default_study_name(ctx, model),
        direction="maximize" if metric.greater_is_better else "minimize", n_trials=n_trials,
        timeout=timeout, pruner=pruner, seed=seed, heartbeat_interval=heartbeat_interval,
        grace_period=grace_period)
    make_pruner(pruner)
    study = tuning.open_study()  # one clear error for a bad storage before any worker starts
    start = time.perf_counter()
    run_workers(tuning, n_jobs=n_jobs, scheduler=scheduler)
    result = summarize(study, tuning, time.perf_counter() - start)
    info = {"study": tuning.study_name, "storage": redact_url(tuning.storage), "trial": result.best_trial,
            "value": result.best_value}
    run = None
    if run_best:
        with scheduler_context(scheduler):
            run = run_model(ctx, model, result.params, n_jobs=n_jobs, seed=seed, extra_meta={"tuning": info})
    write_json(tuned_params_path(ctx, model), result.as_json(model, {
        "metric": metric.name, "direction": tuning.direction, "folds_hash": ctx.folds.hash,
        "features": ctx.training_set.name, "run_id": run.run_id if run else None}))
    paths = write_reports(study, ctx.reports, model) if reports else []
    return result, run, paths
