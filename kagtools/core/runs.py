"""Run artifacts: ``runs/<slug>/<run_id>/`` with ``oof.parquet``, ``test.parquet``, ``run.json``.

``oof.parquet`` holds ``id, repeat, fold`` and the prediction columns, one row per training
row and repeat; ``test.parquet`` holds ``id`` and the prediction columns averaged over every
fold model. Prediction columns are ``pred`` for one score per row (binary probability of the
positive class, regression value) or ``pred_<class>`` / ``pred_<target>`` for several.

``run.json`` is a :class:`RunRecord`, the one type that writes and reads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kagtools.core.io import atomic_dir, read_json, strict_json, wait_for, write_json
from kagtools.core.spec import CompetitionSpec, check_name
from kagtools.errors import KagtoolsError

__all__ = ["Run", "RunRecord", "RUN_KINDS", "pred_columns", "provenance", "inputs_hash", "write_run", "load_run",
           "read_record", "list_runs", "make_run_id", "git_sha", "versions", "run_root"]

RUN_KINDS = ("cv", "bag", "boost", "blend")


def run_root(workdir: Path, slug: str) -> Path:
    return Path(workdir) / "runs" / check_name(slug, "competition slug")


def pred_columns(spec: CompetitionSpec, classes: list | None = None) -> list[str]:
    """The prediction columns a run of this competition records."""
    if spec.task == "multiclass":
        return [f"pred_{c}" for c in classes]
    if len(spec.target_cols) > 1:
        return [f"pred_{t}" for t in spec.target_cols]
    return ["pred"]


@dataclass
class RunRecord:
    """What ``run.json`` holds: what was run, on what, how it scored, and its provenance.

    ``scores`` is :func:`kagtools.core.engine.score_oof`'s dict (``cv``, ``cv_std``, per fold
    and repeat; blends add ``nested`` and ``in_sample``). ``runs`` are the runs a blend or a
    boost was made from; ``details`` holds what one kind alone records (a boost's steps, a
    bag's seeds, a tuning study, a kernel import's source).
    """

    run_id: str
    slug: str
    kind: str
    model: str
    task: str
    pred_cols: list[str]
    scores: dict[str, Any]
    folds_hash: str | None
    cv_scheme: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    classes: list | None = None
    features: str | None = None
    n_features: int | None = None
    columns: list[str] = field(default_factory=list)  # the training set's columns (before fold features)
    inputs: str | None = None  # hash of everything the predictions depend on (workflow.context.run_model)
    method: str | None = None
    runs: list[str] = field(default_factory=list)
    weights: dict[str, float] | None = None
    threshold: float | None = None
    fold_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in RUN_KINDS:
            raise KagtoolsError(f"run {self.run_id}: kind '{self.kind}' is not one of {', '.join(RUN_KINDS)}")

    def to_json(self) -> dict[str, Any]:
        """A strict-JSON dict: NaN and infinities become ``null``."""
        return strict_json(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any], *, where: str = "run.json") -> RunRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise KagtoolsError(f"{where}: not a run record of this kagtools (no '{missing[0]}'); rerun it")
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def score(self) -> float:
        """The score runs are ranked by: the nested score where a blend has one, else CV mean."""
        return self.scores.get("nested", self.scores["cv"])


def provenance(*, data_fingerprint: str | None = None) -> dict[str, Any]:
    """Where a run came from: when, on which code and library versions, from which data."""
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "data_fingerprint": data_fingerprint,
            "versions": versions(), "git_sha": git_sha()}


@dataclass
class Run:
    """A finished run on disk: its record, with predictions loaded lazily."""

    path: Path
    record: RunRecord

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def pred_cols(self) -> list[str]:
        return self.record.pred_cols

    @property
    def score(self) -> float:
        return self.record.score

    @cached_property
    def oof(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "oof.parquet")

    @cached_property
    def test(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "test.parquet")

    @property
    def has_test(self) -> bool:
        return (self.path / "test.parquet").is_file()

    def oof_matrix(self, repeat: int, ids: pd.Series) -> np.ndarray:
        """OOF predictions of one repeat, in the order of ``ids`` (shape n x n_pred_cols); NaN
        for rows never validated (the first block of time-ordered folds)."""
        o = self.oof[self.oof["repeat"] == repeat].set_index("id")
        return o.reindex(ids.values)[self.pred_cols].to_numpy(dtype=float)


def make_run_id(model: str, params: dict[str, Any], seed: int, folds_hash: str, extra: str = "") -> str:
    """A readable, deterministic id: the same model, params, seed and folds give the same id."""
    blob = json.dumps({"p": params, "s": seed, "f": folds_hash, "x": extra}, sort_keys=True, default=str)
    return f"{model.replace(':', '-')}-{hashlib.sha1(blob.encode()).hexdigest()[:8]}"


def inputs_hash(inputs: dict[str, Any]) -> str:
    """The hash a run records of everything its predictions depend on (``RunRecord.inputs``)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_run(root: Path, record: RunRecord, *, oof: pd.DataFrame, test: pd.DataFrame | None,
              extra_files: dict[str, Any] | None = None) -> Run:
    """Write a run directory atomically: all of it appears at once, or none of it."""
    cols = record.pred_cols
    for name, df in (("oof", oof), ("test", test)):
        if df is not None and df[cols].isna().any().any():
            bad = df.loc[df[cols].isna().any(axis=1), "id"].iloc[0]
            raise KagtoolsError(f"run {record.run_id}: {name} predictions contain NaN (first at id {bad!r})")
    with atomic_dir(root / record.run_id) as tmp:
        oof.to_parquet(tmp / "oof.parquet", index=False)
        if test is not None:
            test.to_parquet(tmp / "test.parquet", index=False)
        for name, writer in (extra_files or {}).items():
            writer(tmp / name)
        write_json(tmp / "run.json", record.to_json())
    run = Run(path=root / record.run_id, record=record)
    from kagtools.core.tracking import log_run  # the MLflow mirror of runs/ (queued, never raises)

    log_run(run)
    return run


def read_record(path: Path) -> RunRecord:
    """The :class:`RunRecord` in ``path/run.json``."""
    return RunRecord.from_json(read_json(path / "run.json"), where=str(path / "run.json"))


def load_run(root: Path, run_id: str) -> Run:
    path = root / check_name(run_id, "run id")
    if not (wait_for(path) and (path / "run.json").is_file()):
        known = ", ".join(r.run_id for r in list_runs(root)) or "none"
        raise KagtoolsError(f"no run '{run_id}' under {root} (runs: {known})")
    return Run(path=path, record=read_record(path))


def list_runs(root: Path, folds_hash: str | None = None) -> list[Run]:
    """Every finished run under ``root`` (optionally only those made with ``folds_hash``); a run
    written by an older kagtools, whose record does not read, is left out."""
    runs = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if p.name.startswith(".") or not (p / "run.json").is_file():
            continue
        try:
            run = Run(path=p, record=read_record(p))
        except (KagtoolsError, TypeError):
            continue
        if folds_hash is None or run.record.folds_hash == folds_hash:
            runs.append(run)
    return runs


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    """Versions of what a run depended on (modules already imported only: no import cost)."""
    loaded = [m for m in ("kagtools", "numpy", "pandas", "sklearn", "lightgbm", "torch", "timm", "transformers")
              if m in sys.modules]
    return {"python": platform.python_version(), **{m: getattr(sys.modules[m], "__version__", "?") for m in loaded},
            "host_cpus": str(os.cpu_count())}
