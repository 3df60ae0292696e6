"""Run artifacts: ``runs/<slug>/<run_id>/`` with ``oof.parquet``, ``test.parquet``, ``run.json``.

``oof.parquet`` holds ``id, repeat, fold`` and the prediction columns, one row per training
row and repeat; ``test.parquet`` holds ``id`` and the prediction columns averaged over every
fold model. Prediction columns are ``pred`` for one score per row (binary probability of the
positive class, regression value) or ``pred_<class>`` / ``pred_<target>`` for several.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kagtools.errors import KagtoolsError
from kagtools.io import atomic_dir, read_json, write_json
from kagtools.spec import CompetitionSpec

__all__ = [
    "Run",
    "pred_columns",
    "write_run",
    "load_run",
    "list_runs",
    "make_run_id",
    "git_sha",
    "versions",
    "run_root",
]


def run_root(workdir: Path, slug: str) -> Path:
    return Path(workdir) / "runs" / slug


def pred_columns(spec: CompetitionSpec, classes: list | None = None) -> list[str]:
    """The prediction columns a run of this competition records."""
    if spec.task == "multiclass":
        return [f"pred_{c}" for c in classes]
    if len(spec.target_cols) > 1:
        return [f"pred_{t}" for t in spec.target_cols]
    return ["pred"]


@dataclass
class Run:
    """A finished run on disk; predictions load lazily."""

    path: Path
    meta: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.meta["run_id"]

    @property
    def pred_cols(self) -> list[str]:
        return self.meta["pred_cols"]

    @cached_property
    def oof(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "oof.parquet")

    @cached_property
    def test(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "test.parquet")

    @property
    def score(self) -> float:
        """The score runs are ranked by: the nested score where a blend has one, else CV mean."""
        s = self.meta["scores"]
        return s.get("nested", s["cv"])

    def oof_matrix(self, repeat: int, ids: pd.Series) -> np.ndarray:
        """OOF predictions of one repeat, in the order of ``ids`` (shape n x n_pred_cols); NaN
        for rows never validated (the first block of time-ordered folds)."""
        o = self.oof[self.oof["repeat"] == repeat].set_index("id")
        return o.reindex(ids.values)[self.pred_cols].to_numpy(dtype=float)


def make_run_id(model: str, params: dict[str, Any], seed: int, folds_hash: str, extra: str = "") -> str:
    """A readable, deterministic id: the same model, params, seed and folds give the same id."""
    blob = json.dumps({"p": params, "s": seed, "f": folds_hash, "x": extra}, sort_keys=True, default=str)
    return f"{model.replace(':', '-')}-{hashlib.sha1(blob.encode()).hexdigest()[:8]}"


def write_run(root: Path, run_id: str, *, oof: pd.DataFrame, test: pd.DataFrame | None,
              meta: dict[str, Any], extra_files: dict[str, Any] | None = None) -> Run:
    """Write a run directory atomically: all of it appears at once, or none of it."""
    for name, df in (("oof", oof), ("test", test)):
        if df is None:
            continue
        cols = meta["pred_cols"]
        if df[cols].isna().any().any():
            bad = df.loc[df[cols].isna().any(axis=1), "id"].iloc[0]
            raise KagtoolsError(f"run {run_id}: {name} predictions contain NaN (first at id {bad!r})")
    meta = {"run_id": run_id, **meta}
    with atomic_dir(root / run_id) as tmp:
        oof.to_parquet(tmp / "oof.parquet", index=False)
        if test is not None:
            test.to_parquet(tmp / "test.parquet", index=False)
        for name, writer in (extra_files or {}).items():
            writer(tmp / name)
        write_json(tmp / "run.json", meta)
    return Run(path=root / run_id, meta=meta)


def load_run(root: Path, run_id: str) -> Run:
    path = root / run_id
    if not (path / "run.json").is_file():
        known = ", ".join(r.run_id for r in list_runs(root)) or "none"
        raise KagtoolsError(f"no run '{run_id}' under {root} (runs: {known})")
    return Run(path=path, meta=read_json(path / "run.json"))


def list_runs(root: Path, folds_hash: str | None = None) -> list[Run]:
    """Every finished run under ``root`` (optionally only those made with ``folds_hash``)."""
    runs = []
    if not root.is_dir():
        return runs
    for p in sorted(root.iterdir()):
        if p.name.startswith(".") or not (p / "run.json").is_file():
            continue
        run = Run(path=p, meta=read_json(p / "run.json"))
        if folds_hash is None or run.meta.get("folds_hash") == folds_hash:
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
    import sys

    out = {"python": platform.python_version()}
    for mod in ("kagtools", "numpy", "pandas", "sklearn", "lightgbm", "torch", "timm", "transformers"):
        if mod in sys.modules:
            out[mod] = getattr(sys.modules[mod], "__version__", "?")
    out["host_cpus"] = str(os.cpu_count())
    return out
