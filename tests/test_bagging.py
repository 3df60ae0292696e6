"""Bagging: the bagged run is the mean of its members; bootstrap samples rows with replacement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from kagtools.core.engine import cross_validate
from kagtools.ensemble.bagging import bagged_cv
from kagtools.errors import KagtoolsError
from kagtools.models.bag import Bag


def _xy(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    return X, (X["a"] + 0.5 * rng.normal(size=n) > 0).astype(int).to_numpy()


def test_bootstrap_bag_fits_resamples_and_follows_the_seed():
    X, y = _xy()
    m = Bag(model="rf", params={"n_estimators": 20}, n_bags=1, bootstrap=True, task="binary", seed=1)
    assert clone(m).get_params()["params"] == {"n_estimators": 20}
    p1 = m.fit(X, y).predict_scores(X)
    p1_again = clone(m).fit(X, y).predict_scores(X)
    p2 = clone(m).set_params(seed=2).fit(X, y).predict_scores(X)
    np.testing.assert_array_equal(p1, p1_again)
    assert not np.allclose(p1, p2)
    assert p1.shape == (len(X),) and ((p1 >= 0) & (p1 <= 1)).all()
    # Fitted on a resample, not on the rows given: predictions differ from the plain model's.
    from kagtools.models import create_model

    plain = create_model("logreg", task="binary").fit(X, y).predict_scores(X)
    assert not np.allclose(Bag(model="logreg", n_bags=1, bootstrap=True, task="binary").fit(X, y).predict_scores(X),
                           plain)
    # Members differ by seed, and the bag is their mean.
    bag = Bag(model="rf", params={"n_estimators": 20}, n_bags=3, task="binary", seed=1).fit(X, y)
    members = bag.member_scores(X)
    assert not np.array_equal(members[0], members[1])
    np.testing.assert_allclose(bag.predict_scores(X), np.mean(members, axis=0))


def test_bag_is_registered_without_importing_bagging():
    """It lives in kagtools/models/, so the registry (and its contract tests) list it on its own."""
    import subprocess
    import sys

    code = ("import sys; from kagtools.models import list_models; "
            "print('bag' in list_models(include_lazy=False), 'kagtools.ensemble.bagging' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]


@pytest.mark.slow
def test_bagged_cv_on_titanic_is_the_mean_of_its_bags(tmp_path, mirror):
    from kagtools.workflow.context import open_context

    ctx = open_context("titanic", workdir=tmp_path)
    params = {"n_estimators": 8, "max_depth": 4}
    bag = bagged_cv(ctx.spec, ctx.training_set, ctx.folds, "rf", params, root=ctx.root, n_bags=2, n_jobs=1, seed=7)
    assert bag.record.kind == "bag" and bag.record.details["n_bags"] == 2 and len(bag.record.details["bag_scores"]) == 2
    assert [r.record.kind for r in ctx.runs()] == ["bag"]  # bags themselves are not listed
    singles = [cross_validate(ctx.spec, ctx.training_set, ctx.folds, "rf", params, root=tmp_path / "x", seed=s,
                              save_models=False) for s in bag.record.details["bag_seeds"]]
    np.testing.assert_allclose(bag.oof["pred"], np.mean([s.oof["pred"] for s in singles], axis=0))
    np.testing.assert_allclose(bag.test["pred"], np.mean([s.test["pred"] for s in singles], axis=0))
    assert [s.record.scores["cv"] for s in singles] == pytest.approx(bag.record.details["bag_scores"])
    assert not bag.record.details["members_identical"]
    boot = bagged_cv(ctx.spec, ctx.training_set, ctx.folds, "logreg", {}, root=ctx.root, n_bags=2, bootstrap=True,
                     n_jobs=2, seed=7)
    assert boot.record.details["bootstrap"] and boot.record.details["bag_scores"][0] != boot.record.details["bag_scores"][1]
    assert 0.75 < boot.score < 0.9
    with pytest.raises(KagtoolsError, match="at least 2"):
        bagged_cv(ctx.spec, ctx.training_set, ctx.folds, "rf", params, root=ctx.root, n_bags=1)
