"""Experiment tracking: MLflow mirrors ``runs/``; TensorBoard keeps the curves of deep-learning folds.

``runs/`` stays the source of truth. Every run written (:func:`kagtools.core.runs.write_run`)
and every finished tuning trial is mirrored into MLflow (the store: :func:`configure`):
experiment = competition slug, run name = run id, parameters, the CV score (``cv``, ``cv_std``,
``nested`` for blends), each fold's score as a step series, provenance as tags (data
fingerprint, folds hash, git sha, kind) and ``run.json`` as an artifact.

Tracking never fails a command and never slows it much: the runs are queued and logged by one
background thread (importing MLflow and opening its store take seconds: they overlap the
training), which is drained when the command ends (:func:`flush`, also registered ``atexit``).
A store that cannot be reached costs one warning line per process; nothing is retried. Without
MLflow installed tracking is silently off, unless a tracking URI was asked for explicitly.

Deep-learning folds write TensorBoard event files under ``runs/<slug>/tensorboard/`` (the
:class:`kagtools.dl.trainer.TensorBoardLogger` callback): the fold engine names the fold with
:func:`fold_scope`, the trainer asks :func:`tensorboard_logdir` where to write.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import importlib.util
import itertools
import logging
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagtools.core.environment import default_workdir
from kagtools.errors import KagtoolsError

if TYPE_CHECKING:
    from kagtools.core.runs import Run

__all__ = ["configure", "log_run", "log_artifacts", "log_trials", "flush", "default_uri", "ui_command",
           "tracking_uri", "fold_scope", "tensorboard_logdir"]

_PARAM_MAX = 6000  # MLflow's limit on a parameter value
_BATCH = {"metrics": 1000, "params": 100}  # MLflow's limits per log_batch call


def default_uri(workdir: str | os.PathLike) -> str:
    """The default store: a SQLite database in ``<workdir>/runs/`` (``mlflow ui`` reads it)."""
    return f"sqlite:///{(Path(workdir).resolve() / 'runs' / 'mlflow.db').as_posix()}"


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on ``uri`` (a server is already its own UI)."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    return f"mlflow ui --backend-store-uri {uri}"


@dataclass
class _State:
    enabled: bool = False
    uri: str | None = None
    tb_root: Path | None = None
    stamp: str = ""
    queue: queue.Queue | None = None
    thread: threading.Thread | None = None
    warned: bool = False
    logged: int = 0  # MLflow runs written by this command
    mlflow_ids: dict[str, str] = field(default_factory=dict)  # kagtools run id -> MLflow run id
    tb_dirs: set = field(default_factory=set)  # TensorBoard fold directories of this command


_STATE = _State()
_LOCK = threading.Lock()


def configure(workdir: str | os.PathLike | None, slug: str | None = None, *, uri: str | None = None,
              enabled: bool = True) -> None:
    """Set tracking up for one command (``open_ctx`` calls it with the command's options).

    Parameters
    ----------
    workdir : path
        The project folder; the default store is ``<workdir>/runs/mlflow.db`` and TensorBoard
        files go to ``<workdir>/runs/<slug>/tensorboard/``.
    uri : str, optional
        An explicit tracking URI (``--tracking-uri``): without MLflow installed this is an error
        naming the pip install. Else ``MLFLOW_TRACKING_URI``, else the SQLite default.
    enabled : bool
        ``False`` (``--no-track``, or ``KAGTOOLS_NO_TRACK=1``) turns MLflow and TensorBoard off.
    """
    flush()  # a previous command of this process (tests, notebooks) finishes its logging first
    enabled = enabled and os.environ.get("KAGTOOLS_NO_TRACK", "") not in ("1", "true", "yes")
    has_mlflow = importlib.util.find_spec("mlflow") is not None
    if enabled and uri and not has_mlflow:
        raise KagtoolsError("--tracking-uri needs MLflow, which the core install leaves out: "
                            "pip install 'kagtools[tracking]' (or drop --tracking-uri; runs/ keeps every run)")
    workdir = Path(workdir if workdir is not None else default_workdir()).resolve()
    with _LOCK:
        _STATE.__init__()
        _STATE.stamp = time.strftime("%Y%m%d-%H%M%S")
        _STATE.enabled = enabled and has_mlflow
        _STATE.uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_uri(workdir)
        if enabled and slug and importlib.util.find_spec("tensorboard") is not None:
            _STATE.tb_root = workdir / "runs" / slug / "tensorboard"


def tracking_uri() -> str | None:
    """Where this command's runs are mirrored; ``None`` when tracking is off."""
    return _STATE.uri if _STATE.enabled else None


# ------------------------------------------------------------------------------------ the queue
def _submit(make_item: Callable[[], tuple]) -> None:
    """Queue ``make_item()`` for the logging thread (started on the first item); never raises."""
    try:
        item = make_item()
        with _LOCK:
            if not _STATE.enabled:
                return
            if _STATE.thread is None:
                _STATE.queue = queue.Queue()
                _STATE.thread = threading.Thread(target=_worker, args=(_STATE.queue, _STATE.uri),
                                                 name="kagtools-mlflow", daemon=True)
                _STATE.thread.start()
            _STATE.queue.put(item)
    except Exception as exc:  # tracking never fails a command
        _warn(exc)


def log_run(run: Run) -> None:
    """Mirror one finished run into MLflow (queued; never raises)."""
    _submit(lambda: ("run", run.record.to_json(), Path(run.path)))


def log_artifacts(paths: Iterable[str | os.PathLike], *, run_id: str) -> None:
    """Attach files (PNG and HTML reports) to the MLflow run of the kagtools run ``run_id``."""
    _submit(lambda: ("artifacts", run_id, [Path(p) for p in paths if Path(p).is_file()]))


def log_trials(slug: str, study_name: str, trials: Iterable[dict[str, Any]]) -> None:
    """Mirror tuning trials: each a dict with ``number``, ``params``, ``value``, ``state`` and
    optionally ``cv_std`` and ``intermediate`` (step -> value). A trial already mirrored (same
    study and number) is skipped, so a resumed study logs only its new trials."""
    _submit(lambda: ("trials", slug, study_name, list(trials)))


def flush(timeout: float | None = 120.0) -> None:
    """Wait for the queued logging, then print where to look (once per command)."""
    with _LOCK:
        thread, q = _STATE.thread, _STATE.queue
        _STATE.thread = None
    if thread is not None:
        q.put(None)
        thread.join(timeout)
        if thread.is_alive():
            _warn(f"tracking: MLflow logging still busy after {timeout:.0f}s; left behind (runs/ has every run)")
    if _STATE.logged:
        print(f"mlflow: {_STATE.logged} run(s) in {_redact(_STATE.uri)}; open the UI: {ui_command(_redact(_STATE.uri))}",
              flush=True)
        _STATE.logged = 0
    if _STATE.tb_dirs and _STATE.tb_root is not None:
        print(f"tensorboard: {len(_STATE.tb_dirs)} fold(s) logged; tensorboard --logdir {_STATE.tb_root}", flush=True)
        _STATE.tb_dirs = set()


atexit.register(flush)


def _redact(uri: str | None) -> str:
    return re.sub(r"//[^/@]*@", "//***@", uri or "")


def _warn(exc: object) -> None:
    """One warning line per process; tracking stays off for the rest of it."""
    with _LOCK:
        _STATE.enabled = False
        if _STATE.warned:
            return
        _STATE.warned = True
    text = str(exc).strip() or type(exc).__name__
    if any(s in text for s in ("NewConnectionError", "Connection refused", "Max retries exceeded", "timed out")):
        text = "cannot be reached"
    text = text.splitlines()[0][:160]
    print(f"kagtools: warning: MLflow tracking at {_redact(_STATE.uri)} is off for this command ({text}); "
          f"runs/ keeps every run", file=sys.stderr, flush=True)


def _worker(q: queue.Queue, uri: str) -> None:
    """The logging thread: import MLflow and open the store once, then log what comes."""
    try:
        client = _Client(uri)
    except Exception as exc:
        _warn(exc)
        client = None
    while True:
        item = q.get()
        if item is None:
            return
        if client is None or not _STATE.enabled:
            continue
        try:
            getattr(client, item[0])(*item[1:])
        except Exception as exc:
            _warn(exc)
            client = None


class _Client:
    """The MLflow calls kagtools makes: an experiment per slug, idempotent runs."""

    def __init__(self, uri: str):
        # A server that cannot be reached fails fast: no retries with backoff, a short timeout.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):  # no INFO lines about creating tables (set after the import,
            logging.getLogger(name).setLevel(logging.WARNING)  # which configures mlflow's logger)

        self.db_dir = Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///") else None
        if self.db_dir is not None:
            self.db_dir.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=uri)
        self.experiments: dict[str, str] = {}

    def experiment(self, slug: str) -> str:
        if slug not in self.experiments:
            exp = self.client.get_experiment_by_name(slug)
            if exp is None:
                # Artifacts beside the database, not in the current folder.
                location = (self.db_dir / "mlartifacts").as_uri() if self.db_dir is not None else None
                try:
                    self.experiments[slug] = self.client.create_experiment(slug, artifact_location=location)
                except Exception:  # another process created it meanwhile
                    exp = self.client.get_experiment_by_name(slug)
                    if exp is None:
                        raise
            if exp is not None:
                self.experiments[slug] = exp.experiment_id
        return self.experiments[slug]

    def _find(self, exp_id: str, tags: dict[str, str]) -> list:
        quoted = {k: "'" + str(v).replace("'", "\\'") + "'" for k, v in tags.items()}
        query = " and ".join(f"tags.`{k}` = {v}" for k, v in quoted.items())
        return self.client.search_runs([exp_id], filter_string=query, max_results=50000)

    def _log(self, mlflow_id: str, *, metrics=(), params=()) -> None:
        from mlflow.entities import Metric, Param

        metrics = [Metric(k, float(v), ts, step) for k, v, ts, step in metrics]
        params = [Param(k, v) for k, v in params]
        while metrics or params:
            self.client.log_batch(mlflow_id, metrics=metrics[:_BATCH["metrics"]], params=params[:_BATCH["params"]])
            metrics, params = metrics[_BATCH["metrics"]:], params[_BATCH["params"]:]

    def run(self, rec: dict[str, Any], path: Path) -> None:
        exp_id = self.experiment(rec["slug"])
        prov = rec.get("provenance") or {}
        created = str(prov.get("created") or "")
        key = {"kagtools.run_id": rec["run_id"], "kagtools.created": created}
        found = self._find(exp_id, key)
        if found:  # already mirrored (the same run written once)
            _STATE.mlflow_ids[rec["run_id"]] = found[0].info.run_id
            return
        start = _ms(created) or int(time.time() * 1000)
        tags = {**key, "kagtools.kind": rec["kind"], "kagtools.model": rec["model"], "kagtools.slug": rec["slug"],
                "data_fingerprint": prov.get("data_fingerprint"), "folds_hash": rec.get("folds_hash"),
                "git_sha": prov.get("git_sha"), "mlflow.source.git.commit": prov.get("git_sha"),
                "kagtools.inputs": rec.get("inputs"), "kagtools.path": str(path.resolve())}
        run = self.client.create_run(exp_id, start_time=start, run_name=rec["run_id"],
                                     tags={k: str(v) for k, v in tags.items() if v is not None})
        mid = run.info.run_id
        self._log(mid, metrics=_run_metrics(rec, start), params=_run_params(rec))
        if (path / "run.json").is_file():
            self.client.log_artifact(mid, str(path / "run.json"))
        self.client.set_terminated(mid, end_time=start + int(1000 * float(rec.get("wall_seconds") or 0)))
        _STATE.mlflow_ids[rec["run_id"]] = mid
        _STATE.logged += 1

    def artifacts(self, run_id: str, paths: list[Path]) -> None:
        mid = _STATE.mlflow_ids.get(run_id)
        if mid is None:
            return
        for p in paths:
            self.client.log_artifact(mid, str(p), artifact_path="reports")

    def trials(self, slug: str, study: str, trials: list[dict[str, Any]]) -> None:
        exp_id = self.experiment(slug)
        done = {r.data.tags.get("kagtools.trial") for r in self._find(exp_id, {"kagtools.study": study})}
        for t in trials:
            if str(t["number"]) in done:
                continue
            start = _ms(t.get("start")) or int(time.time() * 1000)
            tags = {"kagtools.kind": "trial", "kagtools.study": study, "kagtools.trial": str(t["number"]),
                    "kagtools.slug": slug, "kagtools.state": str(t.get("state", ""))}
            run = self.client.create_run(exp_id, start_time=start, run_name=f"{study}-trial-{t['number']}",
                                         tags=tags)
            metrics = [("cv", t["value"], start, 0)] if t.get("value") is not None else []
            if t.get("cv_std") is not None:
                metrics.append(("cv_std", t["cv_std"], start, 0))
            metrics += [("fold_mean", v, start, int(s)) for s, v in sorted((t.get("intermediate") or {}).items())]
            self._log(run.info.run_id, metrics=metrics, params=_flat_params(t.get("params") or {}))
            self.client.set_terminated(run.info.run_id, status="FINISHED" if t.get("state") == "COMPLETE" else "KILLED",
                                       end_time=_ms(t.get("end")) or None)
            _STATE.logged += 1


def _ms(stamp: Any) -> int | None:
    """Milliseconds since the epoch of an ISO time (``run.json``'s ``created``), or of a datetime."""
    if not stamp:
        return None
    try:
        if hasattr(stamp, "timestamp"):
            return int(stamp.timestamp() * 1000)
        return int(time.mktime(time.strptime(str(stamp)[:19], "%Y-%m-%dT%H:%M:%S")) * 1000)
    except (ValueError, OverflowError):
        return None


def _clean_key(key: str) -> str:
    return re.sub(r"[^\w\-./ ]", "_", str(key))[:250]


def _flat_params(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in params.items():
        if isinstance(v, dict) and v:
            out += _flat_params(v, f"{prefix}{k}.")
        else:
            out.append((_clean_key(f"{prefix}{k}"), str(v)[:_PARAM_MAX]))
    return out


def _run_params(rec: dict[str, Any]) -> list[tuple[str, str]]:
    out = _flat_params(rec.get("params") or {})
    names = {k for k, _ in out}
    for key in ("model", "seed", "features", "n_features", "method", "threshold"):
        if rec.get(key) is not None and key not in names:
            out.append((key, str(rec[key])[:_PARAM_MAX]))
    if rec.get("runs") and "members" not in names:
        out.append(("members", ",".join(rec["runs"])[:_PARAM_MAX]))
    return out + [(_clean_key(f"weight.{member}"), f"{w:.6g}") for member, w in (rec.get("weights") or {}).items()]


def _run_metrics(rec: dict[str, Any], ts: int) -> list[tuple[str, float, int, int]]:
    scores = rec.get("scores") or {}
    out = [(_clean_key(k), v, ts, 0) for k, v in scores.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
    out += [("fold_score", f["score"], ts, i) for i, f in enumerate(scores.get("folds") or [])
            if f.get("score") is not None]
    out += [("repeat_score", s, ts, i) for i, s in enumerate(scores.get("repeats") or []) if s is not None]
    out += [("fold_seconds", s, ts, i) for i, s in enumerate(rec.get("fold_seconds") or []) if s is not None]
    if rec.get("wall_seconds") is not None:
        out.append(("wall_seconds", rec["wall_seconds"], ts, 0))
    return out


# ------------------------------------------------------------------------------------ TensorBoard
#: ``(label, repeat, fold)`` inside :func:`fold_scope`, else ``None``.
_FOLD: contextvars.ContextVar[tuple[str, int, int] | None] = contextvars.ContextVar("kagtools_fold", default=None)


@contextlib.contextmanager
def fold_scope(label: str, repeat: int, fold: int) -> Iterator[None]:
    """The fold being fitted (the engine enters it around each fold's fit), for TensorBoard's
    directory names: ``label`` is the model's registered name."""
    token = _FOLD.set((str(label), int(repeat), int(fold)))
    try:
        yield
    finally:
        _FOLD.reset(token)


def tensorboard_logdir(default_label: str) -> Path | None:
    """A new directory for one training (one fold): ``<root>/<model>/<command start>/fold-<r>-<f>``
    inside :func:`fold_scope` (``.../fit`` outside one); a second training of the same fold in
    one command (a tuning trial, a bag member) goes to ``<command start>-2``, and so on.
    ``None`` when TensorBoard logging is off."""
    root = _STATE.tb_root
    if root is None:
        return None
    scope = _FOLD.get()
    label, leaf = (scope[0], f"fold-{scope[1]}-{scope[2]}") if scope else (default_label, "fit")
    with _LOCK:
        for k in itertools.count(1):
            path = root / _clean_key(label) / (_STATE.stamp if k == 1 else f"{_STATE.stamp}-{k}") / leaf
            if path not in _STATE.tb_dirs and not path.exists():
                _STATE.tb_dirs.add(path)
                return path
