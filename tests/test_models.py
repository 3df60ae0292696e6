"""The classical tabular models learn: they beat chance and handle unseen categories.

The estimator contract every registered model meets (shapes, clone, params, determinism)
is in ``tests/test_contracts.py``; these are the tabular models' quality checks.
"""

import numpy as np
import pandas as pd
import pytest

from kagtools.errors import KagtoolsError
from kagtools.models import create_model, get_model_class, list_models

TABULAR = [name for name in list_models(include_lazy=False)
           if get_model_class(name).__module__ == "kagtools.models.tabular"]


def _data(task, n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "num": rng.normal(size=n),
        "noise": rng.normal(size=n),
        "cat": pd.Series(rng.choice(["a", "b", "c"], n)).astype("category"),
        "text_cat": rng.choice(["p", "q"], n),
    })
    X.loc[::9, "num"] = np.nan
    signal = X["num"].fillna(0) + (X["cat"] == "a") * 1.5
    if task == "binary":
        y = (signal > 0.4).astype(int).to_numpy()
    elif task == "multiclass":
        y = np.digitize(signal, [-0.3, 0.8])
    else:
        y = signal.to_numpy() * 2 + rng.normal(scale=0.1, size=n)
    return X, y


def test_tabular_models_are_the_six_classical_ones():
    assert sorted(TABULAR) == ["et", "hgb", "knn", "lgbm", "logreg", "rf"]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("name", TABULAR)
def test_fit_predict_scores_beat_chance(name, task):
    X, y = _data(task)
    model = create_model(name, task=task).fit(X[:180], y[:180])
    scores = model.predict_scores(X[180:])
    if task == "binary":
        assert scores.shape == (60,) and ((scores >= 0) & (scores <= 1)).all()
        assert ((scores > 0.5) == y[180:]).mean() > 0.75
    elif task == "multiclass":
        assert scores.shape == (60, 3) and np.allclose(scores.sum(axis=1), 1)
        assert (scores.argmax(1) == y[180:]).mean() > 0.6
    else:
        assert np.corrcoef(scores, y[180:])[0, 1] > 0.8


@pytest.mark.parametrize("name", TABULAR)
def test_unseen_category_at_predict_time(name):
    X, y = _data("binary")
    model = create_model(name, task="binary").fit(X, y)
    X2 = X.head(5).copy()
    X2["text_cat"] = "never-seen"
    assert np.isfinite(model.predict_scores(X2)).all()


def test_unknown_param_is_clear():
    # (An unknown model name is a registry contract: tests/test_contracts.py.)
    with pytest.raises(KagtoolsError, match=r"no parameter\(s\) leaves \(did you mean 'num_leaves'\?\)"):
        create_model("lgbm", leaves=3)


def test_list_models_by_pattern():
    assert list_models("l*", include_lazy=False) == ["lgbm", "logreg"]
