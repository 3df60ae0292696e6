"""Scale-out on Dask: folds and tuning trials on a LocalCluster of worker processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

from kagtools.core.engine import cross_validate
from kagtools.core.parallel import scheduler_context
from kagtools.errors import KagtoolsError
from kagtools.tuning.objective import FoldObjective
from kagtools.tuning.space import ModelSpace
from kagtools.tuning.workers import Tuning, run_workers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_tuning import SMALL_LGBM, synthetic_context  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as c:
        yield c


def test_folds_on_dask_equal_the_local_ones(tmp_path, cluster):
    ctx = synthetic_context(tmp_path)
    params = {"n_estimators": 30, "num_leaves": 8, "subsample": 0.8, "colsample_bytree": 0.7}
    local = cross_validate(ctx.spec, ctx.training_set, ctx.folds, "lgbm", params, root=tmp_path / "local", n_jobs=1)
    with scheduler_context(cluster.scheduler_address):
        remote = cross_validate(ctx.spec, ctx.training_set, ctx.folds, "lgbm", params, root=tmp_path / "dask",
                                n_jobs=2)
    pd.testing.assert_frame_equal(local.oof, remote.oof)
    pd.testing.assert_frame_equal(local.test, remote.test)
    assert local.record.scores["folds"] == remote.record.scores["folds"]
    # The folds really ran in the cluster's worker processes.
    from distributed import Client

    with Client(cluster.scheduler_address) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2 and sum(executed.values()) >= 1


def test_trials_on_dask_workers_share_one_study(tmp_path, cluster):
    ctx = synthetic_context(tmp_path)
    tuning = Tuning(
        objective=FoldObjective(ctx.spec, ctx.training_set, ctx.folds, "lgbm", ModelSpace("lgbm", SMALL_LGBM),
                                n_trials=6),
        storage=f"sqlite:///{tmp_path / 'dask.db'}", study_name="dask", direction="maximize", n_trials=6)
    tuning.open_study()
    run_workers(tuning, n_jobs=2, scheduler=cluster.scheduler_address)
    trials = tuning.open_study().get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6
    worker_pids = {t.user_attrs["worker"].split(":")[1] for t in finished}
    assert len(worker_pids) == 2 and str(os.getpid()) not in worker_pids


def test_unreachable_scheduler_is_one_clear_error():
    with pytest.raises(KagtoolsError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        with scheduler_context("tcp://127.0.0.1:1", timeout="1s"):
            pass
