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
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from sklearn.base import clone

from kagtools.cv import TrainingSet, _fit_fold, _fold_seed, encode_target, score_oof
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
    "TuneResult",
    "open_storage",
    "redact_url",
    "parse_space",
    "check_space",
    "make_pruner",
    "FoldObjective",
    "run_workers",
    "summarize",
    "write_reports",
    "PRUNERS",
]

PRUNERS = ("median", "halving", "none")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Inside-fold LightGBM reports take steps 0..n_estimators-1; fold reports come after them.
FOLD_STEP_OFFSET = 1_000_000
LGBM_REPORT_INTERVAL = 10


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

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}  # several local workers share one file
    elif url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}  # fail fast on a dead host
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                              heartbeat_interval=heartbeat_interval,
                                              grace_period=grace_period)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise KagtoolsError(f"cannot open the Optuna storage {redact_url(url)}: {reason}") from None


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


def _space_fn(model: str, overrides: dict[str, dict[str, Any]]) -> SpaceFn:
    cls = get_model_class(model)
    declared = getattr(cls, "search_space", None)
    if declared is None and not overrides:
        raise KagtoolsError(f"model '{model}' declares no search space; pass one with --space")

    def space(trial):
        params = {k: v for k, v in (declared(trial) if declared else {}).items() if k not in overrides}
        params.update({name: _suggest(trial, name, dist) for name, dist in overrides.items()})
        return params

    return space


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


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """``median``: prune below the median of earlier trials at the same step (after 5 trials);
    ``halving``: asynchronous successive halving over folds; ``none``: never prune."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2 * LGBM_REPORT_INTERVAL)
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
        in_fold = self.lgbm_pruning and _lgbm_metric(self.spec.task) and "callbacks" in base.get_params() \
            and type(base).__module__ == "kagtools.models.tabular" and type(base).__name__ == "LightGBM"
        offset = FOLD_STEP_OFFSET if in_fold else 0
        splits = list(self.folds.splits(self.data.ids))
        parts, fold_scores = [], []
        cols = pred_columns(self.spec, classes)
        for k, (r, f, tr, va) in enumerate(splits):
            model = clone(base).set_params(**_fold_seed(base, seed, r, f))
            if in_fold and k == 0:
                from optuna_integration import LightGBMPruningCallback

                view = _MinimisingView(trial, metric.greater_is_better)
                model.set_params(callbacks=[LightGBMPruningCallback(
                    view, _lgbm_metric(self.spec.task), report_interval=LGBM_REPORT_INTERVAL)])
            _, pred, _, _ = _fit_fold(model, self.data.fold_features, self.data.X, y_enc, None, tr, va)
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
                                   sampler=sampler, pruner=make_pruner(self.pruner), load_if_exists=True)


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


def study_trials_frame(study: optuna.Study) -> pd.DataFrame:
    """The study's trials as a table (number, state, value, params)."""
    return study.trials_dataframe(attrs=("number", "state", "value", "params"))


def save_tuned(path: Path, result: TuneResult, model: str, extra: dict[str, Any] | None = None) -> Path:
    """Write the best parameters where ``kagtools cv``/``submit`` look for them."""
    return write_json(path, result.as_json(model, extra))


@contextlib.contextmanager
def _timer() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start
