import json

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

from kagtools.core.engine import TrainingSet, cross_validate
from kagtools.core.folds import ensure_folds
from kagtools.core.runs import list_runs, load_run
from kagtools.core.spec import parse_spec
from kagtools.errors import KagtoolsError
from kagtools.models import register_model
from kagtools.models.tabular import LogReg


def _spec(task="binary", metric="accuracy"):
    return parse_spec({"slug": "s", "task": task, "id_col": "id", "target_cols": ["y"], "metric": {"name": metric},
                       "cv": {"splitter": "KFold", "n_splits": 4, "n_repeats": 2, "seed": 0}})


@pytest.fixture
def tset():
    rng = np.random.default_rng(1)
    n = 160
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = pd.Series((X["a"] + 0.3 * rng.normal(size=n) > 0).astype(int))
    return TrainingSet(X=X, y=y, ids=pd.Series(np.arange(n) + 100), X_test=X.head(30).copy(),
                       test_ids=pd.Series(np.arange(30) + 9000))


def test_run_artifacts(tset, tmp_path):
    spec = _spec()
    train = pd.DataFrame({"id": tset.ids, "y": tset.y})
    folds = ensure_folds(train, spec, tmp_path)
    run = cross_validate(spec, tset, folds, "logreg", {"C": 0.5}, root=tmp_path, n_jobs=1)
    assert (run.path / "oof.parquet").is_file() and (run.path / "models.joblib").is_file()
    oof = run.oof
    assert list(oof.columns) == ["id", "repeat", "fold", "pred"]
    assert len(oof) == 2 * 160 and oof.groupby("repeat")["id"].nunique().tolist() == [160, 160]
    assert list(run.test.columns) == ["id", "pred"] and len(run.test) == 30
    meta = json.loads((run.path / "run.json").read_text())
    for key in ("model", "params", "seed", "folds_hash", "scores", "wall_seconds", "provenance"):
        assert key in meta
    assert {"versions", "git_sha", "created", "data_fingerprint"} <= set(meta["provenance"])
    # The fold models, one per (repeat, fold), load with joblib; their mean is the run's test prediction.
    models = joblib.load(run.path / "models.joblib")
    assert len(models) == 8
    fold_mean = np.mean([m.predict_proba(tset.X_test)[:, 1] for m in models], axis=0)
    assert np.allclose(fold_mean, run.test["pred"])
    assert meta["provenance"]["data_fingerprint"] == folds.fingerprint
    s = meta["scores"]
    assert len(s["folds"]) == 8 and len(s["repeats"]) == 2 and s["cv"] > 0.8 and s["cv_std"] >= 0
    assert meta["folds_hash"] == folds.hash and meta["params"] == {"C": 0.5}
    assert [r.run_id for r in list_runs(tmp_path)] == [run.run_id]
    assert load_run(tmp_path, run.run_id).record.scores["cv"] == s["cv"]


def test_same_command_same_predictions(tset, tmp_path):
    spec = _spec()
    folds = ensure_folds(pd.DataFrame({"id": tset.ids, "y": tset.y}), spec, tmp_path)
    a = cross_validate(spec, tset, folds, "rf", {"n_estimators": 20}, root=tmp_path / "a", n_jobs=2)
    b = cross_validate(spec, tset, folds, "rf", {"n_estimators": 20}, root=tmp_path / "b", n_jobs=1)
    assert a.run_id == b.run_id
    pd.testing.assert_frame_equal(a.oof, b.oof)
    pd.testing.assert_frame_equal(a.test, b.test)


class _RecordingFeatures(BaseEstimator, TransformerMixin):
    seen: list = []

    def fit(self, X, y=None):
        type(self).seen.append(set(X.index))
        return self

    def transform(self, X):
        return X


def test_fold_features_never_see_validation_rows(tset, tmp_path):
    spec = _spec()
    folds = ensure_folds(pd.DataFrame({"id": tset.ids, "y": tset.y}), spec, tmp_path)
    _RecordingFeatures.seen = []
    tset.fold_features = _RecordingFeatures()
    run = cross_validate(spec, tset, folds, "logreg", root=tmp_path, n_jobs=1)
    assert len(_RecordingFeatures.seen) == 8
    for (_r, _f, _, valid), seen in zip(folds.splits(tset.ids), _RecordingFeatures.seen, strict=True):
        assert seen.isdisjoint(set(valid))
    assert run.record.scores["cv"] > 0.8
    # a second model on the same training set reuses the fitted fold features
    cross_validate(spec, tset, folds, "lgbm", {"n_estimators": 20}, root=tmp_path, n_jobs=2)
    assert len(_RecordingFeatures.seen) == 8


class _TrainMean(BaseEstimator, TransformerMixin):
    """A target statistic: the mean label of the rows it was fitted on, as a column."""

    def fit(self, X, y=None):
        self.mean_ = float(np.mean(y))
        return self

    def transform(self, X):
        return X.assign(stat=self.mean_)


def test_test_rows_can_see_every_training_row(tset, tmp_path):
    """``test_features="all"``: validation rows keep in-fold statistics, test rows get them from
    all training rows (fitted once); the default fits them per fold for both."""
    spec = _spec()
    folds = ensure_folds(pd.DataFrame({"id": tset.ids, "y": tset.y}), spec, tmp_path)
    y = tset.y.to_numpy()
    for mode in ("fold", "all"):
        data = TrainingSet(X=tset.X, y=tset.y, ids=tset.ids, X_test=tset.X_test, test_ids=tset.test_ids,
                           fold_features=_TrainMean(), test_features=mode)
        for r, f, train_idx, valid_idx in folds.splits(tset.ids):
            X_tr, X_va, X_te = data.fold_frames((folds.hash, r, f), y, train_idx, valid_idx)
            assert X_va["stat"].iloc[0] == pytest.approx(y[train_idx].mean())
            expected = y.mean() if mode == "all" else y[train_idx].mean()
            assert X_te["stat"].to_numpy() == pytest.approx(np.full(len(X_te), expected))
    with pytest.raises(KagtoolsError, match="test_features"):
        TrainingSet(X=tset.X, y=tset.y, ids=tset.ids, test_features="everything")


@register_model("_test_crashing")
class _Crashing(LogReg):
    def fit(self, X, y, X_valid=None, y_valid=None):
        if len(X) < 130:
            raise RuntimeError("boom")
        return super().fit(X, y)


def test_crashed_run_leaves_no_artifact(tset, tmp_path):
    spec = _spec()
    folds = ensure_folds(pd.DataFrame({"id": tset.ids, "y": tset.y}), spec, tmp_path)
    with pytest.raises(RuntimeError):
        cross_validate(spec, tset, folds, "_test_crashing", root=tmp_path, n_jobs=1)
    assert list_runs(tmp_path) == [] and not any(p.name.startswith(".") for p in tmp_path.iterdir()
                                                 if p.is_dir())


@register_model("_test_nan")
class _NaNModel(LogReg):
    def predict_scores(self, X):
        out = super().predict_scores(X)
        out[0] = np.nan
        return out


def test_nan_predictions_are_refused(tset, tmp_path):
    spec = _spec()
    folds = ensure_folds(pd.DataFrame({"id": tset.ids, "y": tset.y}), spec, tmp_path)
    with pytest.raises(KagtoolsError, match="NaN"):
        cross_validate(spec, tset, folds, "_test_nan", root=tmp_path, n_jobs=1)
    assert list_runs(tmp_path) == []


def test_multiclass_and_regression_runs(tmp_path):
    rng = np.random.default_rng(2)
    n = 150
    X = pd.DataFrame({"a": rng.normal(size=n)})
    ids = pd.Series(np.arange(n))
    y_cls = pd.Series(np.array(["lo", "mid", "hi"])[np.digitize(X["a"], [-0.5, 0.5])])
    spec = _spec("multiclass", "log_loss")
    folds = ensure_folds(pd.DataFrame({"id": ids, "y": y_cls}), spec, tmp_path)
    run = cross_validate(spec, TrainingSet(X=X, y=y_cls, ids=ids), folds, "logreg", root=tmp_path)
    assert run.record.classes == ["hi", "lo", "mid"] and run.pred_cols == ["pred_hi", "pred_lo", "pred_mid"]
    assert run.record.scores["cv"] < 0.6
    spec = _spec("regression", "rmse")
    y_reg = pd.Series(3 * X["a"] + rng.normal(scale=0.1, size=n))
    run = cross_validate(spec, TrainingSet(X=X, y=y_reg, ids=ids), folds, "logreg", root=tmp_path)
    assert run.record.scores["cv"] < 0.5
