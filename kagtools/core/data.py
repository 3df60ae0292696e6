"""Reading competition files with one clear error for each kind of bad input."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kagtools.core.environment import resolve_data_dir
from kagtools.core.spec import CompetitionSpec
from kagtools.errors import KagtoolsError

__all__ = ["CompetitionData", "read_csv", "load_competition", "require_columns"]


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
    """The three tables of a tabular competition and where they came from."""

    train: pd.DataFrame
    test: pd.DataFrame | None
    sample_submission: pd.DataFrame | None
    data_dir: Path


def files_hash(data_dir: Path, names) -> str:
    """A hash of the content of the named files of ``data_dir`` (those that exist), so that any
    changed value in train.csv or test.csv tells a reused run from a stale one. Files that the
    tables only point to (images) are not read."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(set(names)):
        path = Path(data_dir) / name
        if path.is_file():
            h.update(name.encode() + b"\0")
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


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
    if "sample_submission" in present:
        sample_path = root / spec.files["sample_submission"]
        sample = read_csv(sample_path)
        require_columns(sample, [spec.id_col], str(sample_path))
        if test is not None:
            _check_same_ids(test[spec.id_col], sample[spec.id_col], test_path, sample_path)
    return CompetitionData(train=train, test=test, sample_submission=sample, data_dir=root)


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
