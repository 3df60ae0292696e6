"""Messy competition folders (issue 19): one generator for tests/test_messy_property.py and
benchmarks/messy.py.

``competitions()`` is a Hypothesis strategy of :class:`Case` (three CSVs as text plus how to run
them); :func:`run_case` writes a case into a fresh ``<parent>/data`` folder, runs ``kagtools init``
and ``kagtools submit`` in-process from ``<parent>/work`` (the cheapest model only, 2 folds) and
returns an :class:`Outcome`: a submission (checked against the sample), one clean error line, or
a traceback; plus whatever was written outside the work folder.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import strategies as st

__all__ = ["Case", "Outcome", "competitions", "run_case", "CHEAP_PIPELINE", "SLUG", "check_submission"]

SLUG = "messy"
CHEAP_PIPELINE = 'MODELS = {"logreg": ("logreg", {})}\n'

_WORDS = ["a", "b", "x,y", 'say "hi"', "ünï", "日本", "", " ", "NA", "null", "a\nb", "'q'", "é,\"", "🙂"]


@dataclass
class Case:
    """One generated competition: the three files' text and how ``submit`` runs."""

    train: str
    test: str
    sample: str
    eda: bool
    note: str = ""  # what the generator chose, for reports

    def size(self) -> int:
        return len(self.train) + len(self.test) + len(self.sample)

    def describe(self) -> str:
        return (f"# {self.note} (eda={self.eda})\n--- train.csv\n{self.train}--- test.csv\n{self.test}"
                f"--- sample_submission.csv\n{self.sample}")


@dataclass
class Outcome:
    kind: str  # "submission" | "error" | "traceback" | "invalid"
    message: str = ""  # the error line, or the problem with the written submission
    exc_type: str = ""
    frame: str = ""  # the innermost kagtools frame of a traceback: file:line in function
    tb: str = ""
    outside: list[str] = field(default_factory=list)  # files changed outside the work folder
    seconds: float = 0.0
    exc: BaseException | None = field(default=None, repr=False, compare=False)


# -- columns -----------------------------------------------------------------------------------------

def _column(draw, kind: str, n: int, rng: np.random.Generator) -> list:
    if n == 0:
        return []
    if kind == "int":
        vals = rng.integers(-5, 100, n).tolist()
    elif kind == "float":
        vals = rng.normal(size=n).tolist()
    elif kind == "bigfloat":
        vals = rng.choice([1e308, -1e308, 1e-308, 3.5, -2.0], n).tolist()
    elif kind == "bool":
        vals = rng.choice([True, False], n).tolist()
    elif kind == "string":
        vals = [str(rng.choice(_WORDS[:draw(st.integers(2, len(_WORDS)))])) for _ in range(n)]
    elif kind == "datetime":
        vals = [f"2021-{int(m):02d}-{int(d):02d}" + (" 12:30:00" if i % 3 == 0 else "")
                for i, (m, d) in enumerate(zip(rng.integers(1, 13, n), rng.integers(1, 29, n), strict=True))]
    elif kind == "const":
        vals = [7] * n
    else:  # mixed: numbers and words in one column
        vals = [str(rng.choice(_WORDS)) if rng.random() < 0.4 else float(rng.normal()) for _ in range(n)]
    if draw(st.booleans()):  # holes: NaN and, for numbers, inf
        holes = rng.random(n) < draw(st.sampled_from([0.1, 0.5, 1.0]))
        special = [float("nan")] + ([float("inf"), float("-inf")] if kind in ("int", "float", "bigfloat") else [])
        vals = [special[int(rng.integers(len(special)))] if h else v for v, h in zip(vals, holes, strict=True)]
    return vals


def _ids(draw, n: int, start: int) -> list:
    style = draw(st.sampled_from(["int", "int", "int", "negative", "string", "uuidish"]))
    if style == "int":
        ids = list(range(start, start + n))
    elif style == "negative":
        ids = list(range(-start - n, -start))
    elif style == "string":
        ids = [f"id,{i}" if i % 5 == 0 else f"r{i}" for i in range(start, start + n)]
    else:
        ids = [f"{i:08x}-ab" for i in range(start, start + n)]
    if n > 1 and draw(st.integers(0, 9)) == 9:  # a duplicate id, sometimes
        ids[-1] = ids[0]
    return ids


def _target(draw, task: str, n: int, rng: np.random.Generator) -> tuple[list, list]:
    """(train target values, the classes or [] for regression)."""
    if task == "regression":
        vals = (rng.normal(size=n) * draw(st.sampled_from([1.0, 1e6]))).tolist()
        if draw(st.integers(0, 9)) == 9 and n:
            vals[0] = float("nan")
        return vals, []
    if task == "binary":
        classes = draw(st.sampled_from([[0, 1], ["yes", "no"], [True, False], [1, 2], ["a,b", "ç"]]))
    else:
        k = draw(st.integers(3, 5))
        classes = draw(st.sampled_from([list(range(k)), [f"c{i}" for i in range(k)], [10 * i for i in range(k)]]))
    probs = np.ones(len(classes))
    if draw(st.booleans()):  # a rare class
        probs[-1] = 0.05
    if draw(st.integers(0, 5)) == 5:  # a class that never appears in train
        probs[-1] = 0.0
    probs = probs / probs.sum()
    vals = [classes[int(i)] for i in rng.choice(len(classes), n, p=probs)]
    return vals, classes


@st.composite
def competitions(draw) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    task = draw(st.sampled_from(["binary", "binary", "multiclass", "regression"]))
    n_train = draw(st.sampled_from([0, 1, 2, 3, 5, 12, 30, 30, 60]))
    n_test = draw(st.integers(1, 8))
    wide = draw(st.integers(0, 9)) == 9  # (draws shrink towards 0: the plain case)
    n_feat = draw(st.integers(20, 60)) if wide else draw(st.integers(1, 4))
    kinds = ["int", "float", "bigfloat", "bool", "string", "datetime", "mixed", "const"]
    feats = {}
    for j in range(n_feat):
        kind = draw(st.sampled_from(kinds)) if not wide or j < 4 else draw(st.sampled_from(["float", "int"]))
        name = draw(st.sampled_from([f"f{j}", f"col {j}", f"ç{j}", f"f,{j}"])) if j < 3 else f"f{j}"
        feats[name] = _column(draw, kind, n_train + n_test, rng)
    ids = _ids(draw, n_train + n_test, draw(st.sampled_from([0, 1, 1000])))
    y, classes = _target(draw, task, n_train, rng)
    target = draw(st.sampled_from(["target", "y", "Survived"]))
    table = pd.DataFrame({"id": ids, **feats})
    train = table.iloc[:n_train].copy()
    train[target] = y
    test = table.iloc[n_train:].copy()
    if draw(st.integers(0, 7)) == 7 and n_feat > 1:  # a training feature test.csv lacks
        test = test.drop(columns=[list(feats)[0]])
    # The sample submission: labels, probabilities, or one column per class.
    sample = pd.DataFrame({"id": test["id"].tolist()})
    if task == "regression":
        sample[target] = 0.5
    elif task == "multiclass" and draw(st.booleans()):
        for c in classes:
            sample[str(c)] = 1.0 / len(classes)
    elif draw(st.booleans()):
        sample[target] = 0.5
    else:
        sample[target] = [classes[i % len(classes)] for i in range(len(sample))]
    mutation = draw(st.sampled_from(["none"] * 6 + ["wrong_ids", "extra_col", "missing_col", "shuffled", "fewer"]))
    if mutation == "wrong_ids":
        sample["id"] = [f"zz{i}" for i in range(len(sample))]
    elif mutation == "extra_col":
        sample["extra"] = 0
    elif mutation == "missing_col":
        sample = sample[["id"]]
    elif mutation == "shuffled":
        sample = sample.iloc[::-1]
    elif mutation == "fewer" and len(sample) > 1:
        sample = sample.iloc[:-1]
    note = (f"task {task}, {n_train} train x {n_feat} features, {n_test} test, target {target!r} "
            f"classes {classes}, sample mutation {mutation}")
    return Case(train=train.to_csv(index=False), test=test.to_csv(index=False),
                sample=sample.to_csv(index=False), eda=draw(st.booleans()), note=note)


# -- running a case ----------------------------------------------------------------------------------

def _snapshot(parent: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for root, dirs, files in os.walk(parent):
        if Path(root) == skip or Path(root).is_relative_to(skip):
            dirs[:] = []
            continue
        for name in files + [d for d in dirs if Path(root, d) != skip]:
            p = Path(root, name)
            with contextlib.suppress(OSError):
                st_ = p.lstat()
                out[str(p.relative_to(parent))] = (st_.st_size, st_.st_mtime_ns if p.is_file() else 0)
    return out


def check_submission(path: Path, sample_path: Path) -> str:
    """'' when ``path`` has the sample's columns, rows and ids and no NaN/inf; else the problem."""
    if not path.is_file():
        return f"no file {path}"
    sub = pd.read_csv(path, dtype=str, keep_default_na=False)
    sample = pd.read_csv(sample_path, dtype=str, keep_default_na=False)
    if list(sub.columns) != list(sample.columns):
        return f"columns {list(sub.columns)} != sample's {list(sample.columns)}"
    if len(sub) != len(sample):
        return f"{len(sub)} rows != sample's {len(sample)}"
    id_col = sample.columns[0]
    if sorted(sub[id_col]) != sorted(sample[id_col]):
        return f"ids differ from the sample's: {sub[id_col].tolist()[:5]} vs {sample[id_col].tolist()[:5]}"
    for col in sub.columns[1:]:
        bad = [v for v in sub[col] if v.strip().lower() in ("", "nan", "inf", "-inf", "infinity", "-infinity",
                                                             "none", "null")]
        if bad:
            return f"column {col!r} holds {bad[0]!r}"
    return ""


def _kagtools_frame(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/kagtools/" in f.filename.replace(os.sep, "/")]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.filename.split('/kagtools/')[-1]}:{f.lineno} in {f.name}"


def cli(argv: list[str]) -> tuple[int, str, str]:
    """``kagtools argv`` in-process: (exit code, stdout, stderr); other exceptions propagate."""
    from kagtools.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "error:" in line]
    return lines[-1] if lines else ""


def run_case(case: Case, parent: Path) -> Outcome:
    """Write ``case`` under ``parent``/data, run init + submit from ``parent``/work; the outcome."""
    import time

    start = time.perf_counter()
    data, work = parent / "data", parent / "work"
    data.mkdir(parents=True)
    work.mkdir()
    (data / "train.csv").write_text(case.train)
    (data / "test.csv").write_text(case.test)
    (data / "sample_submission.csv").write_text(case.sample)
    (parent / "sentinel.txt").write_text("do not touch\n")
    before = _snapshot(parent, work)
    cwd = os.getcwd()
    os.chdir(work)
    outcome = Outcome(kind="submission")
    try:
        code, _, err = cli(["init", SLUG, "--data-dir", str(data), "--n-splits", "2", "--n-repeats", "1",
                            "--pipeline"])
        if code == 0:
            (work / "pipelines" / f"{SLUG}.py").write_text(CHEAP_PIPELINE)
            argv = ["submit", SLUG, "--n-jobs", "1"] + ([] if case.eda else ["--no-eda"])
            code, _, err = cli(argv)
        if code != 0:
            line = _error_line(err)
            n_errors = sum("error:" in x for x in err.splitlines())
            outcome = Outcome(kind="error", message=line)
            if not line or n_errors != 1 or "Traceback" in err:
                outcome = Outcome(kind="invalid", message=f"exit {code} without exactly one error line: {err!r}")
        else:
            problem = check_submission(work / "submissions" / SLUG / "submission.csv", data / "sample_submission.csv")
            if problem:
                outcome = Outcome(kind="invalid", message=f"exit 0 but the submission is wrong: {problem}")
    except Exception as exc:  # noqa: BLE001 - the point is to classify it
        outcome = Outcome(kind="traceback", message=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}",
                          exc_type=type(exc).__name__, frame=_kagtools_frame(exc),
                          tb="".join(traceback.format_exception(exc)[-6:]), exc=exc)
    finally:
        os.chdir(cwd)
    after = _snapshot(parent, work)
    outcome.outside = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    outcome.seconds = time.perf_counter() - start
    return outcome


def is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
