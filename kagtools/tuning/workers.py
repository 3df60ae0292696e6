"""Workers: processes (or Dask tasks) running trials on one shared study until it has enough.

``n_trials`` is the study's target of finished (complete + pruned) trials, so rerunning the
same command continues an interrupted study and several workers together stop at exactly that
total. Each worker first reaps the trials of dead workers (:func:`fail_dead_trials`).
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import joblib
import optuna
from optuna.trial import TrialState

from kagtools.core.progress import progress
from kagtools.errors import KagtoolsError
from kagtools.tuning.pruners import make_pruner
from kagtools.tuning.storage import open_storage, redact_url

if TYPE_CHECKING:
    from kagtools.tuning.objective import FoldObjective

__all__ = ["Tuning", "FINISHED", "SurplusTrial", "trial_counts", "worker_id", "fail_dead_trials",
           "run_workers"]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class SurplusTrial(Exception):
    """A trial started after the study already had its target number of trials."""


def worker_id() -> str:
    """``host:pid:start-time`` of this process: tells a dead worker from a reused pid."""
    import psutil

    return f"{socket.gethostname()}:{os.getpid()}:{psutil.Process().create_time():.0f}"


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
        import sqlalchemy.exc

        storage = open_storage(self.storage, heartbeat_interval=self.heartbeat_interval,
                               grace_period=self.grace_period)
        try:
            study = optuna.create_study(storage=storage, study_name=self.study_name, direction=self.direction,
                                        sampler=sampler, load_if_exists=True,
                                        pruner=make_pruner(self.pruner, in_fold=self.objective.in_fold))
            study.set_user_attr("kagtools_opened", time.time())  # a storage it cannot write fails here, once
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
            reason = str(getattr(cause, "orig", None) or cause or exc).strip().splitlines()[0]
            raise KagtoolsError(f"cannot write the Optuna storage {redact_url(self.storage)}: {reason} (give "
                                f"--storage a file or database you can write)") from None
        return study


def trial_counts(study: optuna.Study) -> dict[TrialState, int]:
    """How many trials of ``study`` are in each state (every state present, 0 if none)."""
    return {**dict.fromkeys(TrialState, 0), **Counter(t.state for t in study.get_trials(deepcopy=False))}


def _alive(worker: str, host: str) -> bool | None:
    """Whether the worker ``host:pid:start-time`` still runs; ``None`` when it is not on ``host``."""
    import psutil

    w_host, _, rest = worker.partition(":")
    if w_host != host or not rest:
        return None
    pid, _, started = rest.partition(":")
    try:
        return f"{psutil.Process(int(pid)).create_time():.0f}" == started
    except (psutil.NoSuchProcess, ValueError):
        return False


def _dead(trial: optuna.trial.FrozenTrial, host: str, grace_period: float) -> bool:
    """A RUNNING trial whose worker is gone: its local process no longer exists, or it was never
    signed (the worker died inside Optuna's ``ask``, before the objective's first line signs it)
    and started more than ``grace_period`` seconds ago."""
    worker = trial.user_attrs.get("worker")
    if worker is None:
        started = trial.datetime_start
        return started is not None and (datetime.now() - started).total_seconds() > grace_period
    return _alive(worker, host) is False


def fail_dead_trials(study: optuna.Study, *, grace_period: float = 30) -> list[int]:
    """Mark failed the RUNNING trials of dead workers: stale heartbeats (RDB storages, any
    host), trials started on this host by a process that no longer exists (any storage), and
    trials never signed with a worker that started more than ``grace_period`` seconds ago.

    Returns the numbers of the trials this call marked failed for a dead or missing worker (not
    those failed for a stale heartbeat); a trial that finished meanwhile is left as it is.
    """
    with warnings.catch_warnings(action="ignore", category=optuna.exceptions.ExperimentalWarning):
        optuna.storages.fail_stale_trials(study)
    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _dead(t, host, grace_period):
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):
            # Finished since it was listed: ``tell`` refuses a finished trial (ValueError), the
            # storage one finished between the check and the write (UpdateFinishedTrialError).
            continue
        failed.append(t.number)
    return failed


def _worker(tuning: Tuning, index: int, show_progress: bool = False) -> int:
    """One worker: run trials on the study until it has ``n_trials`` finished or time is up."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = tuning.open_study()
    fail_dead_trials(study, grace_period=tuning.grace_period or 30)
    n_before = sum(trial_counts(study)[s] for s in FINISHED)
    # Seeds differ per worker and per resume, so a resumed study does not replay its first trials.
    sampler = optuna.samplers.TPESampler(seed=tuning.seed + 1000 * index + n_before, multivariate=True,
                                         constant_liar=True, n_startup_trials=10)
    study = tuning.open_study(sampler=sampler)
    deadline = time.monotonic() + tuning.timeout if tuning.timeout else None
    ran = 0
    bar = progress(range(max(tuning.n_trials - n_before, 0)), desc=f"{tuning.study_name} trials") \
        if show_progress else None
    while deadline is None or time.monotonic() < deadline:
        counts = trial_counts(study)
        if sum(counts[s] for s in FINISHED) + counts[TrialState.RUNNING] >= tuning.n_trials:
            break
        study.optimize(tuning.objective, n_trials=1, catch=(SurplusTrial,), gc_after_trial=False)
        ran += 1
        if bar is not None:
            next(bar, None)
    return ran


def run_workers(tuning: Tuning, *, n_jobs: int = 1, scheduler: str | None = None) -> int:
    """Run ``n_jobs`` workers on the study: in this process (1), local processes (joblib), or
    Dask tasks on the cluster at ``scheduler``. Returns how many trials they started."""
    from kagtools.core.parallel import scheduler_context

    if n_jobs == 1 and not scheduler:
        return _worker(tuning, 0, show_progress=True)
    n_jobs = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
    with scheduler_context(scheduler):
        ran = joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(_worker)(tuning, i) for i in range(n_jobs))
    return int(sum(ran))
