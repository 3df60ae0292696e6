"""Issue 19, one test per messy case: each ends in a valid submission or ONE line naming the file,
column, row or value and what to do. Never a traceback, never a silent wrong answer, nothing
written outside the work folder.

Every case drives the CLI in-process (``kagtools.cli.main``) from a work folder of its own, with
the data beside it (not inside it) and a one-model pipeline (logistic regression) on few folds.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from messy_gen import CHEAP_PIPELINE, check_submission, cli

SLUG = "mc"


# -- helpers -----------------------------------------------------------------------------------------

@pytest.fixture
def where(tmp_path, monkeypatch):
    """(work folder = cwd, data folder beside it); the parent holds a sentinel file."""
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    data.mkdir()
    (tmp_path / "sentinel.txt").write_text("untouched\n")
    monkeypatch.chdir(work)
    monkeypatch.delenv("KAGTOOLS_DATA_DIR", raising=False)
    return work, data


def _binary_frames(n=40, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n + n_test)
    frame = pd.DataFrame({"id": np.arange(n + n_test), "x": x, "z": rng.normal(size=n + n_test),
                          "y": (x + 0.7 * rng.normal(size=n + n_test) > 0).astype(int)})
    train, test = frame.iloc[:n].copy(), frame.iloc[n:].drop(columns="y").copy()
    sample = test[["id"]].assign(y=0.5)
    return train, test, sample


def _write(data: Path, train: pd.DataFrame, test: pd.DataFrame, sample: pd.DataFrame) -> None:
    train.to_csv(data / "train.csv", index=False)
    test.to_csv(data / "test.csv", index=False)
    sample.to_csv(data / "sample_submission.csv", index=False)


def _init(work: Path, data: Path, *flags: str, cheap: bool = True) -> tuple[int, str, str]:
    """``kagtools init`` with 2 folds x 1 repeat and, when it succeeds, the one-model pipeline."""
    if not any(f.startswith("--n-splits") for f in flags):
        flags = ("--n-splits", "2", *flags)
    code, out, err = cli(["init", SLUG, "--data-dir", str(data), "--n-repeats", "1", "--pipeline", *flags])
    if code == 0 and cheap:
        (work / "pipelines" / f"{SLUG}.py").write_text(CHEAP_PIPELINE)
    return code, out, err


def _submit(*flags: str, eda: bool = False) -> tuple[int, str, str]:
    return cli(["submit", SLUG, "--n-jobs", "1", *([] if eda else ["--no-eda"]), *flags])


def _one_error(code: int, err: str) -> str:
    """The one ``error:`` line of a failed command (asserting there is exactly one)."""
    assert code != 0, "expected the command to fail with one error line"
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, f"expected one error line, got: {err!r}"
    return lines[0]


def _valid_submission(work: Path, data: Path) -> pd.DataFrame:
    path = work / "submissions" / SLUG / "submission.csv"
    problem = check_submission(path, data / "sample_submission.csv")
    assert not problem, problem
    return pd.read_csv(path)


def _run_ids(work: Path) -> list[str]:
    root = work / "runs" / SLUG
    return sorted(p.name for p in root.iterdir() if (p / "run.json").is_file()) if root.is_dir() else []


def _edit_spec(work: Path, old: str, new: str) -> None:
    path = work / "competitions" / f"{SLUG}.toml"
    text = path.read_text()
    assert old in text, f"{old!r} not in the spec:\n{text}"
    path.write_text(text.replace(old, new, 1))


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


# -- a. stale runs -----------------------------------------------------------------------------------

def test_a_runs_on_changed_data_are_stale_hidden_and_refused(where):
    work, data = where
    _write(data, *_binary_frames())
    assert _init(work, data)[0] == 0
    assert _submit()[0] == 0
    old = _run_ids(work)
    assert old
    test = pd.read_csv(data / "test.csv")
    test.loc[0, "z"] += 1.0  # one feature value of test.csv changes
    test.to_csv(data / "test.csv", index=False)
    code, out, err = cli(["runs", SLUG])
    assert code == 0, err
    listed = [rid for rid in old if any(rid in line and "stale" not in line.lower() for line in out.splitlines())]
    assert not listed, f"stale runs listed as current after test.csv changed: {listed}\n{out}"
    line = _one_error(*cli(["submit", SLUG, "--run", old[0]])[::2])
    assert "test.csv" in line, line


# -- b. labels that are not the task's -------------------------------------------------------------

def test_b_fractional_and_out_of_range_binary_labels_are_named(where):
    work, data = where
    train, test, sample = _binary_frames()
    train["y"] = train["y"].astype(float)
    train.loc[3, "y"] = 0.5
    _write(data, train, test, sample)
    code, out, err = _init(work, data)
    if code == 0:
        code, out, err = _submit()
    line = _one_error(code, err)
    assert "'y'" in line and "0.5" in line, line

    # A spec whose task is binary, then a 2 among the 0/1 labels.
    train, test, sample = _binary_frames()
    _write(data, train, test, sample)
    assert _init(work, data, "--force")[0] == 0
    assert "task = \"binary\"" in (work / "competitions" / f"{SLUG}.toml").read_text()
    train.loc[5, "y"] = 2
    train.to_csv(data / "train.csv", index=False)
    line = _one_error(*_submit("--force")[::2])
    assert "'y'" in line and re.search(r"(?<![\d.])2(?![\d.])", line), line


# -- c. bagging --------------------------------------------------------------------------------------

def test_c_bag_members_differ_and_bag_counts_below_one_are_refused(where):
    work, data = where
    _write(data, *_binary_frames(n=120))
    assert _init(work, data)[0] == 0
    code, out, err = cli(["cv", SLUG, "--model", "lgbm", "--bag", "3", "--n-jobs", "1",
                          "--params", '{"subsample": 0.8, "n_estimators": 20}'])
    assert code == 0, err
    bags = [json.loads((work / "runs" / SLUG / rid / "run.json").read_text()) for rid in _run_ids(work)]
    bag = next(r for r in bags if r.get("kind") == "bag")
    details = bag["details"]
    assert not details["members_identical"], f"subsample 0.8 over 3 seeds gave identical members: {details}"
    assert len(set(details["bag_scores"])) > 1, details
    for n in ("0", "-1"):
        line = _one_error(*cli(["cv", SLUG, "--model", "logreg", "--bag", n, "--n-jobs", "1"])[::2])
        assert "--bag" in line, line


# -- d. a training feature test.csv lacks ------------------------------------------------------------

def test_d_a_train_only_feature_is_named_in_a_warning(where):
    work, data = where
    train, test, sample = _binary_frames()
    train["only_in_train"] = np.arange(len(train))
    _write(data, train, test, sample)
    code, out1, err1 = _init(work, data)
    assert code == 0, err1
    code, out2, err2 = _submit()
    assert code == 0, err2
    _valid_submission(work, data)
    said = [line for line in (out1 + err1 + out2 + err2).splitlines() if "only_in_train" in line]
    assert said and any("warn" in line.lower() or "test" in line.lower() for line in said), \
        "a train.csv column missing from test.csv was dropped silently"


# -- e. tuning storage that cannot be written --------------------------------------------------------

def test_e_an_unwritable_optuna_storage_is_one_line(where):
    work, data = where
    _write(data, *_binary_frames())
    assert _init(work, data)[0] == 0
    code, out, err = cli(["tune", SLUG, "--model", "logreg", "--trials", "2",
                          "--storage", "sqlite:////nonexistent/dir/x.db"])
    line = _one_error(code, err)
    assert "/nonexistent/dir" in line, line


# -- f. a class absent from a training fold ----------------------------------------------------------

def _three_classes(n=30, n_test=8, rare=1, seed=1):
    rng = np.random.default_rng(seed)
    y = np.array(["a", "b"] * ((n - rare) // 2) + ["a"] * ((n - rare) % 2) + ["c"] * rare)
    rng.shuffle(y)
    train = pd.DataFrame({"id": np.arange(n), "x": rng.normal(size=n), "y": y})
    test = pd.DataFrame({"id": np.arange(n, n + n_test), "x": rng.normal(size=n_test)})
    return train, test


def test_f_multiclass_with_a_class_absent_from_a_training_fold(where):
    work, data = where
    train, test = _three_classes(rare=1)
    sample = test[["id"]].assign(a=1 / 3, b=1 / 3, c=1 / 3)
    _write(data, train, test, sample)
    code, out, err = _init(work, data, "--n-splits", "3")
    assert code == 0, err
    _edit_spec(work, 'splitter = "StratifiedKFold"', 'splitter = "KFold"')  # not stratified: 'c' leaves a fold
    code, out, err = _submit()
    if code != 0:
        line = _one_error(code, err)
        assert "'c'" in line, line
        return
    sub = _valid_submission(work, data)
    assert list(sub.columns) == ["id", "a", "b", "c"]
    assert np.allclose(sub[["a", "b", "c"]].sum(axis=1), 1.0, atol=1e-6)


# -- g. yes/no labels with EDA -----------------------------------------------------------------------

def test_g_string_binary_labels_with_eda(where):
    work, data = where
    train, test, _ = _binary_frames()
    train["y"] = train["y"].map({0: "no", 1: "yes"})
    sample = test[["id"]].assign(y=["yes", "no"] * (len(test) // 2))
    _write(data, train, test, sample)
    code, out, err = _init(work, data)
    assert code == 0, err
    code, out, err = _submit(eda=True)
    assert code == 0, err
    sub = _valid_submission(work, data)
    assert set(sub["y"]) <= {"yes", "no"}


# -- h. inf and 1e308 --------------------------------------------------------------------------------

def test_h_inf_and_huge_values_in_a_feature(where):
    work, data = where
    train, test, sample = _binary_frames()
    train.loc[[1, 4], "x"] = [np.inf, -np.inf]
    train.loc[[2, 6], "z"] = [1e308, -1e308]
    test.loc[test.index[0], "x"] = np.inf
    test.loc[test.index[1], "z"] = 1e308
    _write(data, train, test, sample)
    code, out, err = _init(work, data)
    assert code == 0, err
    code, out, err = _submit()
    assert code == 0, err
    _valid_submission(work, data)


# -- i. constant target, tiny train ------------------------------------------------------------------

@pytest.mark.parametrize("n_rows", ["constant", 0, 1, 2, 3])
def test_i_constant_target_and_tiny_train(where, n_rows):
    work, data = where
    train, test, sample = _binary_frames()
    if n_rows == "constant":
        train["y"] = 1
        _write(data, train, test, sample)
        line = _one_error(*_init(work, data)[::2])
        assert "'y'" in line, line
        return
    train = train.iloc[:n_rows]
    _write(data, train, test, sample)
    code, out, err = _init(work, data)
    if code == 0:
        code, out, err = _submit()
    if n_rows >= 2 and code == 0:
        _valid_submission(work, data)
        return
    line = _one_error(code, err)
    assert "train.csv" in line or "'y'" in line, line


# -- j. a sample submission with an extra column -----------------------------------------------------

def test_j_an_extra_sample_column_is_named(where):
    work, data = where
    train, test, sample = _binary_frames()
    sample["extra_col"] = 0
    _write(data, train, test, sample)
    code, out, err = _init(work, data)
    if code == 0:
        code, out, err = _submit()
    line = _one_error(code, err)
    assert "extra_col" in line, line


# -- k. bad spec and flag values ---------------------------------------------------------------------

@pytest.mark.parametrize("case", [
    ("spec", "n_splits = 2", "n_splits = -2", "n_splits"),
    ("spec", "n_splits = 2", "n_splits = 1", "n_splits"),
    ("spec", "n_splits = 2", 'n_splits = "five"', "n_splits"),
    ("spec", "n_repeats = 1", "n_repeats = 0", "n_repeats"),
    ("init", ["--n-splits", "-3"], None, "-3"),
    ("cv", ["--model", "logreg", "--params", '{"C": "abc"}'], None, "C"),
    ("cv", ["--model", "logreg", "--params", '{"C": -1}'], None, "C"),
    ("cv", ["--model", "lgbm", "--params", '{"num_leaves": -5}'], None, "num_leaves"),
    ("cv", ["--model", "logreg", "--n-jobs", "0"], None, "--n-jobs"),
], ids=["n_splits=-2", "n_splits=1", "n_splits=five", "n_repeats=0", "init--n-splits=-3", "C=abc", "C=-1",
        "num_leaves=-5", "n_jobs=0"])
def test_k_bad_values_are_one_line_before_the_data_is_read(where, case):
    work, data = where
    what, a, b, needle = case
    _write(data, *_binary_frames())
    if what == "init":
        line = _one_error(*_init(work, data, *a)[::2])
        assert "n_splits" in line.replace("-", "_") and needle in line, line
        return
    assert _init(work, data)[0] == 0
    if what == "spec":
        _edit_spec(work, a, b)
        argv = ["submit", SLUG, "--no-eda", "--n-jobs", "1"]
    else:
        argv = ["cv", SLUG, *a] + ([] if "--n-jobs" in a else ["--n-jobs", "1"])
    # Moved away: a value the spec or flags can refuse must be refused before any data is read.
    data.rename(data.with_name("data-moved"))
    line = _one_error(*cli(argv)[::2])
    assert needle in line and "no data" not in line, line


# -- l. a class with fewer rows than folds -----------------------------------------------------------

def test_l_a_class_with_fewer_rows_than_folds(where):
    work, data = where
    train, test = _three_classes(n=40, rare=2)
    sample = test[["id"]].assign(y=["a", "b"] * (len(test) // 2))
    _write(data, train, test, sample)
    code, out, err = _init(work, data, "--n-splits", "5")
    if code == 0:
        code, out, err = _submit()
    if code != 0:
        line = _one_error(code, err)
        assert "'c'" in line, line
        return
    _valid_submission(work, data)


# -- m. path traversal -------------------------------------------------------------------------------

def _tree(root: Path, skip: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if not p.is_relative_to(skip)}


def test_m_slugs_and_run_ids_cannot_leave_the_work_folder(where, tmp_path):
    work, data = where
    _write(data, *_binary_frames())
    before = _tree(tmp_path, work)
    line = _one_error(*cli(["init", "../../escape", "--data-dir", str(data), "--n-splits", "2"])[::2])
    assert "escape" in line, line
    assert _tree(tmp_path, work) == before, "init wrote outside the work folder"
    assert not (tmp_path / "escape.toml").exists() and not (tmp_path.parent / "escape.toml").exists()

    assert _init(work, data)[0] == 0
    assert _submit()[0] == 0
    # A real run, copied outside the work folder where a traversing --run would find it.
    import shutil

    other = tmp_path / "other" / "run"
    shutil.copytree(work / "runs" / SLUG / _run_ids(work)[0], other)
    submissions = sorted((work / "submissions" / SLUG).iterdir())
    before = _tree(tmp_path, work)
    line = _one_error(*cli(["submit", SLUG, "--run", "../../../other/run"])[::2])
    assert "other/run" in line or "--run" in line, line
    assert sorted((work / "submissions" / SLUG).iterdir()) == submissions, "a traversing --run was submitted"
    assert _tree(tmp_path, work) == before


# -- n. litter from a killed process -----------------------------------------------------------------

def test_n_litter_of_a_killed_run_is_cleaned_by_the_next_command(where):
    work, data = where
    _write(data, *_binary_frames())
    assert _init(work, data)[0] == 0
    litter_dir = work / "runs" / SLUG / ".lgbm-x.tmp"
    litter_dir.mkdir(parents=True)
    (litter_dir / "oof.parquet").write_bytes(b"half")
    litter_file = work / "reports" / SLUG / ".blend.png.abc.tmp"
    litter_file.parent.mkdir(parents=True)
    litter_file.write_bytes(b"half")
    old = time.time() - 86400  # a day old: no live process is still writing them
    for p in (litter_dir / "oof.parquet", litter_dir, litter_file):
        os.utime(p, (old, old))
    code, out, err = _submit()
    assert code == 0, err
    assert not litter_dir.exists(), "runs/<slug>/.lgbm-x.tmp/ left by a killed run is still there"
    assert not litter_file.exists(), "reports/<slug>/.blend.png.abc.tmp left by a killed run is still there"


# -- o. strict JSON ----------------------------------------------------------------------------------

def test_o_run_json_and_sidecars_are_strict_json_when_a_fold_lacks_a_class(where):
    work, data = where
    train, test, sample = _binary_frames(n=30)
    train["y"] = 0
    train.loc[[0, 1, 2], "y"] = 1  # 3 positives in 30 rows: some validation folds have none
    _write(data, train, test, sample)
    code, out, err = _init(work, data, "--n-splits", "5")
    assert code == 0, err
    _edit_spec(work, 'splitter = "StratifiedKFold"', 'splitter = "KFold"')
    code, out, err = _submit()
    assert code == 0, err
    files = [work / "runs" / SLUG / rid / "run.json" for rid in _run_ids(work)]
    files += sorted((work / "submissions" / SLUG).glob("*.json"))
    assert len(files) >= 2
    for path in files:
        try:
            _strict_json(path.read_text())
        except ValueError as exc:
            pytest.fail(f"{path.name} is not strict JSON: {exc}")
    # The undefined fold scores are null, and the record says why.
    record = json.loads(files[0].read_text())
    assert any(f["score"] is None for f in record["scores"]["folds"])
    assert "undefined" in record["scores"]["undefined_folds"]


# -- p. concurrent writers of one run ----------------------------------------------------------------

def test_p_concurrent_writers_never_make_the_run_dir_vanish(tmp_path):
    from kagtools.core.io import atomic_dir

    target = tmp_path / "runs" / "syn" / "logreg-1"
    with atomic_dir(target) as tmp:
        (tmp / "run.json").write_text('{"n": 0}')
    stop = threading.Event()
    errors: list[BaseException] = []
    absent = [0]

    def writer(k: int) -> None:
        try:
            for i in range(60):
                with atomic_dir(target) as tmp:
                    (tmp / "run.json").write_text(json.dumps({"n": i, "writer": k}))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def reader() -> None:
        while not stop.is_set():
            try:
                json.loads((target / "run.json").read_text())
            except (FileNotFoundError, NotADirectoryError):
                absent[0] += 1
            except json.JSONDecodeError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    read = threading.Thread(target=reader)
    read.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    read.join()
    assert not errors, f"concurrent atomic_dir writers failed: {errors[:3]!r}"
    assert absent[0] == 0, f"a reader found {target} absent {absent[0]} times while writers replaced it"
    assert json.loads((target / "run.json").read_text())["n"] == 59
    left = [p.name for p in target.parent.iterdir() if p.name.endswith((".tmp", ".old"))]
    assert not left, f"temporary directories left behind: {left}"
