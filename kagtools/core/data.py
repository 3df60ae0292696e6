"""Reading competition files with one clear error for each kind of bad input."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kagtools.core.environment import resolve_data_dir
from kagtools.core.spec import CompetitionSpec
from kagtools.errors import KagtoolsError

__all__ = ["CompetitionData", "file_hash", "plain", "check_targets", "read_csv", "load_competition", "require_columns"]


def read_csv(path: str | os.PathLike, **kwargs) -> pd.DataFrame:
    """``pandas.read_csv`` that names the file in any error: missing, empty or malformed."""
    path = Path(path)
    if not path.is_file():
        raise KagtoolsError(f"missing file: {path}")
    try:
        df = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise KagtoolsError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KagtoolsError(f"{path}: malformed CSV ({first})") from None
    if df.columns.empty:
        raise KagtoolsError(f"{path}: the file has no columns")
    return df


def require_columns(df: pd.DataFrame, columns, where: str) -> None:
    """Raise naming the first missing column and the columns that are there."""
    for col in columns:
        if col not in df.columns:
            have = ", ".join(map(str, df.columns[:20]))
            raise KagtoolsError(f"{where}: missing column '{col}' (columns: {have})")


@dataclass
class CompetitionData:
    """The three tables of a tabular competition and where they came from.

    ``fingerprints`` maps each file read (by its name in the data folder) to a hash of its
    bytes: any changed value in train.csv, test.csv or the sample tells a current run from a
    stale one. Files that the tables only point to (images) are not read."""

    train: pd.DataFrame
    test: pd.DataFrame | None
    sample_submission: pd.DataFrame | None
    data_dir: Path
    fingerprints: dict[str, str] = field(default_factory=dict)


def plain(value):
    """A numpy scalar as the Python value it holds, for messages (``1``, not ``np.int64(1)``)."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value


def file_hash(path: Path) -> str:
    """A hash of the bytes of ``path``."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:16]


def load_competition(spec: CompetitionSpec, data_dir: str | os.PathLike | None = None) -> CompetitionData:
    """Read train, test and sample submission as the spec names them, and check they agree.

    Checks: the id and target columns exist, targets have no NaN, ids are unique, and the
    sample submission has the same ids as test.csv.
    """
    root = resolve_data_dir(spec.slug, data_dir, recorded=spec.data_path)
    train_path = root / spec.files.get("train", "train.csv")
    train = read_csv(train_path)
    if spec.options.get("train_ids") == "row_number" and spec.id_col not in train.columns:
        # Some competitions (MovieLens here) give ids to test rows only: number the train rows.
        train = pd.concat([pd.Series(range(len(train)), name=spec.id_col), train], axis=1)
    require_columns(train, [spec.id_col, *spec.target_cols], str(train_path))
    for col in spec.target_cols:
        bad = train.index[train[col].isna()]
        if len(bad):
            raise KagtoolsError(f"{train_path}: target column '{col}' has {len(bad)} missing value(s) "
                                f"(first at row {int(bad[0]) + 2} of the file)")
    _check_unique_ids(train, spec.id_col, train_path)
    check_targets(train, spec, train_path)
    fingerprints = {spec.files.get("train", "train.csv"): file_hash(train_path)}
    test = sample = None
    # Files named in options.optional_files may be absent (a data mirror without a test set).
    present = {k for k in spec.files if k not in spec.options.get("optional_files", ())
               or (root / spec.files[k]).is_file()}
    if "test" in present:
        test_path = root / spec.files["test"]
        test = read_csv(test_path)
        numbered = "row_number" in (spec.options.get("test_ids"), spec.options.get("train_ids"))
        if numbered and spec.id_col not in test.columns:
            # Test rows without an id column are numbered as Kaggle does (ImageId starts at 1).
            start = int(spec.options.get("test_id_start", 1))
            test = pd.concat([pd.Series(range(start, start + len(test)), name=spec.id_col), test], axis=1)
        require_columns(test, [spec.id_col], str(test_path))
        _check_unique_ids(test, spec.id_col, test_path)
        fingerprints[spec.files["test"]] = file_hash(test_path)
    if "sample_submission" in present:
        sample_path = root / spec.files["sample_submission"]
        sample = read_csv(sample_path)
        require_columns(sample, [spec.id_col], str(sample_path))
        if test is not None:
            _check_same_ids(test[spec.id_col], sample[spec.id_col], test_path, sample_path)
        _check_sample_columns(spec, sample, sample_path, train)
        fingerprints[spec.files["sample_submission"]] = file_hash(sample_path)
    return CompetitionData(train=train, test=test, sample_submission=sample, data_dir=root,
                           fingerprints=fingerprints)


def check_targets(train: pd.DataFrame, spec: CompetitionSpec, path: Path) -> None:
    """Refuse targets the spec's task cannot learn from, naming the column, value and row:
    fewer rows than folds, one value only, a binary target with other than two values, a
    classification target with fractional labels or a class too rare to be in every training
    fold's (stratified) split, a regression target that is not numeric or not finite."""
    n_splits = spec.cv.n_splits
    if len(train) < n_splits:
        raise KagtoolsError(f"{path}: {len(train)} training row(s), fewer than cv.n_splits = {n_splits}; "
                            f"kagtools needs at least {n_splits} rows (or fewer folds in the spec's [cv])")
    for col in spec.target_cols:
        y = train[col]
        if spec.task == "multitarget":
            continue
        values = pd.unique(y)
        if len(values) == 1:
            raise KagtoolsError(f"{path}: target column '{col}' has one value ({plain(values[0])!r}) in every row: "
                                f"there is nothing to learn (a constant submission scores the same)")
        if spec.task == "regression":
            numeric = pd.to_numeric(y, errors="coerce")
            bad = y.index[numeric.isna() | ~np.isfinite(numeric.fillna(0).to_numpy(dtype=float))]
            if len(bad):
                raise KagtoolsError(f"{path}: target column '{col}' of a regression task has the value "
                                    f"{plain(y[bad[0]])!r} at row {int(bad[0]) + 2} of the file (not a finite number)")
            continue
        if pd.api.types.is_float_dtype(y):
            frac = y.index[y.to_numpy() != np.round(y.to_numpy())]
            if len(frac):
                raise KagtoolsError(f"{path}: target column '{col}' has the value {plain(y[frac[0]])!r} at row "
                                    f"{int(frac[0]) + 2} of the file, but the task is {spec.task} (whole class "
                                    f"labels only); fix the label, or make the task regression in the spec")
        counts = y.value_counts()
        if spec.task == "binary" and len(counts) == 2 and counts.iloc[-1] < 2:
            raise KagtoolsError(f"{path}: target column '{col}' has a single row of class {plain(counts.index[-1])!r}: "
                                f"the fold that validates it trains on one class only; a binary model needs at "
                                f"least 2 rows of each class")
        rare = counts[counts < n_splits]
        if len(rare) and spec.cv.stratify:
            print(f"warning: {path.name}: class {plain(rare.index[0])!r} of '{col}' has {int(rare.iloc[0])} row(s), fewer "
                  f"than the {n_splits} folds: some validation folds lack it, and where no training row has it the "
                  f"model gives it probability 0; merge rare classes or use fewer folds if that matters", flush=True)
        if spec.task == "binary" and len(values) > 2:
            odd = counts.index[-1]
            row = int(y.index[y == odd][0]) + 2
            raise KagtoolsError(f"{path}: target column '{col}' has {len(values)} values "
                                f"({', '.join(repr(plain(v)) for v in sorted(counts.index, key=str)[:6])}) but the task is "
                                f"binary; the rarest, {plain(odd)!r}, is first at row {row} of the file: fix it, or make the "
                                f"task multiclass in the spec")


def _check_sample_columns(spec: CompetitionSpec, sample: pd.DataFrame, path: Path, train: pd.DataFrame) -> None:
    """The sample's prediction columns must be what the spec predicts: one per target (or, for
    multiclass probabilities, one per class); an extra column would have nothing to fill it."""
    values = [c for c in sample.columns if c != spec.id_col]
    if spec.task == "multiclass" and spec.submission_kind == "probabilities":
        classes = {str(c) for c in pd.unique(train[spec.target])}
        extra = [c for c in values if str(c) not in classes]
        what = f"one column per class of '{spec.target}'"
    else:
        want = len(spec.target_cols)
        extra = values[want:]
        what = f"{want} prediction column(s)"
    if extra:
        raise KagtoolsError(f"{path}: column '{extra[0]}' is not a prediction of this competition (the spec "
                            f"predicts {what}: {', '.join(map(str, values[:len(values) - len(extra)])) or 'none'}); "
                            f"remove the column from the sample, or fix the spec's target_cols")
    if not values:
        raise KagtoolsError(f"{path}: no prediction column beside the id '{spec.id_col}'")


def _check_unique_ids(df: pd.DataFrame, id_col: str, path: Path) -> None:
    dup = df[id_col][df[id_col].duplicated()]
    if len(dup):
        raise KagtoolsError(f"{path}: id column '{id_col}' has duplicates (e.g. {dup.iloc[0]!r})")


def _check_same_ids(test_ids: pd.Series, sample_ids: pd.Series, test_path: Path, sample_path: Path) -> None:
    if len(test_ids) != len(sample_ids):
        raise KagtoolsError(f"{sample_path}: {len(sample_ids)} rows but {test_path} has {len(test_ids)}")
    missing = pd.Index(test_ids.astype(str)).difference(pd.Index(sample_ids.astype(str)))
    if len(missing):
        raise KagtoolsError(f"{sample_path}: id {missing[0]!r} of {test_path} is missing from the sample submission")
