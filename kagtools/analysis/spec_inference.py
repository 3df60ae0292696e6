"""Spec inference: a competition spec from its files alone (``kagtools init``).

Kaggle's conventions do most of the work: the sample submission is the CSV whose columns are
the id plus the target(s); its first column is the id; its other columns name the targets (or,
one per class, the classes of one target). Each decision is recorded with its reason, and what
the files cannot settle is a :class:`~kagtools.errors.KagtoolsError` naming the flag that
answers it, never a silent guess.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kagtools.core.data import plain, read_csv
from kagtools.core.metrics import DEFAULT_METRICS, get_metric
from kagtools.core.spec import TASKS, parse_spec, spec_to_toml
from kagtools.errors import KagtoolsError

__all__ = ["Inference", "infer_spec", "find_files", "infer_task", "scheme_table", "write_inferred_spec"]

MAX_CLASSES = 30  # an integer target with more distinct values than this is a regression


@dataclass
class Inference:
    """An inferred spec (TOML-shaped, as :func:`kagtools.core.spec.parse_spec` reads it) and why."""

    spec: dict[str, Any]
    reasons: list[str] = field(default_factory=list)
    advice: Any = None  # the split advisor's :class:`~kagtools.analysis.split_advisor.Advice`

    def say(self, text: str) -> None:
        self.reasons.append(text)


def _csvs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.suffix.lower() == ".csv" and p.is_file())


def _pick(root: Path, given: str | None, prefix: str, flag: str) -> Path:
    if given:
        path = root / given
        if not path.is_file():
            raise KagtoolsError(f"{flag}: no file {path}")
        return path
    exact = root / f"{prefix}.csv"
    if exact.is_file():
        return exact
    found = [p for p in _csvs(root) if p.name.lower().startswith(prefix)]
    if len(found) == 1:
        return found[0]
    names = ", ".join(p.name for p in _csvs(root)) or "no CSV files"
    raise KagtoolsError(f"{root}: cannot tell which CSV is the {prefix} table ({names}); pass {flag} FILE")


def find_files(root: Path, *, train: str | None = None, test: str | None = None,
               sample: str | None = None) -> dict[str, Path]:
    """Train, test and sample submission paths in ``root``.

    The sample submission is named ``*sample*`` or ``*submission*`` when exactly one CSV is;
    otherwise it is the CSV with as many rows as test.csv whose columns are not test.csv's.
    """
    root = Path(root)
    if not root.is_dir():
        raise KagtoolsError(f"data directory {root} does not exist; pass --data-dir DIR")
    files = {"train": _pick(root, train, "train", "--train"), "test": _pick(root, test, "test", "--test")}
    if sample:
        files["sample_submission"] = _pick(root, sample, "sample", "--sample")
        return files
    others = [p for p in _csvs(root) if p not in files.values()]
    named = [p for p in others if "sample" in p.name.lower() or "submission" in p.name.lower()]
    if len(named) == 1:
        files["sample_submission"] = named[0]
        return files
    test_cols = set(pd.read_csv(files["test"], nrows=0).columns)
    n_test = _count_rows(files["test"])
    fits = [p for p in (named or others)
            if _count_rows(p) == n_test and not set(pd.read_csv(p, nrows=0).columns[1:]) & test_cols]
    if len(fits) == 1:
        files["sample_submission"] = fits[0]
        return files
    names = ", ".join(p.name for p in (fits or others)) or "none"
    raise KagtoolsError(f"{root}: cannot tell which CSV is the sample submission (candidates: {names}); "
                        f"pass --sample FILE")


#: The fewest training rows ``init`` accepts: two folds of two rows.
MIN_TRAIN_ROWS = 4


def _count_rows(path: Path) -> int:
    with open(path, "rb") as fh:
        return max(sum(1 for _ in fh) - 1, 0)


def infer_task(y: pd.Series | pd.DataFrame) -> tuple[str, str]:
    """The task a target column (or columns) implies, with the reason."""
    if isinstance(y, pd.DataFrame):
        if all(set(pd.unique(y[c].dropna())) <= {0, 1} for c in y.columns):
            return "multilabel", f"{y.shape[1]} target columns, all 0/1"
        return "multitarget", f"{y.shape[1]} numeric target columns"
    values = y.dropna()
    nunique = values.nunique()
    counts = values.value_counts()
    if nunique > 2 and set(counts.index[:2]) == {0, 1} and counts.iloc[2:].sum() <= max(2, 0.01 * len(values)):
        odd = counts.index[2]
        row = int(y.index[y == odd][0]) + 2
        raise KagtoolsError(f"target column '{y.name}' is 0/1 but for {int(counts.iloc[2:].sum())} row(s), e.g. "
                            f"{plain(odd)!r} at row {row} of the file: fix those labels, or pass --task "
                            f"regression (or multiclass) if they are meant")
    if nunique == 2:
        return "binary", f"'{y.name}' has 2 distinct values ({', '.join(map(str, sorted(values.unique())[:2]))})"
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "multiclass", f"'{y.name}' is text/categorical with {nunique} classes"
    integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
    if integral and nunique <= MAX_CLASSES:
        return "multiclass", f"'{y.name}' has {nunique} distinct integer values"
    why = "non-integer values" if not integral else f"{nunique} distinct integers (> {MAX_CLASSES})"
    return "regression", f"'{y.name}' is numeric with {why}"


def _dtype_name(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if pd.api.types.is_integer_dtype(s):
        return "int64"
    if pd.api.types.is_float_dtype(s):
        return "float64"
    return "str"


def infer_spec(slug: str, data_dir: str | os.PathLike, *, metric: str | None = None,
               id_col: str | None = None, targets: list[str] | None = None, task: str | None = None,
               kind: str | None = None, train_file: str | None = None, test_file: str | None = None,
               sample_file: str | None = None, advise: bool = True) -> Inference:
    """Infer a competition spec from the files in ``data_dir``; every choice has a reason.

    Keyword arguments answer what the files cannot settle (each is a ``kagtools init`` flag):
    ``id_col`` (--id), ``targets`` (--target), ``task`` (--task), ``kind`` (--submission:
    labels, probabilities or values), ``metric`` (--metric) and the file names.
    """
    files = find_files(Path(data_dir), train=train_file, test=test_file, sample=sample_file)
    inf = Inference(spec={})
    inf.say(f"files: train {files['train'].name}, test {files['test'].name}, "
            f"sample submission {files['sample_submission'].name}")
    train, test, sample = (read_csv(files[k]) for k in ("train", "test", "sample_submission"))
    where = {k: str(files[k]) for k in files}
    if len(train) < MIN_TRAIN_ROWS:
        raise KagtoolsError(f"{where['train']}: {len(train)} data row(s); cross-validation needs at least "
                            f"{MIN_TRAIN_ROWS} (2 folds of 2 rows)")
    if test.empty:
        raise KagtoolsError(f"{where['test']}: no data rows; there is nothing to predict")

    # The id: the sample's first column, as Kaggle lays it out.
    id_col = id_col or str(sample.columns[0])
    if id_col not in sample.columns:
        raise KagtoolsError(f"{where['sample_submission']}: --id '{id_col}' is not one of its columns "
                            f"({', '.join(map(str, sample.columns))})")
    inf.say(f"id: '{id_col}' (the sample submission's first column)")
    options: dict[str, Any] = {}
    _check_sample_ids(sample, test, id_col, where, options, inf)
    if id_col not in train.columns:
        options["train_ids"] = "row_number"
        inf.say(f"id: train.csv has no '{id_col}' column, so its rows are numbered")
    else:
        _check_unique(train, id_col, where["train"])

    # Targets: the sample's other columns, found in train.csv (or one train column whose
    # classes they are).
    value_cols = [str(c) for c in sample.columns if c != id_col]
    if not value_cols:
        raise KagtoolsError(f"{where['sample_submission']}: only the id column '{id_col}'; a sample submission "
                            f"names the prediction column(s) after the id")
    target_cols, class_cols = _find_targets(train, test, id_col, value_cols, targets, where, inf)
    for col in target_cols:
        _check_target(train, col, where["train"])
    y = train[target_cols[0]] if len(target_cols) == 1 else train[target_cols]
    if task is None:
        task, why = infer_task(y)
        if task == "multiclass" and not class_cols and pd.api.types.is_numeric_dtype(y) \
                and not pd.api.types.is_bool_dtype(y):
            # A few integer values, but the competition wants numbers: a count, a grade, years.
            if kind == "values":
                task, why = "regression", f"{why}, and --submission values asks for numbers"
            elif kind is None and _fractional(sample[value_cols]):
                task, why = "regression", f"{why}, but the sample submission holds fractional values, so they " \
                                          f"are predicted as numbers (pass --task multiclass for classes)"
        inf.say(f"task: {task} ({why})")
    elif task not in TASKS:
        raise KagtoolsError(f"--task '{task}' is not one of {', '.join(TASKS)}")

    # Submission: labels or probabilities, and the sample's dtypes.
    kind = kind or _submission_kind(task, sample, value_cols, class_cols, where, inf)
    if metric:
        inf.say(f"metric: {metric} (given)")
    else:
        metric = DEFAULT_METRICS.get((task, kind))
        if metric is None:
            raise KagtoolsError(f"no default metric for a {task} task with {kind} submissions; pass --metric NAME")
        inf.say(f"metric: {metric} (the default for {task} {kind}; pass --metric NAME for the competition's)")
    get_metric(metric)  # unknown names list the known ones

    # Features: every test column must be in train.csv.
    extra = [c for c in test.columns if c not in train.columns and c != id_col]
    if extra:
        raise KagtoolsError(f"{where['test']}: column(s) {', '.join(map(str, extra[:5]))} are not in "
                            f"{where['train']}; a model cannot learn from them")
    spec = {
        "slug": slug, "title": slug.replace("-", " ").title(), "task": task, "id_col": id_col,
        "target_cols": target_cols,
        "files": {k: files[k].name for k in ("train", "test", "sample_submission")},
        "metric": {"name": metric},
        "submission": {"kind": kind, "columns": [str(c) for c in sample.columns],
                       "dtypes": {str(c): _dtype_name(sample[c]) if c == id_col or kind == "labels" else "float64"
                                  for c in sample.columns}},
    }
    if kind == "labels" and len(target_cols) == 1 and len(value_cols) == 1:
        label = _dtype_name(train[target_cols[0]])
        if label in ("str", "bool") and _dtype_name(sample[value_cols[0]]) not in ("str", "bool"):
            spec["submission"]["dtypes"][value_cols[0]] = label
            inf.say(f"submission: '{value_cols[0]}' holds the class names of '{target_cols[0]}' (the sample's "
                    f"values are placeholders)")
    if advise:
        from kagtools.analysis.split_advisor import advise as advise_split

        frame = train if id_col in train.columns else train.assign(**{id_col: np.arange(len(train))})
        inf.advice = advice = advise_split(frame, test, id_col=id_col, target_cols=target_cols, task=task)
        spec["cv"] = scheme_table(advice.scheme)
        inf.reasons += [f"cv: {r}" for r in advice.reasons]
        most = max(2, len(train) // 2)  # every fold validates at least 2 rows
        if spec["cv"].get("n_splits", 5) > most:
            spec["cv"]["n_splits"] = most
            inf.say(f"cv: n_splits {most} (train.csv has only {len(train)} rows)")
    if options:
        spec["options"] = options
    parse_spec(spec, source=f"inferred spec for {slug}")  # what we write must load
    inf.spec = spec
    return inf


def scheme_table(scheme) -> dict[str, Any]:
    """A CV scheme as the spec's ``[cv]`` table: unset keys and unused bins left out."""
    table = {k: v for k, v in scheme.as_dict().items() if v is not None}
    if not scheme.stratify:
        table.pop("stratify_bins", None)
    return table


def _check_unique(df: pd.DataFrame, col: str, where: str) -> None:
    dup = df[col].duplicated(keep=False)
    if dup.any():
        rows = np.flatnonzero(dup.to_numpy())[:3] + 2
        raise KagtoolsError(f"{where}: id column '{col}' has {int(dup.sum())} duplicated rows "
                            f"(file rows {', '.join(map(str, rows))}); pass --id COLUMN if the id is another column")


def _check_sample_ids(sample: pd.DataFrame, test: pd.DataFrame, id_col: str, where: dict[str, str],
                      options: dict[str, Any], inf: Inference) -> None:
    _check_unique(sample, id_col, where["sample_submission"])
    if len(sample) != len(test):
        raise KagtoolsError(f"{where['sample_submission']}: {len(sample)} rows but {where['test']} has {len(test)}")
    ids = sample[id_col]
    if id_col in test.columns:
        _check_unique(test, id_col, where["test"])
        missing = ~test[id_col].astype(str).isin(set(ids.astype(str)))
        if missing.any():
            rows = np.flatnonzero(missing.to_numpy())[:3] + 2
            first = test[id_col][missing].tolist()[0]  # a Python value, not a numpy scalar
            raise KagtoolsError(f"{where['sample_submission']}: {int(missing.sum())} id(s) of {where['test']} are "
                                f"missing from it (test.csv rows {', '.join(map(str, rows))}, e.g. {first!r})")
        return
    # No id in test.csv: Kaggle then numbers the test rows (Digit Recognizer's ImageId from 1).
    if pd.api.types.is_integer_dtype(ids):
        for start in (1, 0):
            if np.array_equal(ids.to_numpy(), np.arange(start, start + len(ids))):
                options["test_ids"] = "row_number"
                options["test_id_start"] = start
                inf.say(f"id: test.csv has no '{id_col}'; the sample numbers its rows from {start}")
                return
    raise KagtoolsError(f"{where['test']}: no '{id_col}' column and the sample submission's ids are not row "
                        f"numbers; pass --id COLUMN naming test.csv's id column")


def _find_targets(train: pd.DataFrame, test: pd.DataFrame, id_col: str, value_cols: list[str],
                  given: list[str] | None, where: dict[str, str], inf: Inference) -> tuple[list[str], bool]:
    """Target columns of train.csv, and whether the sample's columns are one target's classes."""
    if given:
        missing = [t for t in given if t not in train.columns]
        if missing:
            raise KagtoolsError(f"{where['train']}: --target '{missing[0]}' is not a column")
        inf.say(f"targets: {', '.join(given)} (given)")
        return list(given), _are_classes(train[given[0]], value_cols) if len(given) == 1 else False
    lower = {str(c).lower(): str(c) for c in train.columns}
    matched = [lower.get(c.lower()) for c in value_cols]
    if all(matched):
        inf.say(f"targets: {', '.join(matched)} (the sample submission's columns, found in train.csv)")
        return matched, False
    candidates = [str(c) for c in train.columns if c not in test.columns and c != id_col]
    for col in candidates:
        if _are_classes(train[col], value_cols):
            inf.say(f"targets: '{col}', whose classes are the sample submission's columns "
                    f"({', '.join(value_cols[:4])}{', ...' if len(value_cols) > 4 else ''})")
            return [col], True
    if len(candidates) == 1 and len(value_cols) == 1:
        inf.say(f"targets: '{candidates[0]}' (the only train.csv column not in test.csv; "
                f"the sample calls it '{value_cols[0]}')")
        return candidates, False
    raise KagtoolsError(f"{where['sample_submission']}: its column(s) {', '.join(value_cols)} are not columns of "
                        f"{where['train']} (train-only columns: {', '.join(candidates) or 'none'}); "
                        f"pass --target COLUMN")


def _are_classes(y: pd.Series, value_cols: list[str]) -> bool:
    if len(value_cols) < 2:
        return False
    classes = {str(v) for v in y.dropna().unique()}
    classes |= {str(int(v)) for v in y.dropna().unique() if isinstance(v, float) and float(v).is_integer()}
    return set(value_cols) <= classes and len(value_cols) == y.nunique()


def _check_target(train: pd.DataFrame, col: str, where: str) -> None:
    y = train[col]
    bad = np.flatnonzero(y.isna().to_numpy())
    if len(bad):
        raise KagtoolsError(f"{where}: target column '{col}' has {len(bad)} missing value(s) "
                            f"(file rows {', '.join(str(r + 2) for r in bad[:3])})")
    n = len(y)
    if y.nunique() == 1:
        raise KagtoolsError(f"{where}: target column '{col}' has one value ({plain(y.iloc[0])!r}) in every row: there is "
                            f"nothing to learn (a constant submission scores the same); check --target")
    if n > 20 and y.nunique() == n:
        sequential = pd.api.types.is_integer_dtype(y) and np.ptp(y.to_numpy()) + 1 == n
        if sequential or not pd.api.types.is_numeric_dtype(y):
            raise KagtoolsError(f"{where}: target column '{col}' has a distinct value on every one of its {n} "
                                f"rows, like an id; pass --target COLUMN (and --id '{col}' if it is the id)")


def _fractional(values: pd.DataFrame) -> bool:
    """Whether the sample's prediction columns are numbers, some of them not whole."""
    return all(pd.api.types.is_numeric_dtype(values[c]) for c in values.columns) and \
        bool(np.any(np.mod(values.to_numpy(dtype=float), 1) != 0))


def _submission_kind(task: str, sample: pd.DataFrame, value_cols: list[str], class_cols: bool,
                     where: dict[str, str], inf: Inference) -> str:
    if task in ("regression", "multitarget"):
        return "values"
    if class_cols:
        inf.say(f"submission: probabilities, one column per class ({len(value_cols)} columns)")
        return "probabilities"
    if task == "multiclass":
        inf.say("submission: labels (one column for a multiclass target)")
        return "labels"
    if not all(pd.api.types.is_numeric_dtype(sample[c]) for c in value_cols):
        inf.say("submission: labels (the sample holds class names)")
        return "labels"
    values = sample[value_cols].to_numpy(dtype=float)
    if _fractional(sample[value_cols]):
        inf.say("submission: probabilities (the sample holds fractional values)")
        return "probabilities"
    if len(np.unique(values)) > 1:
        inf.say("submission: labels (the sample holds whole class values, several of them)")
        return "labels"
    raise KagtoolsError(f"{where['sample_submission']}: every value is {values.flat[0]:g}, so it cannot say "
                        f"whether Kaggle wants labels or probabilities; pass --submission labels|probabilities")


def write_inferred_spec(inf: Inference, path: str | os.PathLike) -> Path:
    """Write the inferred spec as TOML with its reasons as comments, atomically."""
    from kagtools.core.io import write_text

    header = "Written by `kagtools init` from the competition's files; edit freely.\n" + "\n".join(inf.reasons)
    return write_text(path, spec_to_toml(inf.spec, header=header))
