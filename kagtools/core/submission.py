"""Submissions: rendered from a run's test predictions, validated against the sample, written
atomically. ``submissions/<slug>/submission.csv`` is always the newest; earlier ones stay beside
it named with their time and run id, each with a JSON sidecar."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kagtools.core.data import read_csv
from kagtools.core.io import write_csv, write_json
from kagtools.core.metrics import to_labels
from kagtools.core.runs import Run, git_sha
from kagtools.core.spec import CompetitionSpec
from kagtools.errors import KagtoolsError

__all__ = ["render_submission", "validate_submission", "validate_submission_file", "write_submission"]


def render_submission(spec: CompetitionSpec, run: Run, sample: pd.DataFrame) -> pd.DataFrame:
    """Turn a run's test predictions into the sample submission's shape and dtypes."""
    test = run.test
    preds = test[run.pred_cols].to_numpy(dtype=float)
    classes = run.record.classes
    out = pd.DataFrame({spec.id_col: test["id"].to_numpy()})
    value_cols = [c for c in sample.columns if c != spec.id_col]
    if spec.task.has_classes and spec.submission_kind == "labels":
        threshold = run.record.threshold if run.record.threshold is not None else 0.5
        out[value_cols[0]] = np.asarray(classes, dtype=object)[to_labels(preds, threshold=threshold)]
    elif spec.task == "multiclass":  # one probability column per class
        for i, c in enumerate(classes):
            out[_class_column(c, value_cols)] = preds[:, i]
    else:
        for j, col in enumerate(value_cols):
            out[col] = preds[:, j]
    for col, lohi in (spec.options.get("clip") or {}).items():
        if col in out:
            out[col] = out[col].clip(*lohi)
    out = _align_ids(out, sample, spec.id_col)
    return _cast_like(out[list(sample.columns)], _declared(sample, spec))


def _class_column(cls, value_cols: list[str]) -> str:
    for col in value_cols:
        if str(col) == str(cls):
            return col
    raise KagtoolsError(f"sample submission has no column for class {cls!r} (columns: {', '.join(value_cols)})")


def _align_ids(out: pd.DataFrame, sample: pd.DataFrame, id_col: str) -> pd.DataFrame:
    key = out[id_col].astype(str)
    order = pd.Index(key).get_indexer(sample[id_col].astype(str))
    if (order < 0).any():
        missing = sample[id_col].iloc[int(np.flatnonzero(order < 0)[0])]
        raise KagtoolsError(f"run has no test prediction for sample submission id {missing!r}")
    out = out.iloc[order].reset_index(drop=True)
    out[id_col] = sample[id_col].to_numpy()
    return out


def _declared(sample: pd.DataFrame, spec: CompetitionSpec) -> pd.DataFrame:
    """The sample with the spec's declared dtypes: a sample of all-zero scores reads as int."""
    sample = sample.copy()
    for col, dtype in spec.submission_dtypes.items():
        if col in sample.columns and dtype.startswith("float"):
            sample[col] = sample[col].astype(dtype)
        elif col in sample.columns and dtype in ("str", "bool") and col != spec.id_col:
            sample[col] = sample[col].astype(object)  # placeholders in the sample; class names in the file
    return sample


def _cast_like(out: pd.DataFrame, sample: pd.DataFrame) -> pd.DataFrame:
    out = out.copy()
    for col in sample.columns:
        dtype = sample[col].dtype
        if pd.api.types.is_integer_dtype(dtype):
            vals = pd.to_numeric(out[col], errors="coerce")
            if vals.isna().any() or (vals != np.round(vals)).any():
                continue  # left as is: validation names the problem
            out[col] = vals.astype(dtype)
        elif pd.api.types.is_float_dtype(dtype):
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(dtype)
    return out


def validate_submission(sub: pd.DataFrame, sample: pd.DataFrame, *, id_col: str,
                        where: str = "submission") -> None:
    """Raise naming the first problem: columns, order, row count, ids, dtypes or NaN."""
    if list(sub.columns) != list(sample.columns):
        raise KagtoolsError(f"{where}: columns {list(sub.columns)} do not match the sample submission's "
                            f"{list(sample.columns)}")
    if len(sub) != len(sample):
        raise KagtoolsError(f"{where}: {len(sub)} rows, the sample submission has {len(sample)}")
    nan = sub.isna().any()
    if nan.any():
        col = nan.idxmax()
        row = int(np.flatnonzero(sub[col].isna().to_numpy())[0])
        raise KagtoolsError(f"{where}: column '{col}' has NaN (first at id {sub[id_col].iloc[row]!r})")
    dup = sub[id_col][sub[id_col].duplicated()]
    if len(dup):
        raise KagtoolsError(f"{where}: id {dup.iloc[0]!r} appears more than once")
    sub_ids, sample_ids = set(sub[id_col].astype(str)), set(sample[id_col].astype(str))
    if sub_ids != sample_ids:
        extra, missing = sub_ids - sample_ids, sample_ids - sub_ids
        what = f"id {min(extra)!r} is not in the sample submission" if extra else f"id {min(missing)!r} is missing"
        raise KagtoolsError(f"{where}: {what}")
    for col in sample.columns:
        want, have = sample[col].dtype, sub[col].dtype
        if pd.api.types.is_integer_dtype(want) and not pd.api.types.is_integer_dtype(have):
            raise KagtoolsError(f"{where}: column '{col}' must be integers like the sample submission, got {have}")
        if pd.api.types.is_numeric_dtype(want) and not pd.api.types.is_numeric_dtype(have):
            raise KagtoolsError(f"{where}: column '{col}' must be numeric like the sample submission, got {have}")
        if pd.api.types.is_numeric_dtype(have) and not np.isfinite(sub[col].to_numpy(dtype=float)).all():
            raise KagtoolsError(f"{where}: column '{col}' has infinite values")


def validate_submission_file(spec: CompetitionSpec, path: str | Path, sample: pd.DataFrame) -> pd.DataFrame:
    """Read a submission CSV made anywhere (by hand, in a notebook) and validate it against the
    sample submission exactly as :func:`write_submission` validates kagtools' own; returns it."""
    sub = read_csv(path)
    validate_submission(sub, _declared(sample, spec), id_col=spec.id_col, where=str(path))
    return sub


def write_submission(spec: CompetitionSpec, sub: pd.DataFrame, sample: pd.DataFrame, *, workdir: Path,
                     run: Run | None = None, info: dict[str, Any] | None = None) -> Path:
    """Validate, then write ``submission.csv`` plus a timestamped copy and JSON sidecars."""
    validate_submission(sub, _declared(sample, spec), id_col=spec.id_col)
    out_dir = Path(workdir) / "submissions" / spec.slug
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_id = run.run_id if run is not None else "manual"
    sidecar = {
        "slug": spec.slug,
        "created": stamp,
        "run_id": run_id,
        "runs_used": (run.record.runs if run is not None else None) or [run_id],
        "metric": spec.metric,
        "cv": run.record.scores["cv"] if run is not None else None,
        "cv_std": run.record.scores.get("cv_std") if run is not None else None,
        "cv_scheme": run.record.cv_scheme if run is not None else None,
        "git_sha": git_sha(),
        "rows": len(sub),
        **(info or {}),
    }
    for path in (out_dir / f"submission-{stamp}-{run_id}.csv", out_dir / "submission.csv"):
        write_csv(path, sub)
        write_json(path.with_suffix(".json"), sidecar)
    return out_dir / "submission.csv"
