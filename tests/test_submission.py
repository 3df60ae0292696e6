import numpy as np
import pandas as pd
import pytest

from kagtools.core.runs import write_run
from kagtools.core.spec import load_spec
from kagtools.core.submission import render_submission, validate_submission, write_submission
from kagtools.errors import KagtoolsError
from tests.conftest import make_record


@pytest.fixture
def sample():
    return pd.DataFrame({"PassengerId": np.arange(892, 902), "Survived": np.zeros(10, dtype="int64")})


def _good(sample):
    sub = sample.copy()
    sub["Survived"] = [0, 1] * 5
    return sub


def test_valid_submission_passes(sample):
    validate_submission(_good(sample), sample, id_col="PassengerId")


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s[["Survived", "PassengerId"]], "columns"),
    (lambda s: s.rename(columns={"Survived": "survived"}), "columns"),
    (lambda s: s.iloc[:-1], "9 rows, the sample submission has 10"),
    (lambda s: s.assign(Survived=s["Survived"].astype(float).where(s.index != 3)), "'Survived' has NaN.*895"),
    (lambda s: s.assign(Survived=s["Survived"] * 0.5), "must be integers"),
    (lambda s: s.assign(Survived=["x"] * 10), "must be integers"),
    (lambda s: s.assign(PassengerId=[892] * 2 + list(range(894, 902))), "892.*more than once"),
    (lambda s: s.assign(PassengerId=list(range(892, 901)) + [5000]), "5000.*not in the sample"),
])
def test_each_kind_of_bad_submission_is_named(sample, mutate, message):
    with pytest.raises(KagtoolsError, match=message):
        validate_submission(mutate(_good(sample)), sample, id_col="PassengerId")


def _run(tmp_path, preds, meta_extra=None):
    test = pd.DataFrame({"id": np.arange(892, 902)[::-1], "pred": preds[::-1]})
    oof = pd.DataFrame({"id": [1], "repeat": [0], "fold": [0], "pred": [0.5]})
    meta = {"pred_cols": ["pred"], "classes": [0, 1], "scores": {"cv": 0.8, "cv_std": 0.01}, **(meta_extra or {})}
    return write_run(tmp_path / "runs", make_record("r1", **meta), oof=oof, test=test)


def test_render_labels_in_sample_order_and_dtype(tmp_path, sample):
    spec = load_spec("titanic")
    preds = np.linspace(0, 1, 10)
    sub = render_submission(spec, _run(tmp_path, preds), sample)
    assert list(sub["PassengerId"]) == list(sample["PassengerId"])
    assert sub["Survived"].dtype == np.int64 and list(sub["Survived"]) == [0] * 5 + [1] * 5
    sub = render_submission(spec, _run(tmp_path, preds, {"threshold": 0.3}), sample)
    assert sub["Survived"].sum() == 7


def test_write_is_atomic_and_keeps_history(tmp_path, sample):
    spec = load_spec("titanic")
    run = _run(tmp_path, np.linspace(0, 1, 10))
    good = render_submission(spec, run, sample)
    path = write_submission(spec, good, sample, workdir=tmp_path, run=run)
    assert pd.read_csv(path).equals(good)
    before = path.read_bytes()
    bad = good.assign(Survived=good["Survived"].astype(float).where(good.index != 0))
    with pytest.raises(KagtoolsError, match="NaN"):
        write_submission(spec, bad, sample, workdir=tmp_path, run=run)
    assert path.read_bytes() == before  # the last good submission is untouched
    files = sorted(p.name for p in path.parent.iterdir())
    assert files[0].startswith("submission-") and files[0].endswith("-r1.csv")
    assert "submission.json" in files and not any(f.endswith(".tmp") for f in files)


def test_declared_float_dtype_wins_over_an_all_zero_sample(tmp_path):
    from kagtools.core.spec import parse_spec

    spec = parse_spec({"slug": "p", "task": "regression", "id_col": "id", "target_cols": ["score"],
                       "metric": {"name": "pearson"}, "submission": {"kind": "values",
                       "dtypes": {"id": "str", "score": "float64"}}})
    sample = pd.DataFrame({"id": ["a", "b"], "score": [0, 0]})  # read from CSV as integers
    test = pd.DataFrame({"id": ["b", "a"], "pred": [0.25, 0.75]})
    oof = pd.DataFrame({"id": ["x"], "repeat": [0], "fold": [0], "pred": [0.5]})
    run = write_run(tmp_path / "runs", make_record("r", **{"pred_cols": ["pred"], "classes": None,
                                                                       "scores": {"cv": 0.5}}), oof=oof, test=test)
    sub = render_submission(spec, run, sample)
    assert sub["score"].tolist() == [0.75, 0.25]
    path = write_submission(spec, sub, sample, workdir=tmp_path, run=run)
    assert pd.read_csv(path)["score"].tolist() == [0.75, 0.25]
