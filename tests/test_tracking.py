"""MLflow tracking: runs/ mirrored into a local SQLite store and into a real ``mlflow server`` on
loopback; an unreachable server costs one warning line and no run; --no-track writes nothing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("mlflow")

from kagtools.cli.main import main  # noqa: E402
from kagtools.core import tracking  # noqa: E402


@pytest.fixture()
def comp(tmp_path, monkeypatch):
    """A tiny binary competition ``syn`` set up by ``init`` (3 folds, 1 repeat) with tracking on."""
    monkeypatch.delenv("KAGTOOLS_NO_TRACK", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({"id": np.arange(n), "a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["y"] = (frame["a"] + 0.5 * rng.normal(size=n) > 0).astype(int)
    data = tmp_path / "data"
    data.mkdir()
    frame.iloc[:160].to_csv(data / "train.csv", index=False)
    test = frame.iloc[160:].drop(columns="y")
    test.to_csv(data / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "y": 0}).to_csv(data / "sample_submission.csv", index=False)
    common = ["--data-dir", str(data), "--workdir", str(tmp_path / "work")]
    assert main(["init", "syn", *common, "--n-splits", "3", "--n-repeats", "1", "--submission", "labels",
                 "--no-track"]) == 0
    yield tmp_path / "work", common
    tracking.configure(tmp_path, enabled=False)  # later tests of this process track nothing


def _runs(uri: str) -> dict[str, object]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("syn")
    return client, {r.info.run_name: r for r in client.search_runs([exp.experiment_id], max_results=1000)}


def test_submit_cv_blend_and_tune_appear_in_the_sqlite_store(comp, capsys):
    work, common = comp
    assert main(["submit", "syn", "--preset", "fast", "--no-eda", "--n-jobs", "1", *common]) == 0
    assert main(["cv", "syn", "--model", "logreg", "--n-jobs", "1", *common]) == 0
    assert main(["cv", "syn", "--model", "rf", "--params", '{"n_estimators": 20}', "--n-jobs", "1", *common]) == 0
    assert main(["blend", "syn", "--method", "mean", *common]) == 0
    assert main(["tune", "syn", "--model", "logreg", "--trials", "5", "--n-jobs", "1", *common]) == 0
    tracking.flush()
    uri = tracking.default_uri(work)
    assert (work / "runs" / "mlflow.db").is_file()
    out = capsys.readouterr()
    assert f"mlflow ui --backend-store-uri {uri}" in out.out and "warning" not in out.err

    client, runs = _runs(uri)
    recorded = {p.name: json.loads((p / "run.json").read_text())
                for p in (work / "runs" / "syn").iterdir() if (p / "run.json").is_file()}
    assert set(recorded) <= set(runs)  # every run of runs/ is mirrored
    for run_id, rec in recorded.items():
        r = runs[run_id]
        assert r.data.metrics["cv"] == pytest.approx(rec["scores"]["cv"])
        assert r.data.metrics["cv_std"] == pytest.approx(rec["scores"]["cv_std"])
        assert r.data.tags["folds_hash"] == rec["folds_hash"]
        assert r.data.tags["data_fingerprint"] == rec["provenance"]["data_fingerprint"]
        assert r.data.tags["kagtools.kind"] == rec["kind"]
        if rec["provenance"]["git_sha"]:
            assert r.data.tags["git_sha"] == rec["provenance"]["git_sha"]
        folds = client.get_metric_history(r.info.run_id, "fold_score")
        assert [m.value for m in sorted(folds, key=lambda m: m.step)] == pytest.approx(
            [f["score"] for f in rec["scores"]["folds"]])
        assert "run.json" in {a.path for a in client.list_artifacts(r.info.run_id)}
    blend = next(r for name, r in runs.items() if name.startswith("blend-mean"))
    assert blend.data.metrics["nested"] == pytest.approx(recorded[blend.info.run_name]["scores"]["nested"])
    assert blend.data.params["members"].split(",") == sorted(recorded[blend.info.run_name]["runs"])
    assert any(a.path == "reports" for a in client.list_artifacts(blend.info.run_id))  # blend.png
    logreg = next(r for name, r in runs.items() if name.startswith("logreg-") and "C" not in r.data.params)
    assert logreg.data.params["model"] == "logreg"

    trials = [r for r in runs.values() if r.data.tags.get("kagtools.kind") == "trial"]
    assert sorted(int(r.data.tags["kagtools.trial"]) for r in trials) == [0, 1, 2, 3, 4]
    assert all("cv" in r.data.metrics and "C" in r.data.params for r in trials)
    tuned = json.loads((work / "runs" / "syn" / "tuned" / "logreg.json").read_text())
    best = runs[tuned["run_id"]]  # the tuned run carries the tuning report
    assert any(a.path == "reports" for a in client.list_artifacts(best.info.run_id))

    # A second tune on the same study mirrors only its new trials; a reused run is not logged twice.
    assert main(["tune", "syn", "--model", "logreg", "--trials", "7", "--n-jobs", "1", *common]) == 0  # 2 more
    tracking.flush()
    _, again = _runs(uri)
    trials = [r for r in again.values() if r.data.tags.get("kagtools.kind") == "trial"]
    assert sorted(int(r.data.tags["kagtools.trial"]) for r in trials) == list(range(7))


def test_unreachable_server_costs_one_warning_line_and_no_run(comp, capsys):
    """A command that writes many runs (a blend writes one per method) warns once; every run is
    written to runs/ all the same."""
    work, common = comp
    args = ["--tracking-uri", "http://127.0.0.1:9", *common]
    assert main(["cv", "syn", "--model", "logreg", "--n-jobs", "1", *args]) == 0
    assert main(["cv", "syn", "--model", "rf", "--params", '{"n_estimators": 20}', "--n-jobs", "1", *args]) == 0
    tracking.flush()
    err = capsys.readouterr().err
    assert sum("MLflow tracking" in line for line in err.splitlines()) == 2  # one per command
    assert main(["blend", "syn", *args]) == 0
    tracking.flush()
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "MLflow tracking" in line]
    assert len(warnings) == 1 and "127.0.0.1:9" in warnings[0] and "runs/ keeps every run" in warnings[0]
    assert len(list((work / "runs" / "syn").glob("blend-*"))) > 3 and list((work / "runs" / "syn").glob("logreg-*"))
    assert not (work / "runs" / "mlflow.db").exists()


def test_no_track_writes_nothing(comp, monkeypatch):
    work, common = comp
    assert main(["cv", "syn", "--model", "logreg", "--n-jobs", "1", "--no-track", *common]) == 0
    monkeypatch.setenv("KAGTOOLS_NO_TRACK", "1")
    assert main(["cv", "syn", "--model", "logreg", "--params", '{"C": 0.5}', "--n-jobs", "1", *common]) == 0
    tracking.flush()
    assert not (work / "runs" / "mlflow.db").exists() and not (work / "runs" / "mlartifacts").exists()
    assert not (work / "runs" / "syn" / "tensorboard").exists()


def test_tracking_uri_without_mlflow_is_one_line_naming_the_extra(comp, monkeypatch, capsys):
    work, common = comp
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert main(["cv", "syn", "--model", "logreg", "--tracking-uri", "http://127.0.0.1:9", *common]) == 2
    assert "pip install 'kagtools[tracking]'" in capsys.readouterr().err
    # Without --tracking-uri a core install simply does not track.
    assert main(["cv", "syn", "--model", "logreg", "--n-jobs", "1", *common]) == 0
    assert tracking.tracking_uri() is None and not (work / "runs" / "mlflow.db").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(tmp: Path, backend_uri: str | None = None, *, wait: bool = True):
    """``mlflow server`` on a free loopback port over ``backend_uri`` (default: a new SQLite file
    in ``tmp``), one worker; returns (url, process), once it answers ``/health`` unless ``wait``
    is false (then :func:`wait_mlflow_server`). Stop it with :func:`stop_mlflow_server`."""
    import os
    import subprocess
    import sys

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    tmp.mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow) if mlflow.is_file() else sys.executable, *([] if mlflow.is_file() else ["-m", "mlflow"]),
           "server", "--backend-store-uri", backend_uri or f"sqlite:///{tmp / 'server.db'}",
           "--artifacts-destination", str(tmp / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(tmp / "mlflow-server.log", "w")  # noqa: SIM115 (closed by stop_mlflow_server)
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log, proc.log_path = log, tmp / "mlflow-server.log"
    if wait:
        wait_mlflow_server(url, proc)
    return url, proc


def wait_mlflow_server(url: str, proc, timeout: float = 120.0) -> None:
    """Wait until the server answers ``/health``; stop it and fail with its log if it dies or stays silent."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_mlflow_server(proc)
            raise RuntimeError(f"mlflow server exited ({proc.returncode}): "
                               + proc.log_path.read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    stop_mlflow_server(proc)
    raise RuntimeError(f"mlflow server did not answer within {timeout:.0f}s: "
                       + proc.log_path.read_text()[-2000:])


def stop_mlflow_server(proc) -> None:
    """Stop the server started by :func:`start_mlflow_server` (its whole process group: uvicorn's worker too)."""
    import os
    import signal
    import subprocess

    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the group outlives a leader that died first
        proc.wait(15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    proc.log.close()


@pytest.fixture()
def mlflow_server(tmp_path):
    """The URL of an MLflow tracking server: ``$KAGTOOLS_TEST_MLFLOW_URL`` when CI started one,
    else one this test starts on loopback (and stops)."""
    import os

    if os.environ.get("KAGTOOLS_TEST_MLFLOW_URL"):
        yield os.environ["KAGTOOLS_TEST_MLFLOW_URL"].rstrip("/")
        return
    url, proc = start_mlflow_server(tmp_path / "server")
    try:
        yield url
    finally:
        stop_mlflow_server(proc)


def test_cv_run_appears_on_an_mlflow_server(comp, mlflow_server, capsys):
    """``--tracking-uri http://...`` sends the run to a real ``mlflow server``: the run, its CV
    and per-fold scores, its tags and run.json, read back through the server's REST API."""
    from mlflow.tracking import MlflowClient

    work, common = comp
    assert main(["cv", "syn", "--model", "logreg", "--n-jobs", "1", "--tracking-uri", mlflow_server, *common]) == 0
    tracking.flush()
    assert "MLflow tracking" not in capsys.readouterr().err  # no warning: the server took the run
    assert not (work / "runs" / "mlflow.db").exists()  # nothing went to the local store
    (path,) = [p for p in (work / "runs" / "syn").iterdir() if (p / "run.json").is_file()]
    rec = json.loads((path / "run.json").read_text())

    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("syn")
    assert exp is not None
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id], max_results=100)}
    r = runs[rec["run_id"]]
    assert r.data.metrics["cv"] == pytest.approx(rec["scores"]["cv"])
    assert r.data.metrics["cv_std"] == pytest.approx(rec["scores"]["cv_std"])
    assert r.data.params["model"] == "logreg"
    assert r.data.tags["folds_hash"] == rec["folds_hash"] and r.data.tags["kagtools.kind"] == "cv"
    folds = client.get_metric_history(r.info.run_id, "fold_score")
    assert [m.value for m in sorted(folds, key=lambda m: m.step)] == pytest.approx(
        [f["score"] for f in rec["scores"]["folds"]])
    assert "run.json" in {a.path for a in client.list_artifacts(r.info.run_id)}  # through the artifact proxy
