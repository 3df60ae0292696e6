"""The models added to beat AutoGluon (issue 20): CatBoost, XGBoost, kNN and the tabular neural
net; and issue 19: +/-inf and huge values in numeric columns break no tabular model.

The estimator contract every registered model meets is in ``tests/test_contracts.py``; these
are the new models' quality, determinism, leakage (early stopping on an inner split only) and
robustness checks, on a few hundred synthetic rows.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from functools import lru_cache

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import log_loss, r2_score, roc_auc_score

from kagtools.core.extras import MODEL_EXTRAS, extra_for
from kagtools.core.model_registry import LAZY_MODELS, MODELS, create_model, get_model_class
from kagtools.errors import KagtoolsError
from kagtools.models.tabular import BIG, finite_numerics
from tests.conftest import ROOT

NEW = ["catboost", "xgboost", "knn", "tabular_nn"]
#: Small, fast settings for the tests (the defaults train longer).
PARAMS = {
    "catboost": {"iterations": 60, "depth": 4, "learning_rate": 0.2},
    "xgboost": {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.2},
    "knn": {},
    "tabular_nn": {"epochs": 15, "batch_size": 64, "layers": (64, 32), "device": "cpu"},
}
EARLY = {"catboost": "iterations", "xgboost": "n_estimators", "tabular_nn": "epochs", "lgbm": "n_estimators"}
TASKS = ["binary", "multiclass", "regression"]


@lru_cache
def _data(task: str, n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numerics (one with NaN and +/-inf), a string column with NaN, a category and a bool."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "num": rng.normal(size=n),
        "noise": rng.normal(size=n),
        "city": rng.choice(["paris", "rome", "oslo", "lima"], n).astype(object),
        "cat": pd.Series(rng.choice(["a", "b", "c"], n)).astype("category"),
        "flag": rng.random(n) > 0.5,
    })
    signal = X["num"].to_numpy() + 1.5 * (X["city"] == "rome").to_numpy() + 0.8 * (X["cat"] == "a").to_numpy()
    X.loc[::11, "city"] = None
    X.loc[3::13, "num"] = np.nan
    X.loc[5::17, "noise"] = np.inf
    X.loc[7::19, "noise"] = -np.inf
    if task == "binary":
        y = (signal > np.median(signal)).astype(int)
    elif task == "multiclass":
        y = np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3]))
    else:
        y = 2 * signal + rng.normal(scale=0.2, size=n)
    return X, y


def _fit(name: str, task: str, **params):
    X, y = _data(task)
    return create_model(name, task=task, **{**PARAMS.get(name, {}), **params}).fit(X[:220], y[:220])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One BLAS/OpenMP thread: the data are tiny and the test machine is shared."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


# ------------------------------------------------------------------ quality and shapes

@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", NEW)
def test_fit_predict_scores_beat_a_trivial_baseline(name, task):
    X, y = _data(task)
    model = _fit(name, task)
    scores = model.predict_scores(X[220:])
    y_test = y[220:]
    if task == "binary":
        assert scores.shape == (80,) and ((scores >= 0) & (scores <= 1)).all()
        assert list(model.classes_) == [0, 1]
        assert roc_auc_score(y_test, scores) > 0.8
    elif task == "multiclass":
        assert scores.shape == (80, 3) and np.allclose(scores.sum(axis=1), 1)
        assert (scores.argmax(axis=1) == y_test).mean() > 0.55  # chance: 1/3
    else:
        assert scores.shape == (80,) and np.isfinite(scores).all()
        assert r2_score(y_test, scores) > 0.5  # the mean scores 0


@pytest.mark.parametrize("name", NEW)
def test_class_probabilities_are_float64_rows_that_sum_to_one(name):
    """scikit-learn's log loss warns about rows that miss 1 by more than float64 rounding, as
    XGBoost's float32 probabilities did on every multiclass fold."""
    X, y = _data("multiclass")
    p = _fit(name, "multiclass").predict_proba(X[220:])
    assert p.dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_loss(y[220:], p, labels=[0, 1, 2])


@pytest.mark.parametrize("name", NEW)
def test_deterministic_for_a_seed_and_clonable(name):
    X, y = _data("binary")
    seeded = {"seed": 3} if "seed" in get_model_class(name)().get_params() else {}  # kNN has no randomness
    model = _fit(name, "binary", **seeded)
    again = clone(model).fit(X[:220], y[:220])
    np.testing.assert_array_equal(model.predict_scores(X[220:]), again.predict_scores(X[220:]))
    params = model.get_params(deep=False)
    assert clone(model).get_params(deep=False) == params
    assert type(model)().set_params(**params).get_params(deep=False) == params
    assert not hasattr(clone(model), "classes_")


@pytest.mark.parametrize("name", NEW)
def test_unseen_categories_and_missing_values_at_predict_time(name):
    X, _ = _data("multiclass")
    model = _fit(name, "multiclass")
    X_new = X.head(6).copy()
    X_new["city"] = ["atlantis", None, "rome", "atlantis", "oslo", None]
    X_new["cat"] = pd.Categorical(["z", None, "a", "b", "z", "c"])
    X_new.loc[0, "num"] = np.nan
    X_new.loc[1, "num"] = np.inf
    scores = model.predict_scores(X_new)
    assert scores.shape == (6, 3) and np.isfinite(scores).all()


# ------------------------------------------------------------------ early stopping: never on the scored fold

@pytest.mark.parametrize("task", ["binary", "regression"])
@pytest.mark.parametrize("name", sorted(EARLY))
def test_early_stopping_uses_an_inner_split_of_the_training_rows(name, task):
    X, y = _data(task)
    rounds = {EARLY[name]: 400 if name != "tabular_nn" else 30}
    params = {**PARAMS.get(name, {}), **rounds, "early_stopping_rounds": 3, "inner_valid": 0.2}
    a = create_model(name, task=task, **params).fit(X[:220], y[:220])
    # The scored fold (X_valid) changes nothing, even with scrambled labels.
    b = create_model(name, task=task, **params).fit(X[:220], y[:220], X[220:], y[220:][::-1])
    np.testing.assert_array_equal(a.predict_scores(X[220:]), b.predict_scores(X[220:]))
    assert isinstance(a.best_iteration_, int) and 1 <= a.best_iteration_ < rounds[EARLY[name]]
    assert a.refit_params(a.best_iteration_) == {EARLY[name]: a.best_iteration_, "early_stopping_rounds": None}
    # Without early stopping every round is trained and none is recorded.
    assert _fit(name, task).best_iteration_ is None


# ------------------------------------------------------------------ search spaces

@pytest.mark.parametrize("name", NEW)
def test_search_space_samples_valid_params(name):
    from kagtools.tuning.space import ModelSpace, check_space

    space = ModelSpace(name)
    assert check_space(name, space, {})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        params = space(study.ask())
        model = create_model(name, **params)
        assert model.get_params(deep=False).items() >= params.items()
    if name == "knn":  # cheap enough to fit with every sample
        X, y = _data("binary")
        assert np.isfinite(create_model(name, task="binary", **params).fit(X, y).predict_scores(X)).all()


# ------------------------------------------------------------------ issue 19: inf and huge values

@pytest.mark.parametrize("name", ["logreg", "rf", "et", "lgbm", "hgb", "knn", "catboost", "xgboost", "tabular_nn"])
def test_inf_and_huge_values_are_no_crash(name):
    X, y = _data("binary")
    X = X.copy()
    X.loc[::7, "num"] = 1e308
    X.loc[1::7, "num"] = -1e308
    X.loc[2::7, "num"] = np.inf
    X.loc[3::9, "noise"] = 1e200
    small = {"rf": {"n_estimators": 20}, "et": {"n_estimators": 20}, "lgbm": {"n_estimators": 30},
             "hgb": {"max_iter": 30}}
    model = create_model(name, task="binary", **{**PARAMS.get(name, {}), **small.get(name, {})}).fit(X, y)
    scores = model.predict_scores(X)
    assert scores.shape == (len(X),) and np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()


def test_finite_numerics_reads_inf_as_missing_and_leaves_finite_frames_alone():
    X = pd.DataFrame({"a": [1.0, np.inf, -np.inf, 1e308, np.nan], "b": [1, 2, 3, 4, 5], "c": list("vwxyz")})
    out = finite_numerics(X)
    np.testing.assert_array_equal(out["a"].to_numpy(), [1.0, np.nan, np.nan, BIG, np.nan])
    assert out["b"].dtype == X["b"].dtype and np.isinf(X["a"]).sum() == 2  # the input is not changed
    finite = X.assign(a=[1.0, 2.0, np.nan, -3.0, 4.0])
    assert finite_numerics(finite) is finite  # finite data reach the models exactly as before


# ------------------------------------------------------------------ registry, extras, no files written

def test_new_models_are_registered_lazily_with_their_extras():
    assert {"catboost", "xgboost", "tabular_nn"} <= set(LAZY_MODELS) and "knn" not in LAZY_MODELS
    assert get_model_class("knn").__module__ == "kagtools.models.tabular"
    assert {n: MODEL_EXTRAS[n] for n in ("catboost", "xgboost", "tabular_nn")} == {
        "catboost": "gbm", "xgboost": "gbm", "tabular_nn": "tabular"}
    assert extra_for("catboost") == "gbm" and extra_for("xgboost") == "gbm"
    code = ("import sys; import kagtools.core.model_registry as m; m.MODELS.names(); m.make_model('knn', "
            "task='binary', seed=0); print(sorted(k for k in ('torch', 'catboost', 'xgboost') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_missing_gbm_package_is_one_line_naming_the_extra(monkeypatch):
    MODELS.load_all()
    monkeypatch.setattr(MODELS, "_entries", {k: v for k, v in MODELS._entries.items()
                                             if k not in ("catboost", "xgboost")})
    monkeypatch.delitem(sys.modules, "kagtools.models.boosters", raising=False)
    monkeypatch.setitem(sys.modules, "catboost", None)  # `import catboost` now fails
    with pytest.raises(KagtoolsError, match=r"model 'xgboost' needs catboost.*pip install 'kagtools\[gbm\]'"):
        create_model("xgboost")


def test_catboost_writes_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fit("catboost", "binary", early_stopping_rounds=3)
    assert list(tmp_path.iterdir()) == []
