"""``explain``: importance on out-of-fold rows, partial dependence, contributions, redundancy."""

import re

import numpy as np
import pandas as pd
import pytest
from conftest import make_record

from kagtools.analysis.explain import explained_run, write_explain
from kagtools.cli.main import main
from kagtools.core.engine import TrainingSet, cross_validate
from kagtools.core.folds import ensure_folds
from kagtools.core.runs import Run
from kagtools.core.spec import parse_spec
from kagtools.ensemble.blend import blend
from kagtools.errors import KagtoolsError


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """``signal`` decides the target, ``weak`` and its near copy ``twin`` help a little, ``noise``
    and ``colour`` do nothing; an lgbm run, an rf run and their blend."""
    root = tmp_path_factory.mktemp("explain")
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"signal": rng.normal(size=n), "weak": rng.normal(size=n), "noise": rng.normal(size=n),
                      "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n))})
    X["twin"] = X["weak"] + 0.05 * rng.normal(size=n)
    y = pd.Series((2 * X["signal"] + 0.5 * X["weak"] + 0.3 * rng.normal(size=n) > 0).astype(int))
    data = TrainingSet(X=X, y=y, ids=pd.Series(np.arange(n)), X_test=X.head(20).copy(),
                       test_ids=pd.Series(np.arange(20) + 10_000), name="syn")
    spec = parse_spec({"slug": "syn", "task": "binary", "id_col": "id", "target_cols": ["y"],
                       "metric": {"name": "roc_auc"}, "cv": {"splitter": "KFold", "n_splits": 3, "seed": 0}})
    folds = ensure_folds(pd.DataFrame({"id": data.ids, "y": y}), spec, root)
    runs = [cross_validate(spec, data, folds, "lgbm", {"n_estimators": 60}, root=root, save_models=False),
            cross_validate(spec, data, folds, "rf", {"n_estimators": 40}, root=root, save_models=False)]
    mean = blend(spec, runs, y, data.ids, root=root, method="mean")
    return spec, data, folds, runs, mean, root


def test_importance_groups_and_report(synthetic, tmp_path):
    spec, data, folds, runs, _, _ = synthetic
    path, ex = write_explain(spec, data, folds, runs[0], tmp_path, top=2)
    imp = ex.importance
    assert imp.index[0] == "signal" and imp.loc["signal", "perm"] > 0.1
    assert abs(imp.loc["noise", "perm"]) < 0.02 and imp.loc["signal", "perm_std"] >= 0
    assert imp.loc["signal", "gain"] == imp["gain"].max()
    assert ["weak", "twin"] in [sorted(g, reverse=True) for g in ex.groups] and len(ex.groups) == 1
    assert imp.loc["weak", "group"] == imp.loc["twin", "group"] != ""
    grid, avg = ex.partial["signal"]
    assert avg[0][-1] > avg[0][0] + 0.5  # the right sign: more signal, more positives
    assert list(ex.contributions.index) == list(range(10_000, 10_005))
    assert np.allclose(ex.contributions["= raw score"], ex.contributions.drop(columns="= raw score").sum(axis=1))
    page = path.read_text()
    assert path.name == "explain.html" and len(re.findall(r'<img src="data:image/png;base64,', page)) >= 5
    assert "src=\"http" not in page and "pred_contrib" in page


def test_blend_is_explained_through_its_strongest_member(synthetic, tmp_path):
    spec, data, folds, runs, mean, root = synthetic
    target, notes = explained_run(root, mean, spec.metric)
    best = max(runs, key=lambda r: r.record.scores["cv"])
    assert target.run_id == best.run_id and f"strongest member {best.run_id}" in notes[0]
    rf = next(r for r in runs if r.record.model == "rf")
    _, ex = write_explain(spec, data, folds, rf, tmp_path, n_folds=2, top=1)
    assert ex.importance.index[0] == "signal" and "SURROGATE" in " ".join(ex.notes)


def test_deep_learning_and_stale_runs_are_refused(synthetic, tmp_path):
    spec, data, folds, runs, _, root = synthetic
    dl = Run(path=tmp_path, record=make_record("cnn-1", model="digit_cnn"))
    with pytest.raises(KagtoolsError, match="deep-learning run"):
        explained_run(root, dl, spec.metric)
    stale = Run(path=tmp_path, record=make_record("lgbm-x", model="lgbm", folds_hash="other"))
    with pytest.raises(KagtoolsError, match="other folds"):
        write_explain(spec, data, folds, stale, tmp_path)


def test_regression_run_of_a_model_without_gain(tmp_path):
    rng = np.random.default_rng(1)
    n = 300
    X = pd.DataFrame({"x": rng.uniform(-2, 2, n), "noise": rng.normal(size=n)})
    y = pd.Series(3 * X["x"] + 0.2 * rng.normal(size=n))
    data = TrainingSet(X=X, y=y, ids=pd.Series(np.arange(n)), name="reg")
    spec = parse_spec({"slug": "reg", "task": "regression", "id_col": "id", "target_cols": ["y"],
                       "metric": {"name": "rmse"}, "cv": {"splitter": "KFold", "n_splits": 3, "seed": 0}})
    folds = ensure_folds(pd.DataFrame({"id": data.ids, "y": y}), spec, tmp_path)
    run = cross_validate(spec, data, folds, "logreg", root=tmp_path, save_models=False)  # ridge
    _, ex = write_explain(spec, data, folds, run, tmp_path, n_folds=2, top=1)
    assert ex.importance.index[0] == "x" and ex.importance.loc["x", "perm"] > 1  # rmse rises when x is shuffled
    assert ex.importance["gain"].isna().all() and ex.groups == []
    assert np.all(np.diff(ex.partial["x"][1][0]) > -0.3)  # rising with x
    assert len(ex.contributions) == 5 and "SURROGATE" in " ".join(ex.notes)  # no test set: OOF rows


def test_titanic_explain_end_to_end(tmp_path, mirror, capsys):
    assert main(["cv", "titanic", "--model", "lgbm", "--params", '{"n_estimators": 60}', "--n-jobs", "1",
                 "--workdir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["explain", "titanic", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("feature "):]
    top = table.splitlines()[2].split()[0]
    sex_group = next(line for line in out.splitlines() if line.startswith("G") and "Sex" in line)
    assert top in sex_group.split(": ")[1].split(", ")  # Sex, or WomanChild that carries it
    page = (tmp_path / "reports" / "titanic" / "explain.html").read_text()
    assert page.count("data:image/png;base64,") >= 6 and "pred_contrib" in page
