"""Spec inference (``kagtools init``): synthetic competitions of each task, bad input, the
shipped specs, and Titanic end to end with its spec removed."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kagtools.analysis.spec_inference import find_files, infer_spec, write_inferred_spec
from kagtools.core.environment import project_root
from kagtools.core.spec import load_spec, parse_spec
from kagtools.errors import KagtoolsError

RNG = np.random.default_rng(0)


def write_competition(root: Path, train: pd.DataFrame, test: pd.DataFrame, sample: pd.DataFrame,
                      sample_name: str = "sample_submission.csv") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    train.to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    sample.to_csv(root / sample_name, index=False)
    return root


def features(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(start, start + n), "x1": RNG.normal(size=n),
                         "color": RNG.choice(["red", "green", "blue"], size=n)})


def test_binary_labels_with_a_kaggle_style_sample_name(tmp_path):
    train = features(60).assign(target=RNG.integers(0, 2, 60))
    test = features(20, 100)
    sample = pd.DataFrame({"id": test["id"], "target": RNG.integers(0, 2, 20)})
    write_competition(tmp_path, train, test, sample, sample_name="gender_submission.csv")
    inf = infer_spec("bin", tmp_path, advise=False)
    s = inf.spec
    assert (s["id_col"], s["target_cols"], s["task"]) == ("id", ["target"], "binary")
    assert s["files"]["sample_submission"] == "gender_submission.csv"
    assert s["submission"] == {"kind": "labels", "columns": ["id", "target"],
                               "dtypes": {"id": "int64", "target": "int64"}}
    assert s["metric"]["name"] == "accuracy"
    assert any("labels" in r for r in inf.reasons)


def test_binary_probabilities_and_given_metric(tmp_path):
    train = features(60).assign(target=RNG.integers(0, 2, 60))
    test = features(20, 100)
    write_competition(tmp_path, train, test, pd.DataFrame({"id": test["id"], "target": 0.5}))
    s = infer_spec("p", tmp_path, metric="log_loss", advise=False).spec
    assert s["task"] == "binary" and s["submission"]["kind"] == "probabilities"
    assert s["metric"]["name"] == "log_loss" and s["submission"]["dtypes"]["target"] == "float64"


def test_constant_integer_sample_is_a_question_not_a_guess(tmp_path):
    train = features(60).assign(target=RNG.integers(0, 2, 60))
    test = features(20, 100)
    write_competition(tmp_path, train, test, pd.DataFrame({"id": test["id"], "target": 0}))
    with pytest.raises(KagtoolsError, match="--submission labels|probabilities"):
        infer_spec("q", tmp_path, advise=False)
    assert infer_spec("q", tmp_path, kind="probabilities", advise=False).spec["submission"]["kind"] == "probabilities"


def test_multiclass_probabilities_one_column_per_class(tmp_path):
    classes = ["Class_1", "Class_2", "Class_3", "Class_4"]
    train = features(80).assign(target=RNG.choice(classes, 80))
    test = features(20, 100)
    sample = pd.DataFrame({"id": test["id"], **{c: 0.25 for c in classes}})
    write_competition(tmp_path, train, test, sample)
    s = infer_spec("mc", tmp_path, advise=False).spec
    assert s["task"] == "multiclass" and s["target_cols"] == ["target"]
    assert s["submission"]["kind"] == "probabilities" and s["submission"]["columns"] == ["id", *classes]
    assert s["metric"]["name"] == "log_loss"


def test_multiclass_labels_with_a_differently_cased_target(tmp_path):
    train = features(80).assign(label=RNG.integers(0, 10, 80))
    test = features(20, 100)
    write_competition(tmp_path, train, test, pd.DataFrame({"id": test["id"], "Label": 0}))
    s = infer_spec("digits", tmp_path, advise=False).spec
    assert (s["task"], s["target_cols"], s["submission"]["kind"]) == ("multiclass", ["label"], "labels")
    assert s["submission"]["columns"] == ["id", "Label"]


def test_regression_and_multitarget_regression(tmp_path):
    train = features(60).assign(price=RNG.normal(100, 10, 60))
    test = features(20, 100)
    write_competition(tmp_path / "r", train, test, pd.DataFrame({"id": test["id"], "price": 0}))
    s = infer_spec("r", tmp_path / "r", advise=False).spec
    assert (s["task"], s["submission"]["kind"], s["metric"]["name"]) == ("regression", "values", "rmse")
    assert s["submission"]["dtypes"]["price"] == "float64"  # the sample's 0 is not an integer format
    train = features(60).assign(a=RNG.normal(size=60), b=RNG.normal(size=60))
    write_competition(tmp_path / "m", train, test, pd.DataFrame({"id": test["id"], "a": 0.0, "b": 0.0}))
    s = infer_spec("m", tmp_path / "m", advise=False).spec
    assert (s["task"], s["target_cols"], s["metric"]["name"]) == ("multitarget", ["a", "b"], "mcrmse")


def test_a_few_integer_values_are_numbers_when_the_competition_asks_for_numbers(tmp_path):
    """Years of schooling (8-20): classes by default, numbers when the sample holds fractional
    values or ``--submission values`` is given (before: multiclass, then no metric for it)."""
    train = features(80).assign(educ=RNG.integers(8, 21, 80))
    test = features(20, 100)
    write_competition(tmp_path / "whole", train, test, pd.DataFrame({"id": test["id"], "educ": 12}))
    assert infer_spec("e", tmp_path / "whole", advise=False).spec["task"] == "multiclass"
    s = infer_spec("e", tmp_path / "whole", kind="values", advise=False).spec
    assert (s["task"], s["submission"]["kind"], s["metric"]["name"]) == ("regression", "values", "rmse")
    write_competition(tmp_path / "mean", train, test, pd.DataFrame({"id": test["id"], "educ": 13.29}))
    s = infer_spec("e", tmp_path / "mean", advise=False).spec
    assert (s["task"], s["submission"]["kind"], s["metric"]["name"]) == ("regression", "values", "rmse")
    assert infer_spec("e", tmp_path / "mean", task="multiclass", advise=False).spec["task"] == "multiclass"


def test_multilabel(tmp_path):
    train = features(60).assign(toxic=RNG.integers(0, 2, 60), spam=RNG.integers(0, 2, 60))
    test = features(20, 100)
    write_competition(tmp_path, train, test, pd.DataFrame({"id": test["id"], "toxic": 0.5, "spam": 0.5}))
    s = infer_spec("ml", tmp_path, advise=False).spec
    assert (s["task"], s["submission"]["kind"], s["metric"]["name"]) == ("multilabel", "probabilities", "roc_auc")


def test_test_without_ids_and_train_without_ids(tmp_path):
    train = features(60).drop(columns="id").assign(label=RNG.integers(0, 3, 60))
    test = features(20).drop(columns="id")
    write_competition(tmp_path, train, test, pd.DataFrame({"ImageId": np.arange(1, 21), "Label": 0}))
    s = infer_spec("d", tmp_path, advise=False).spec
    assert s["id_col"] == "ImageId"
    assert s["options"] == {"test_ids": "row_number", "test_id_start": 1, "train_ids": "row_number"}


def test_written_spec_loads_and_carries_its_reasons(tmp_path):
    train = features(60).assign(target=RNG.integers(0, 2, 60))
    test = features(20, 100)
    write_competition(tmp_path / "data", train, test, pd.DataFrame({"id": test["id"], "target": RNG.integers(0, 2, 20)}))
    inf = infer_spec("w", tmp_path / "data")
    path = write_inferred_spec(inf, tmp_path / "competitions" / "w.toml")
    spec = load_spec(path)
    assert spec.task == "binary" and spec.cv.splitter == "StratifiedKFold" and spec.cv.stratify == "target"
    assert "# task: binary" in path.read_text()


@pytest.mark.parametrize("case, message", [
    ("nan_target", r"target column 'target' has 2 missing value\(s\) \(file rows 4, 9\)"),
    ("dup_ids", r"train.csv: id column 'id' has 2 duplicated rows \(file rows 2, 3\)"),
    ("test_col", r"test.csv: column\(s\) extra are not in"),
    ("sample_ids", r"1 id\(s\) of .*test.csv are missing from it \(test.csv rows 3, e.g. 101\)"),
    ("id_target", r"target column 'target' has a distinct value on every one of its 60 rows, like an id"),
    ("no_target", r"its column\(s\) price are not columns of .*pass --target COLUMN"),
])
def test_bad_input_is_one_clear_message(tmp_path, case, message):
    train = features(60).assign(target=RNG.integers(0, 2, 60))
    test = features(20, 100)
    sample = pd.DataFrame({"id": test["id"], "target": RNG.integers(0, 2, 20)})
    if case == "nan_target":
        train.loc[[2, 7], "target"] = np.nan
    elif case == "dup_ids":
        train.loc[1, "id"] = 0
    elif case == "test_col":
        test["extra"] = 1
    elif case == "sample_ids":
        sample.loc[1, "id"] = 999
    elif case == "id_target":
        train["target"] = np.arange(60)
    elif case == "no_target":
        sample = sample.rename(columns={"target": "price"})
        train = train.assign(other=1)
    write_competition(tmp_path, train, test, sample)
    with pytest.raises(KagtoolsError, match=message):
        infer_spec("bad", tmp_path, advise=False)


def test_ambiguous_sample_names_ask_for_a_flag(tmp_path):
    train = features(30).assign(target=RNG.integers(0, 2, 30))
    test = features(10, 100)
    sample = pd.DataFrame({"id": test["id"], "target": 1})
    write_competition(tmp_path, train, test, sample, "sample_a.csv")
    sample.to_csv(tmp_path / "sample_b.csv", index=False)
    with pytest.raises(KagtoolsError, match="pass --sample FILE"):
        find_files(tmp_path)
    assert find_files(tmp_path, sample="sample_b.csv")["sample_submission"].name == "sample_b.csv"


def _shipped_tabular_specs() -> list[str]:
    """Shipped specs whose train, test and sample submission are all in the mirror."""
    mirror = Path(os.environ["KAGTOOLS_DATA_DIR"])  # set by conftest.py
    slugs = []
    for path in sorted((project_root() / "competitions").glob("*.toml")):
        spec = parse_spec(tomllib.loads(path.read_text()), source=str(path))
        keys = ("train", "test", "sample_submission")
        if all(k in spec.files and (mirror / spec.slug / spec.files[k]).is_file() for k in keys):
            slugs.append(spec.slug)
    return slugs


@pytest.mark.slow
@pytest.mark.parametrize("slug", _shipped_tabular_specs())
def test_inference_reproduces_the_shipped_specs(slug, mirror):
    """What matters to the flow: id, targets, task, the submission's kind and columns."""
    spec = load_spec(project_root() / "competitions" / f"{slug}.toml")
    inferred = infer_spec(slug, mirror / slug, metric=spec.metric, advise=False).spec
    assert inferred["id_col"] == spec.id_col
    assert inferred["target_cols"] == list(spec.target_cols)
    assert inferred["task"] == spec.task
    assert inferred["submission"]["kind"] == spec.submission_kind
    assert inferred["submission"]["columns"] == list(spec.submission_columns)
    for col, dtype in spec.submission_dtypes.items():
        assert inferred["submission"]["dtypes"][col] == dtype, col
    assert {k: v for k, v in inferred["files"].items()} == {k: spec.files[k] for k in inferred["files"]}


@pytest.mark.slow
def test_titanic_from_its_files_alone_to_a_validated_submission(tmp_path, mirror):
    """`kagtools init` then `kagtools submit` in a workdir with no Titanic spec or pipeline."""
    from kagtools.cli.main import main

    workdir = tmp_path / "work"
    data = mirror / "titanic"
    # A slug with no shipped spec, so nothing but the inferred one can be used.
    assert main(["init", "titanic-auto", "--data-dir", str(data), "--workdir", str(workdir),
                 "--n-repeats", "1"]) == 0
    spec = load_spec("titanic-auto", workdir)
    assert spec.pipeline is None and spec.task == "binary" and spec.id_col == "PassengerId"
    assert main(["submit", "titanic-auto", "--data-dir", str(data), "--workdir", str(workdir),
                 "--no-eda", "--n-jobs", "2"]) == 0
    sub = pd.read_csv(workdir / "submissions" / "titanic-auto" / "submission.csv")
    sample = pd.read_csv(data / "gender_submission.csv")
    assert list(sub.columns) == ["PassengerId", "Survived"]
    assert sub["PassengerId"].tolist() == sample["PassengerId"].tolist()
    assert set(sub["Survived"].unique()) <= {0, 1} and sub["Survived"].dtype.kind == "i"
    import json

    meta = json.loads((workdir / "submissions" / "titanic-auto" / "submission.json").read_text())
    assert meta["cv"] > 0.80  # accuracy on 5 stratified folds; the gender baseline is ~0.79


@pytest.mark.slow
def test_multiclass_probabilities_from_files_to_a_validated_submission(tmp_path):
    """Class names as labels, one probability column per class in the sample: init, cv, submit."""
    from kagtools.cli.main import main

    rng = np.random.default_rng(0)
    n = 150
    x = rng.normal(size=(n + 30, 2))
    label = np.array(["setosa", "versicolor", "virginica"])[np.digitize(x[:, 0] + 0.3 * x[:, 1], [-0.5, 0.5])]
    frame = pd.DataFrame({"id": np.arange(n + 30), "a": x[:, 0], "b": x[:, 1],
                          "kind": rng.choice(["p", "q"], n + 30), "species": label})
    train, test = frame.iloc[:n], frame.iloc[n:].drop(columns="species")
    sample = pd.DataFrame({"id": test["id"], "setosa": 1 / 3, "versicolor": 1 / 3, "virginica": 1 / 3})
    data = write_competition(tmp_path / "data", train, test, sample)
    common = ["--data-dir", str(data), "--workdir", str(tmp_path / "work")]
    assert main(["init", "flowers", *common, "--n-repeats", "1"]) == 0
    # One model, then submit that run (the full submit path is exercised on Titanic above).
    assert main(["cv", "flowers", *common, "--model", "logreg", "--n-jobs", "1"]) == 0
    run_id = next((tmp_path / "work" / "runs" / "flowers").glob("logreg-*")).name
    assert main(["submit", "flowers", *common, "--run", run_id]) == 0
    sub = pd.read_csv(tmp_path / "work" / "submissions" / "flowers" / "submission.csv")
    assert list(sub.columns) == ["id", "setosa", "versicolor", "virginica"]
    assert sub["id"].tolist() == test["id"].tolist()
    probs = sub[["setosa", "versicolor", "virginica"]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-3) and (probs >= 0).all()
    # The model learned: most probability on the true class of the test rows.
    truth = frame.iloc[n:]["species"].to_numpy()
    assert (np.array(["setosa", "versicolor", "virginica"])[probs.argmax(axis=1)] == truth).mean() > 0.7
