"""Presets (fast, medium, best), the time budget, refit on every training row, and a multiclass
fold that lacks a class: on tiny synthetic data in a temporary project folder."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from kagtools.core.engine import TrainingSet, cross_validate, refit_params
from kagtools.core.folds import Folds
from kagtools.core.spec import parse_spec
from kagtools.errors import KagtoolsError
from kagtools.models import register_model
from kagtools.workflow.context import open_context
from kagtools.workflow.pipeline import pipeline_models
from kagtools.workflow.presets import PRESETS, Preset, available_models, get_preset, plan_for
from kagtools.workflow.submit import submit

SPEC = ('slug = "syn"\ntask = "binary"\nid_col = "id"\ntarget_cols = ["y"]\nmetric = "roc_auc"\n'
        'data_dir = "data/syn"\n[files]\ntrain = "train.csv"\ntest = "test.csv"\n'
        'sample_submission = "sample_submission.csv"\n[submission]\nkind = "probabilities"\n'
        '[cv]\nsplitter = "StratifiedKFold"\nn_splits = 5\nstratify = "y"\nseed = 0\n')


@register_model("_slow_test")
class _Slow(BaseEstimator):
    """A model whose every fit takes ``seconds``: a budget's estimate is then predictable."""

    tasks = ("binary",)

    def __init__(self, *, seconds: float = 0.6, task: str = "binary", seed: int = 0):
        self.seconds = seconds
        self.task = task
        self.seed = seed

    def fit(self, X, y, X_valid=None, y_valid=None):
        time.sleep(self.seconds)
        self.mean_ = float(np.mean(y))
        return self

    def predict_scores(self, X):
        return np.full(len(X), self.mean_)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A binary competition of 150 rows (and 40 test rows) with no pipeline module."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    n = 190
    x = rng.normal(size=n)
    frame = pd.DataFrame({"id": np.arange(n), "x": x, "z": rng.normal(size=n),
                          "c": rng.choice(["a", "b", "c"], size=n),
                          "y": (x + 0.7 * rng.normal(size=n) > 0).astype(int)})
    data = tmp_path / "data" / "syn"
    data.mkdir(parents=True)
    frame.iloc[:150].to_csv(data / "train.csv", index=False)
    frame.iloc[150:].drop(columns="y").to_csv(data / "test.csv", index=False)
    frame.iloc[150:][["id"]].assign(y=0.5).to_csv(data / "sample_submission.csv", index=False)
    (tmp_path / "competitions").mkdir()
    (tmp_path / "competitions" / "syn.toml").write_text(SPEC)
    return tmp_path


def test_presets_resolve_and_a_missing_package_is_one_line(project, monkeypatch, capsys):
    spec = open_context("syn", workdir=project).spec
    assert set(PRESETS) == {"fast", "medium", "best"}
    assert set(get_preset("medium").models) < set(get_preset("best").models)
    with pytest.raises(KagtoolsError, match="unknown preset 'mediun'.*did you mean 'medium'"):
        get_preset("mediun")
    from kagtools.core import model_registry

    real = model_registry.get_model_class

    def no_gbm(name):
        if name in ("catboost", "xgboost"):
            raise KagtoolsError(f"model '{name}' needs {name}, which the core install leaves out: "
                                "pip install 'kagtools[gbm]'")
        return real(name)

    monkeypatch.setattr(model_registry, "get_model_class", no_gbm)
    models = available_models(spec, get_preset("medium").models, where="preset medium")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "skipped" in ln]
    assert [ln.split()[2] for ln in lines] == ["catboost", "xgboost"]
    assert all("pip install 'kagtools[gbm]'" in ln for ln in lines)
    assert "catboost" not in models and {"lgbm", "logreg"} <= set(models)
    # A spec with several targets: models that fit one label only are left out, with a line.
    multi = parse_spec({"slug": "m", "task": "multitarget", "id_col": "id", "target_cols": ["a", "b"],
                        "metric": {"name": "mcrmse"}})
    kept = available_models(multi, get_preset("medium").models)
    assert "lgbm" not in kept and {"logreg", "rf", "et"} <= set(kept)
    assert "lgbm (lgbm) skipped: it does not support multitarget" in capsys.readouterr().out


def test_medium_is_the_default_without_a_pipeline_module(project):
    spec = open_context("syn", workdir=project).spec
    plan = plan_for(spec)
    assert plan.name == "medium" and list(plan.models) == list(pipeline_models(spec))
    assert plan_for(spec, preset="fast").name == "fast"
    assert plan_for(spec, preset="best", refit=True).refits("lgbm")
    # benchmarks/refit.py: the mean of the fold models won or tied almost everywhere; no preset refits by default.
    assert not any(plan_for(spec, preset=p).refits(m) for p in PRESETS for m in ("lgbm", "xgboost", "catboost"))


def _only(monkeypatch, name, models, **kw):
    monkeypatch.setitem(PRESETS, name, Preset(name, "test", models, **kw))


def test_a_budget_spent_mid_run_still_submits_what_finished(project, monkeypatch):
    # logreg takes well under a second a fold; the slow model's first fold (2 s) says that its
    # other 4 cannot end within the 10 s budget (8.5 s for the models): it is abandoned.
    _only(monkeypatch, "fast", {"logreg": ("logreg", {}), "slow": ("_slow_test", {"seconds": 2.0})},
          blends=("mean",))
    ctx = open_context("syn", workdir=project)
    _ = ctx.folds, ctx.training_set  # made before the clock starts: the budget is about the models
    res = submit(ctx, preset="fast", time_limit=10.0, eda=False, n_jobs=1, reuse=False)
    assert res.budget["logreg"]["status"] == "done" and res.budget["slow"]["status"] == "abandoned"
    assert [r.record.model for r in res.runs] == ["logreg"]  # nothing of the abandoned run is written
    assert not any(p.name.startswith("_slow_test") for p in ctx.root.iterdir())
    sub = pd.read_csv(res.path)
    assert list(sub.columns) == ["id", "y"] and len(sub) == 40 and sub["y"].between(0, 1).all()
    info = json.loads(next(res.path.parent.glob("*.json")).read_text())["budget"]
    assert info["time_limit"] == 10.0 and info["preset"] == "fast" and info["seconds"] > 0
    assert info["runs"]["slow"]["status"] == "abandoned"
    with pytest.raises(KagtoolsError, match="no model finished within the 0.01s budget"):
        submit(ctx, preset="fast", time_limit=0.01, eda=False, n_jobs=1, reuse=False)


def test_a_preset_is_deterministic_for_a_seed(project, monkeypatch):
    _only(monkeypatch, "fast", {"lgbm": ("lgbm", {"n_estimators": 30}), "logreg": ("logreg", {})},
          bags={"lgbm": 2}, blends=("mean", "hill_climb"))
    first = submit(open_context("syn", workdir=project), preset="fast", eda=False, n_jobs=2, reuse=False)
    a = first.path.read_bytes()
    second = submit(open_context("syn", workdir=project), preset="fast", eda=False, n_jobs=1, reuse=False)
    assert second.path.read_bytes() == a
    assert {"lgbm", "logreg", "lgbm_bag2"} <= set(first.budget)
    assert any(r.record.details.get("n_bags") == 2 for r in first.runs)


def test_refit_changes_test_predictions_only(project):
    ctx = open_context("syn", workdir=project)
    kw = {"root": ctx.root, "n_jobs": 1}
    plain = cross_validate(ctx.spec, ctx.training_set, ctx.folds, "lgbm", {"n_estimators": 30}, **kw)
    refit = cross_validate(ctx.spec, ctx.training_set, ctx.folds, "lgbm", {"n_estimators": 30}, run_id="r", refit=True,
                           **kw)
    pd.testing.assert_frame_equal(plain.oof, refit.oof)
    assert plain.score == refit.score
    assert not np.allclose(plain.test["pred"], refit.test["pred"])
    assert refit.record.details["refit"] is True and refit.record.details["refit_scale"] == pytest.approx(1.25)
    assert "refit" not in plain.record.details
    # The refit's fold features (AutoFeatures' categories) were fitted on every training row.
    assert ("full", ctx.folds.hash) in ctx.training_set._fold_cache


def test_refit_rounds_come_from_the_folds():
    class Stub:
        def __init__(self, best):
            self.best_iteration_ = best

        def refit_params(self, n):
            return {"n_estimators": n, "early_stopping_rounds": None}

    assert refit_params(Stub(0), [Stub(40), Stub(60)], 1.25) == {"n_estimators": 62, "early_stopping_rounds": None}
    assert refit_params(Stub(0), [Stub(None), Stub(60)], 1.25) == {}  # no early stopping: same params
    assert refit_params(object(), [Stub(40)], 1.25) == {}


def test_a_class_missing_from_a_training_fold_keeps_every_class_column(tmp_path):
    rng = np.random.default_rng(3)
    n = 60
    y = pd.Series(np.where(np.arange(n) < 3, "c", rng.choice(["a", "b"], size=n)))
    X = pd.DataFrame({"x": rng.normal(size=n) + (y == "b"), "k": rng.choice(["u", "v"], size=n)})
    ids = pd.Series(np.arange(n))
    spec = parse_spec({"slug": "mc", "task": "multiclass", "id_col": "id", "target_cols": ["y"],
                       "metric": {"name": "log_loss"}, "cv": {"splitter": "KFold", "n_splits": 3}})
    # Rows 0-2 (every 'c') are all in fold 0: its training rows hold only 'a' and 'b'.
    table = pd.DataFrame({"id": ids, "repeat": 0, "fold": np.arange(n) * 3 // n})
    folds = Folds(table=table, scheme=spec.cv.as_dict(), hash="mc")
    tset = TrainingSet(X=X, y=y, ids=ids, X_test=X.head(9), test_ids=pd.Series(np.arange(9) + 100))
    for model in ("logreg", "lgbm"):
        run = cross_validate(spec, tset, folds, model, {}, root=tmp_path, n_jobs=1)
        assert run.pred_cols == ["pred_a", "pred_b", "pred_c"]
        fold0 = run.oof[run.oof["fold"] == 0]
        assert (fold0["pred_c"] == 0).all() and np.allclose(fold0[run.pred_cols].sum(axis=1), 1)
        assert (run.oof[run.oof["fold"] == 1]["pred_c"] > 0).all()
        assert run.test.shape == (9, 4)


def test_a_preset_keeps_no_fold_models_unless_asked(project, monkeypatch):
    spec = open_context("syn", workdir=project).spec
    assert not plan_for(spec).save_models and plan_for(spec, save_models=True).save_models
    _only(monkeypatch, "fast", {"logreg": ("logreg", {}), "knn": ("knn", {})}, blends=("mean",))
    ctx = open_context("syn", workdir=project)
    first = submit(ctx, preset="fast", eda=False, n_jobs=2, reuse=False)
    assert not list(ctx.root.rglob("models.joblib"))
    kept = submit(ctx, preset="fast", eda=False, n_jobs=1, reuse=False, save_models=True)
    assert {p.parent.name for p in ctx.root.rglob("models.joblib")} == {r.run_id for r in kept.runs
                                                                       if r.record.kind == "cv"}
    assert kept.path.read_bytes() == first.path.read_bytes()


def test_a_refit_without_kept_fold_models_takes_their_rounds(project):
    # Fold models are not shipped back from parallel workers when not saved; an early-stopped
    # model's refit still gets its rounds from them.
    ctx = open_context("syn", workdir=project)
    params = {"n_estimators": 200, "learning_rate": 0.3, "early_stopping_rounds": 5}
    kw = {"root": ctx.root, "n_jobs": 2, "refit": True}
    saved = cross_validate(ctx.spec, ctx.training_set, ctx.folds, "xgboost", params, run_id="saved", **kw)
    light = cross_validate(ctx.spec, ctx.training_set, ctx.folds, "xgboost", params, run_id="light",
                           save_models=False, **kw)
    assert (saved.path / "models.joblib").is_file() and not (light.path / "models.joblib").exists()
    assert light.record.details["refit_params"] == saved.record.details["refit_params"]
    assert light.record.details["refit_params"]["n_estimators"] < 200
    pd.testing.assert_frame_equal(light.test, saved.test)
    pd.testing.assert_frame_equal(light.oof, saved.oof)
