"""Optuna tuning: resumable studies, shared storages, pruning, faults, best params into `cv`."""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from sklearn.base import BaseEstimator

import kagtools.tuning
from kagtools.cli.main import main
from kagtools.core import engine
from kagtools.core.engine import TrainingSet
from kagtools.core.folds import Folds, ensure_folds
from kagtools.core.spec import CompetitionSpec, parse_spec
from kagtools.errors import KagtoolsError
from kagtools.models import register_model
from kagtools.tuning.objective import FOLD_STEP_OFFSET, FoldObjective, ReportAndPrune
from kagtools.tuning.pruners import make_pruner
from kagtools.tuning.space import ModelSpace, check_space
from kagtools.tuning.storage import open_storage
from kagtools.tuning.study import tune
from kagtools.tuning.workers import Tuning, fail_dead_trials, run_workers, worker_id

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("KAGTOOLS_TEST_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(
    not PG_URL, reason="no PostgreSQL server: set KAGTOOLS_TEST_POSTGRES_URL (.ci/run starts one)")
SMALL_LGBM = {"n_estimators": {"low": 10, "high": 40}, "num_leaves": {"low": 4, "high": 16}}


@register_model("_tune_probe")
class Probe(BaseEstimator):
    """A model whose accuracy is ``quality``: it copies the answer column, flipping the rest."""

    tasks = ("binary",)

    def __init__(self, *, task: str = "binary", quality: float = 0.5, seed: int = 0):
        self.task = task
        self.quality = quality
        self.seed = seed

    def fit(self, X, y, X_valid=None, y_valid=None):
        self.fitted_ = True
        return self

    def predict_scores(self, X):
        keep = np.random.default_rng(self.seed).random(len(X)) < self.quality
        truth = X["answer"].to_numpy(dtype=float)
        return np.where(keep, truth, 1.0 - truth)

    @staticmethod
    def search_space(trial):
        return {"quality": trial.suggest_float("quality", 0.0, 1.0)}


@dataclass
class SyntheticContext:
    """What :func:`kagtools.tuning.tune` reads of a :class:`kagtools.workflow.context.Context`."""

    spec: CompetitionSpec
    training_set: TrainingSet
    folds: Folds
    workdir: Path

    @property
    def root(self) -> Path:
        return self.workdir / "runs" / self.spec.slug

    @property
    def reports(self) -> Path:
        return self.workdir / "reports" / self.spec.slug


def synthetic_context(workdir: Path, n: int = 240, n_splits: int = 4) -> SyntheticContext:
    spec = parse_spec({"slug": "synth", "task": "binary", "id_col": "id", "target_cols": ["y"],
                       "metric": {"name": "accuracy"},
                       "cv": {"splitter": "StratifiedKFold", "n_splits": n_splits, "seed": 0, "stratify": "y"}})
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    y = pd.Series((X["a"] + 0.5 * X["b"] + 0.7 * rng.normal(size=n) > 0).astype(int))
    X["answer"] = y.astype(float)  # only the probe model reads it; LightGBM gets it too (fast fits)
    ids = pd.Series(np.arange(n) + 1)
    tset = TrainingSet(X=X, y=y, ids=ids, X_test=X.head(20).copy(), test_ids=pd.Series(np.arange(20) + 5000),
                       name="synth-v1")
    root = workdir / "runs" / "synth"
    folds = ensure_folds(pd.DataFrame({"id": ids, "y": y}), spec, root)
    return SyntheticContext(spec=spec, training_set=tset, folds=folds, workdir=workdir)


def _states(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _load(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage, heartbeat_interval=None))


# ----------------------------------------------------------------------------------- search space
def test_unknown_parameter_is_rejected_before_any_trial(tmp_path):
    ctx = synthetic_context(tmp_path)
    with pytest.raises(KagtoolsError, match="unknown parameter 'leaves'"):
        tune(ctx, "lgbm", n_trials=2, space={"leaves": {"low": 2, "high": 8}})
    with pytest.raises(KagtoolsError, match="unknown parameter 'depth'"):
        tune(ctx, "lgbm", n_trials=2, params={"depth": 3})
    with pytest.raises(KagtoolsError, match="needs"):
        tune(ctx, "lgbm", n_trials=2, space={"num_leaves": [2, 8]})
    assert not (ctx.root / "optuna.db").exists()  # no study was even created

    @register_model("_tune_bad_space")
    class BadSpace(Probe):
        @staticmethod
        def search_space(trial):
            return {"qualty": trial.suggest_float("qualty", 0.0, 1.0)}

    with pytest.raises(KagtoolsError, match="unknown parameter 'qualty'"):
        check_space("_tune_bad_space", ModelSpace("_tune_bad_space"), {})


# ------------------------------------------------------------------------------------- pruning
def test_pruning_prunes_a_synthetic_objective_built_to_be_pruned(tmp_path):
    ctx = synthetic_context(tmp_path)
    objective = FoldObjective(ctx.spec, ctx.training_set, ctx.folds, "_tune_probe", ModelSpace("_tune_probe"))
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median"),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=30)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(pruned) >= 8, _states(study)
    # A pruned trial stopped before its last fold, and it was a poor one.
    assert all(max(t.intermediate_values) < ctx.folds.n_splits for t in pruned)
    assert np.median([t.params["quality"] for t in pruned]) < np.median([t.params["quality"] for t in complete])
    assert study.best_params["quality"] > 0.8
    # The value is the CV score: accuracy ~ quality.
    assert abs(study.best_value - study.best_params["quality"]) < 0.1

    halving = optuna.create_study(direction="maximize", pruner=make_pruner("halving"),
                                  sampler=optuna.samplers.RandomSampler(seed=0))
    halving.optimize(objective, n_trials=15)
    assert halving.get_trials(states=(TrialState.PRUNED,))

    none = optuna.create_study(direction="maximize", pruner=make_pruner("none"),
                               sampler=optuna.samplers.RandomSampler(seed=0))
    none.optimize(objective, n_trials=10)
    assert not none.get_trials(states=(TrialState.PRUNED,))


def test_median_pruner_judges_the_latest_running_mean():
    def study_with(pruner):
        study = optuna.create_study(direction="maximize", pruner=pruner)
        for _ in range(5):
            t = study.ask()
            for step in (1, 2, 3):
                t.report(0.8, step)
            study.tell(t, 0.8)
        lucky = study.ask()
        lucky.report(0.95, 1)  # a lucky first fold ...
        lucky.report(0.6, 2)  # ... then far behind: the running mean is below everyone's
        return lucky.should_prune()

    assert study_with(make_pruner("median"))
    assert not study_with(optuna.pruners.MedianPruner(n_startup_trials=5))  # Optuna's: best so far


def test_lightgbm_reports_inside_the_first_fold(tmp_path):
    ctx = synthetic_context(tmp_path)
    space = ModelSpace("lgbm", {"n_estimators": {"low": 50, "high": 60}})
    objective = FoldObjective(ctx.spec, ctx.training_set, ctx.folds, "lgbm", space)
    study = optuna.create_study(direction="maximize", pruner=make_pruner("none"))
    study.optimize(objective, n_trials=1)
    steps = sorted(study.trials[0].intermediate_values)
    in_fold = [s for s in steps if s < FOLD_STEP_OFFSET]
    assert in_fold[:2] == [24, 49]  # LightGBM's log-loss every 25 rounds of fold 1 (negated)
    assert all(study.trials[0].intermediate_values[s] < 0 for s in in_fold)
    assert [s - FOLD_STEP_OFFSET for s in steps if s >= FOLD_STEP_OFFSET] == [1, 2, 3, 4]


class PruneFrom(optuna.pruners.BasePruner):
    """Prunes every trial whose latest report is at ``step`` or later."""

    def __init__(self, step: int):
        self.step = step

    def prune(self, study, trial) -> bool:
        return trial.last_step is not None and trial.last_step >= self.step


def test_a_trial_is_pruned_through_the_engine_callback(tmp_path, monkeypatch):
    ctx = synthetic_context(tmp_path)
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return engine.run_folds(*args, **kwargs)

    monkeypatch.setattr(kagtools.tuning.objective, "run_folds", spy)
    objective = FoldObjective(ctx.spec, ctx.training_set, ctx.folds, "_tune_probe", ModelSpace("_tune_probe"))
    study = optuna.create_study(direction="maximize", pruner=PruneFrom(1),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]  # reported after fold 1, then stopped there
    (call,) = calls
    assert call["predict_test"] is False
    assert any(isinstance(cb, ReportAndPrune) for cb in call["callbacks"])
    # The value reported is fold 1's score (the running mean of one fold): accuracy ~ quality.
    assert abs(trial.intermediate_values[1] - trial.params["quality"]) < 0.2

    # A trial is never pruned after its last fold: it completes with the CV score.
    last = optuna.create_study(direction="maximize", pruner=PruneFrom(ctx.folds.n_splits),
                               sampler=optuna.samplers.RandomSampler(seed=1))
    last.optimize(objective, n_trials=1)
    (done,) = last.trials
    assert done.state == TrialState.COMPLETE
    assert sorted(done.intermediate_values) == list(range(1, ctx.folds.n_splits + 1))
    assert done.user_attrs["cv_std"] >= 0.0
    # One repeat of (nearly) equal folds: the last running mean is the CV score.
    assert done.intermediate_values[ctx.folds.n_splits] == pytest.approx(done.value, abs=0.01)


# ------------------------------------------------------------------------------ resume and faults
WORKER_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    from pathlib import Path
    from test_tuning import synthetic_context
    from kagtools.tuning.study import tune
    ctx = synthetic_context(Path({workdir!r}))
    Path({ready!r}).touch()  # imports done: wait for the start signal so workers begin together
    while not Path({workdir!r}, "go").exists():
        time.sleep(0.05)
    tune(ctx, {model!r}, n_trials={n_trials}, storage={storage!r}, study_name={study!r}, space={space!r},
         run_best=False, reports=False, seed={seed})
""")


def _spawn(tmp_path, *, model="lgbm", n_trials, storage, study, space=None, seed=0, name="worker"):
    script = tmp_path / f"{name}.py"
    script.write_text(WORKER_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests"), workdir=str(tmp_path),
                                           model=model, n_trials=n_trials, storage=storage, study=study,
                                           space=space or SMALL_LGBM, seed=seed,
                                           ready=str(tmp_path / f"{name}.ready")))
    env = {**os.environ, "KAGTOOLS_QUIET": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _start(tmp_path, names, timeout=120):
    deadline = time.monotonic() + timeout
    while not all((tmp_path / f"{n}.ready").exists() for n in names) and time.monotonic() < deadline:
        time.sleep(0.1)
    (tmp_path / "go").touch()


def test_resume_after_a_killed_worker_continues_the_count(tmp_path):
    ctx = synthetic_context(tmp_path)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    slow = {"n_estimators": {"low": 300, "high": 400}}  # long enough trials to be killed inside one
    proc = _spawn(tmp_path, n_trials=50, storage=storage, study="resume", space=slow)
    _start(tmp_path, ["worker"])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()[0]
        try:
            trials = _load(storage, "resume").get_trials(deepcopy=False)
        except KeyError:
            continue
        # Killed inside a trial: one its worker has signed (a worker killed before it signs its
        # trial, inside Optuna's ask, leaves it to the heartbeat's grace period).
        if (sum(t.state == TrialState.COMPLETE for t in trials) >= 2 and trials[-1].state == TrialState.RUNNING
                and "worker" in trials[-1].user_attrs):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = _load(storage, "resume").get_trials(deepcopy=False)
    n_done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in killed)
    assert killed[-1].state == TrialState.RUNNING and n_done >= 2

    result, run, _ = tune(ctx, "lgbm", n_trials=n_done + 2, storage=storage, study_name="resume",
                          space=slow, reports=False)
    study = _load(storage, "resume")
    trials = study.get_trials(deepcopy=False)
    assert trials[len(killed) - 1].state == TrialState.FAIL  # the killed worker's trial
    assert _states(study).get("RUNNING", 0) == 0
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == n_done + 2
    assert len(trials) == len(killed) + 2  # continued the numbering
    assert run.record.scores["cv"] == pytest.approx(result.best_value)
    assert run.record.details["tuning"] == {"study": "resume", "storage": storage, "trial": result.best_trial,
                                            "value": result.best_value}
    assert json.loads((ctx.root / "tuned" / "lgbm.json").read_text())["run_id"] == run.run_id
    # The same command again has nothing left to do.
    again, _, _ = tune(ctx, "lgbm", n_trials=n_done + 2, storage=storage, study_name="resume",
                       space=slow, run_best=False, reports=False)
    assert len(_load(storage, "resume").trials) == len(trials) and again.best_trial == result.best_trial


def test_journal_storage_with_two_local_worker_processes(tmp_path):
    ctx = synthetic_context(tmp_path)
    tuning = Tuning(
        objective=FoldObjective(ctx.spec, ctx.training_set, ctx.folds, "lgbm", ModelSpace("lgbm", SMALL_LGBM),
                                n_trials=6),
        storage=f"journal:{tmp_path / 'journal.log'}", study_name="journal", direction="maximize", n_trials=6)
    tuning.open_study()
    run_workers(tuning, n_jobs=2)
    trials = tuning.open_study().get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both processes contributed


def test_fail_dead_trials_fails_a_dead_local_workers_trial_only(tmp_path):
    import psutil

    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'dead.db'}", heartbeat_interval=None),
                                study_name="dead", direction="maximize")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = f"{worker_id().split(':')[0]}:{proc.pid}:{psutil.Process(proc.pid).create_time():.0f}"
    proc.kill()
    proc.wait()
    workers = {"dead": dead, "alive": worker_id(), "reused pid": f"{worker_id().rsplit(':', 1)[0]}:1",
               "other host": "elsewhere:1:1"}
    trials = {}
    for name, worker in workers.items():
        trials[name] = study.ask()
        trials[name].set_user_attr("worker", worker)
    finished = study.ask()
    finished.set_user_attr("worker", dead)
    study.tell(finished, 0.5)

    assert sorted(fail_dead_trials(study)) == sorted([trials["dead"].number, trials["reused pid"].number])
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert states[trials["dead"].number] == states[trials["reused pid"].number] == TrialState.FAIL
    assert states[trials["alive"].number] == states[trials["other host"].number] == TrialState.RUNNING
    assert states[finished.number] == TrialState.COMPLETE and study.trials[finished.number].value == 0.5
    assert fail_dead_trials(study) == []  # already failed: nothing left to do, no error
    # A trial never signed (its worker died inside Optuna's ask) fails once older than the grace period.
    unsigned = study.ask()
    assert fail_dead_trials(study) == []
    assert fail_dead_trials(study, grace_period=0) == [unsigned.number]
    assert study.trials[unsigned.number].state == TrialState.FAIL
    assert study.trials[trials["alive"].number].state == TrialState.RUNNING
    # Through Optuna's public API only, never its private storage handle.
    for module in ("storage", "space", "pruners", "objective", "workers", "reports", "study"):
        assert not re.search(r"\._storage\b", inspect.getsource(getattr(kagtools.tuning, module))), module


# --------------------------------------------------------------------------------------- storages
def test_unreachable_storage_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(KagtoolsError, match=r"storage postgresql://kt:\*\*\*@127.0.0.1:1/db: .*Connection refused"):
        open_storage("postgresql://kt:secret@127.0.0.1:1/db")
    with pytest.raises(KagtoolsError, match="cannot open the Optuna storage"):
        open_storage(f"sqlite:///{tmp_path}/no/such/dir/x.db")


def test_workers_racing_to_create_sqlite_tables_retry_and_other_errors_do_not(tmp_path, monkeypatch):
    import sqlalchemy.exc

    real, calls = optuna.storages.RDBStorage, []

    def racing(url, **kwargs):  # another worker created the tables between the check and the CREATE
        calls.append(url)
        if url.endswith("race.db") and len(calls) == 1:
            raise sqlalchemy.exc.OperationalError("CREATE TABLE trial_values", {}, Exception("table trial_values already exists"))
        return real(url, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    assert open_storage(f"sqlite:///{tmp_path / 'race.db'}") is not None and len(calls) == 2
    calls.clear()
    with pytest.raises(KagtoolsError, match="unable to open database file"):
        open_storage(f"sqlite:///{tmp_path}/no/such/dir/x.db")
    assert len(calls) == 1  # not a race: no retry


@needs_postgres
def test_wrong_postgres_credentials_are_one_clear_error():
    from sqlalchemy.engine import make_url

    bad = make_url(PG_URL).set(password="wrong").render_as_string(hide_password=False)
    with pytest.raises(KagtoolsError) as err:
        open_storage(bad)
    assert "password authentication failed" in str(err.value) and "wrong" not in str(err.value)
    assert "\n" not in str(err.value)


@needs_postgres
def test_two_processes_on_one_postgres_study_both_contribute(tmp_path):
    study = f"shared-{uuid.uuid4().hex[:8]}"
    open_storage(PG_URL)  # tables exist before both workers race to create them
    procs = [_spawn(tmp_path, n_trials=8, storage=PG_URL, study=study, seed=i, name=f"w{i}") for i in range(2)]
    _start(tmp_path, ["w0", "w1"])
    outs = [p.communicate(timeout=150)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trials = _load(PG_URL, study).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 8  # exactly what was asked, not 8 per worker
    assert len({t.number for t in trials}) == len(trials)
    pids = {t.user_attrs["worker"] for t in finished}
    assert len(pids) == 2, pids


# ------------------------------------------------------------------------------ end to end (real)
@pytest.mark.slow
def test_titanic_tune_then_cv_uses_the_best_params(tmp_path, mirror, capsys):
    space = json.dumps({"n_estimators": {"low": 20, "high": 80, "log": True}})
    assert main(["tune", "titanic", "--trials", "4", "--workdir", str(tmp_path),  # --model: lgbm
                 "--space", space]) == 0
    out = capsys.readouterr().out
    assert "tuning lgbm on titanic" in out and "best params:" in out and "dashboard: pip install optuna-dashboard" in out
    tuned = json.loads((tmp_path / "runs/titanic/tuned/lgbm.json").read_text())
    assert tuned["n_trials"] == 4 and tuned["folds_hash"] and 20 <= tuned["params"]["n_estimators"] <= 80
    best_run = json.loads((tmp_path / "runs/titanic" / tuned["run_id"] / "run.json").read_text())
    assert best_run["scores"]["cv"] == pytest.approx(tuned["best_value"])
    assert (tmp_path / "runs/titanic" / tuned["run_id"] / "test.parquet").is_file()
    for kind in ("history", "slice"):
        assert (tmp_path / f"reports/titanic/tune-lgbm-{kind}.png").stat().st_size > 1000
    assert "tune-lgbm-history.png" in (tmp_path / "reports/titanic/tune-lgbm.html").read_text()

    assert main(["cv", "titanic", "--model", "lgbm", "--workdir", str(tmp_path), "--n-jobs", "1"]) == 0
    runs = [json.loads(p.read_text()) for p in (tmp_path / "runs/titanic").glob("*/run.json")]
    cv_run = [r for r in runs if "tuning" not in r["details"]]
    assert len(cv_run) == 1 and cv_run[0]["params"] == tuned["params"]
    assert cv_run[0]["scores"]["cv"] == pytest.approx(tuned["best_value"])
    # An explicit --params still wins over the tuned ones.
    assert main(["cv", "titanic", "--model", "lgbm", "--workdir", str(tmp_path), "--n-jobs", "1",
                 "--params", '{"n_estimators": 15}']) == 0

    capsys.readouterr()
    assert main(["tune", "titanic", "--model", "lgbm", "--workdir", str(tmp_path),
                 "--storage", "postgresql://kt:pw@127.0.0.1:1/db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kagtools: error: cannot open the Optuna storage") and "\n" not in err
